from __future__ import annotations

import numpy as np
import pytest

from farm.calibfile import ONLY_INPUT
from farm.errors import ModelError
from workers.calibration import (
    concrete_shape,
    random_feeds,
    run_batched,
    synthetic_calibration,
    user_calibration,
)
from workers.sources import TensorSpec

IMAGE = TensorSpec("image:0", (None, 4, 4, 3), "float32")


def test_random_inputs_are_deterministic_and_need_known_dimensions() -> None:
    first, second = random_feeds([IMAGE], 5), random_feeds([IMAGE], 5)
    assert first["image:0"].shape == (5, 4, 4, 3) and np.array_equal(first["image:0"], second["image:0"])
    assert random_feeds([TensorSpec("ids", (None, 3), "int64")], 2)["ids"].dtype == np.int64
    with pytest.raises(ModelError, match="--inputs x:1"):
        concrete_shape(TensorSpec("x", (None, None), "float32"), 1)


def test_user_data_is_split_into_calibration_and_held_out_parts() -> None:
    data = np.arange(20 * 48, dtype=np.float64).reshape(20, 48)  # flat rows, reshaped per input
    calibration = user_calibration({ONLY_INPUT: data}, [IMAGE], max_samples=10)
    assert not calibration.synthetic and calibration.notes_for("int8") == []
    assert calibration.samples["image:0"].shape == (10, 4, 4, 3)
    assert calibration.held_out["image:0"].shape == (4, 4, 4, 3)
    assert calibration.samples["image:0"].dtype == np.float32
    assert calibration.held_out["image:0"][0].ravel()[0] == 16 * 48  # the last fifth, unseen
    assert [feed["image:0"].shape for feed in calibration.single_samples()] == [(1, 4, 4, 3)] * 10


def test_named_arrays_and_mismatches() -> None:
    named = user_calibration({"image": np.zeros((5, 4, 4, 3))}, [IMAGE], 32)
    assert named.samples["image:0"].shape == (4, 4, 4, 3)
    with pytest.raises(ModelError, match="no array for input image:0"):
        user_calibration({"other": np.zeros((5, 4, 4, 3))}, [IMAGE], 32)
    with pytest.raises(ModelError, match=r"have shape \(7,\), the model wants \(4, 4, 3\)"):
        user_calibration({ONLY_INPUT: np.zeros((5, 7))}, [IMAGE], 32)


def test_synthetic_calibration_carries_a_warning() -> None:
    calibration = synthetic_calibration([IMAGE], samples=6, held_out=3)
    [note] = calibration.notes_for("int8")
    assert calibration.synthetic and "synthetic" in note
    assert calibration.notes_for("fp16") == []  # only calibrated precisions carry it
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
