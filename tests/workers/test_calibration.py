from __future__ import annotations

import numpy as np
import pytest

from farm.core.calibfile import ONLY_INPUT, SampleFile
from farm.core.errors import ModelError, UsageError
from farm.core.modelfile import TensorSpec
from workers.calibration import (
    SYNTHETIC_NOTE,
    concrete_shape,
    make_calibration,
    random_feeds,
    run_batched,
    synthetic_calibration,
    user_calibration,
)

IMAGE = TensorSpec("image:0", (None, 4, 4, 3), "float32")


def test_random_inputs_are_deterministic_and_need_known_dimensions() -> None:
    first, second = random_feeds([IMAGE], 5), random_feeds([IMAGE], 5)
    assert first["image:0"].shape == (5, 4, 4, 3) and np.array_equal(first["image:0"], second["image:0"])
    assert random_feeds([TensorSpec("ids", (None, 3), "int64")], 2)["ids"].dtype == np.int64
    with pytest.raises(ModelError, match="--inputs x:1"):
        concrete_shape(TensorSpec("x", (None, None), "float32"), 1)


def test_user_data_is_split_into_calibration_and_held_out_parts() -> None:
    data = np.arange(20 * 48, dtype=np.float64).reshape(20, 48)  # flat rows, reshaped per input
    calibration = user_calibration(SampleFile({ONLY_INPUT: data}, None), [IMAGE], max_samples=10)
    assert not calibration.synthetic and calibration.notes_for("int8") == []
    assert calibration.verified_on == "calibration" and calibration.labels is None
    assert calibration.samples["image:0"].shape == (10, 4, 4, 3)
    assert calibration.held_out["image:0"].shape == (4, 4, 4, 3)
    assert calibration.samples["image:0"].dtype == np.float32
    assert calibration.held_out["image:0"][0].ravel()[0] == 16 * 48  # the last fifth, unseen
    assert [feed["image:0"].shape for feed in calibration.single_samples()] == [(1, 4, 4, 3)] * 10


def test_named_arrays_and_mismatches() -> None:
    named = user_calibration(SampleFile({"image": np.zeros((5, 4, 4, 3))}, None), [IMAGE], 32)
    assert named.samples["image:0"].shape == (4, 4, 4, 3)
    with pytest.raises(UsageError, match=r"no array for input image:0 \(it has: other\)"):
        user_calibration(SampleFile({"other": np.zeros((5, 4, 4, 3))}, None), [IMAGE], 32)
    with pytest.raises(UsageError, match=r"have shape \(7\), the model takes \(4,4,3\)"):
        user_calibration(SampleFile({ONLY_INPUT: np.zeros((5, 7))}, None), [IMAGE], 32)
    with pytest.raises(UsageError, match="are float64, the model takes int64"):
        user_calibration(
            SampleFile({ONLY_INPUT: np.zeros((5, 3))}, None), [TensorSpec("ids", (None, 3), "int64")], 32
        )


def test_labels_of_the_calibration_file_follow_the_held_out_part() -> None:
    images, labels = np.random.default_rng(0).standard_normal((10, 4, 4, 3)), np.arange(10)
    calibration = make_calibration([IMAGE], SampleFile({ONLY_INPUT: images}, labels), None, 32, 16)
    assert calibration.labels is not None and list(calibration.labels) == [8, 9]
    assert np.array_equal(calibration.held_out["image:0"], images[8:].astype(np.float32))


def test_an_eval_file_is_the_verification_set_and_all_of_calib_calibrates() -> None:
    calib = SampleFile({ONLY_INPUT: np.ones((10, 4, 4, 3))}, None)
    evaluation = SampleFile({"image": np.zeros((6, 4, 4, 3))}, np.array([0, 1, 2, 0, 1, 2]))
    calibration = make_calibration([IMAGE], calib, evaluation, 32, 16)
    assert calibration.samples["image:0"].shape[0] == 10 and calibration.held_out["image:0"].shape[0] == 6
    assert calibration.verified_on == "eval" and list(calibration.labels) == [0, 1, 2, 0, 1, 2]  # type: ignore[arg-type]
    assert not calibration.synthetic and calibration.notes_for("int8") == []
    # No --calib: the quantizers calibrate on synthetic data, and INT8 variants say so.
    uncalibrated = make_calibration([IMAGE], None, evaluation, 32, 16)
    assert uncalibrated.synthetic and uncalibrated.verified_on == "eval"
    assert uncalibrated.notes_for("int8") == [SYNTHETIC_NOTE] and uncalibrated.notes_for("fp16") == []


def test_all_synthetic_data_is_said_once_for_the_job_not_per_variant() -> None:
    calibration = synthetic_calibration([IMAGE], samples=6, held_out=3)
    assert calibration.synthetic and calibration.verified_on == "synthetic"
    assert calibration.notes_for("int8") == []  # the report says it once (farm/cli/render.py)
    assert not np.array_equal(calibration.samples["image:0"][:3], calibration.held_out["image:0"])


def test_batched_runs_respect_a_fixed_batch_and_join_outputs() -> None:
    feeds = {"x": np.arange(10.0).reshape(10, 1)}
    calls: list[int] = []

    def double(batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        calls.append(len(batch["x"]))
        return [batch["x"] * 2]

    [out] = run_batched(double, feeds, [TensorSpec("x", (None, 1), "float32")], max_batch=4)
    assert calls == [4, 4, 2] and np.array_equal(out, feeds["x"] * 2)
    calls.clear()
    run_batched(double, feeds, [TensorSpec("x", (1, 1), "float32")], max_batch=4)
    assert calls == [1] * 10
