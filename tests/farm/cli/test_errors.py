"""Bad input: one clear line on stderr, a non-zero exit, and nothing stored or queued."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import inspect

from db.engine import get_engine
from tests.conftest import Farm, assert_refused, write_token_model


def _assert_nothing_written(farm: Farm) -> None:
    assert redis.Redis.from_url(farm.settings.broker_url).llen("cpu") == 0
    engine = get_engine(farm.settings.database_url)
    if inspect(engine).has_table("job"):
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM job").scalar() == 0
    models = Path(farm.settings.artifact_root) / "models"
    assert not models.exists() or not any(models.iterdir())


@pytest.mark.parametrize(
    ("junk", "exit_code", "fragment"),
    [
        ("missing", 3, "no such file or folder"),
        ("text_file", 3, "not a model format farm reads"),
        ("corrupt_pb", 3, "not a valid TensorFlow GraphDef"),
        ("text_pb", 3, "not a valid TensorFlow GraphDef"),
        ("empty_dir", 3, "not a SavedModel"),
    ],
)
def test_bad_model_files_are_refused(
    sqlite_farm: Farm, junk_files: dict[str, Path], tmp_path: Path, junk: str, exit_code: int, fragment: str
) -> None:
    path = junk_files.get(junk, tmp_path / "missing.pb")
    # One of them as a real process, as a user runs it: the others in this one, as one.
    result = sqlite_farm.cli("submit", "convert", str(path), "--hw", "cpu", process=junk == "corrupt_pb")
    assert_refused(result, exit_code, fragment)
    _assert_nothing_written(sqlite_farm)


def test_a_truncated_graph_and_an_onnx_file_failing_the_checker_are_refused(
    sqlite_farm: Farm, sample_models: dict[str, Path], tmp_path: Path
) -> None:
    import onnx

    graph = sample_models["frozen_graph"].read_bytes()
    truncated = tmp_path / "truncated.pb"
    truncated.write_bytes(graph[: len(graph) // 2])  # a download cut off halfway
    assert_refused(sqlite_farm.cli("submit", "convert", str(truncated), "--hw", "cpu"), 3, "corrupt protobuf")

    model = onnx.load(str(sample_models["onnx"]))
    model.graph.node[0].input[0] = "nowhere"  # parses, but a node reads a tensor nothing makes
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    result = sqlite_farm.cli("submit", "convert", str(broken), "--hw", "cpu")
    assert_refused(result, 3, "not a valid ONNX model")
    _assert_nothing_written(sqlite_farm)


def test_unknown_hardware_is_refused_before_anything_is_queued(
    sqlite_farm: Farm, sample_models: dict[str, Path]
) -> None:
    result = sqlite_farm.cli("submit", "convert", str(sample_models["keras"]), "--hw", "cpu,tpu")
    assert_refused(result, 2, "unknown hardware class 'tpu'", "known: arm, cpu, fpga, gpu")
    _assert_nothing_written(sqlite_farm)


def test_fpga_refuses_a_tree_ensemble_on_the_client(sqlite_farm: Farm, tmp_path: Path) -> None:
    model = tmp_path / "boosted.json"
    model.write_text('{"learner": {"objective": {"name": "binary:logistic"}}, "version": [3, 2, 0]}')
    result = sqlite_farm.cli("submit", "convert", str(model), "--hw", "cpu,fpga")
    assert_refused(result, 3, "fpga cannot run a xgboost model's operators", "leave fpga out of --hw")
    _assert_nothing_written(sqlite_farm)


@pytest.mark.parametrize("bad", ["image:0:?,abc", "image:0:[]", ":3,4", "two words"])
def test_malformed_inputs_are_refused(sqlite_farm: Farm, sample_models: dict[str, Path], bad: str) -> None:
    result = sqlite_farm.cli("submit", "convert", str(sample_models["keras"]), "--hw", "cpu", "--inputs", bad)
    assert_refused(result, 2, "bad")
    _assert_nothing_written(sqlite_farm)


def test_unreachable_broker_is_one_line_and_nothing_written(
    sqlite_farm: Farm, sample_models: dict[str, Path]
) -> None:
    sqlite_farm.env["FARM_BROKER_URL"] = "redis://127.0.0.1:1/0"
    result = sqlite_farm.cli("submit", "convert", str(sample_models["keras"]), "--hw", "cpu")
    assert_refused(result, 5, "cannot reach the broker", "farm up")
    _assert_nothing_written(sqlite_farm)


def test_missing_argument_and_unknown_job(sqlite_farm: Farm) -> None:
    assert_refused(sqlite_farm.cli("submit", "convert", "--hw", "cpu"), 2, "Missing argument")
    assert_refused(sqlite_farm.cli("status", "deadbeef"), 6, "no job 'deadbeef'")
    assert_refused(sqlite_farm.cli("status", "../../etc/passwd"), 6, "no job '../../etc/passwd'")


def test_an_unreachable_database_is_named_within_seconds(sqlite_farm: Farm) -> None:
    sqlite_farm.env["FARM_DATABASE_URL"] = "postgresql+psycopg://farm:secret@127.0.0.1:1/farm"
    started = time.monotonic()
    result = sqlite_farm.cli("jobs")
    assert time.monotonic() - started < 15
    assert_refused(result, 5, "database postgresql+psycopg://farm:***@127.0.0.1:1/farm unavailable")


def test_worker_without_its_toolchain_refuses_its_queue(sqlite_farm: Farm) -> None:
    # sys.modules[name] = None makes the module unfindable, as if the extra were not installed.
    # `farm worker` execs the worker's own program, so the test runs that program directly.
    code = "import sys; sys.modules['tf2onnx'] = None; import workers.__main__ as w; w.main(['--hw', 'cpu'])"
    result = subprocess.run(
        [sys.executable, "-c", code], env=sqlite_farm.env, capture_output=True, text=True, timeout=60
    )
    shown_as = "farm worker --hw cpu (on a host without tf2onnx)"
    assert_refused(
        result, 4, "cpu worker cannot take its queue", "tf2onnx", "pip install 'farm[cpu]'", shown_as=shown_as
    )


def test_a_gpu_worker_on_a_host_without_tensorrt_or_gpu_refuses_to_start(sqlite_farm: Farm) -> None:
    from workers.backends import class_problems

    if not class_problems("gpu"):
        pytest.skip("this host can serve the gpu queue")
    result = sqlite_farm.cli("worker", "--hw", "gpu", timeout=60)
    # Both runtimes are named, each with what it lacks: a GPU, and its own toolchain.
    assert_refused(result, 4, "gpu worker cannot take its queue", "gpu-ort: ", "gpu-tensorrt: ")
    assert "no NVIDIA GPU" in result.stderr and "pip install 'farm[tensorrt]'" in result.stderr


@pytest.mark.parametrize(
    ("options", "exit_code", "fragment"),
    [
        (["--precision", "bf16"], 2, "unknown precision bf16"),
        (["--hw", "fpga", "--precision", "fp32"], 2, "fpga builds int8; none of fp32 asked for"),
        (["--calib", "missing.npy"], 2, "missing.npy does not exist"),
        (["--calib", "notes.txt"], 2, "expected .npy, .npz, .parquet"),
        (["--calib", "broken.npy"], 2, "broken.npy could not be read"),
        (["--calib", "one.npy"], 2, "needs at least 2 samples"),
        (["--min-top1", "2"], 2, "--min-top1"),
        (["--atol", "-1"], 2, "--atol"),
        (["--max-mean-error", "-1"], 2, "--max-mean-error"),
        (["--eval", "unlabelled.npz"], 2, "--eval file unlabelled.npz has no labels"),
        (["--eval", "missing.npz"], 2, "--eval file"),
        (["--calib", "badlabels.npz"], 2, "labels must be one class index"),
        (["--calib", "unlabelled.npz", "--max-accuracy-drop", "2"], 2, "--max-accuracy-drop needs labelled"),
        (["--max-accuracy-drop", "2"], 2, "--max-accuracy-drop needs labelled samples"),
        (
            ["--calib", "wrongshape.npy"],
            2,
            "samples for input image:0 have shape (5), the model takes (16,16,3)",
        ),
        (["--calib", "complex.npy"], 2, "complex.npy: expected numbers, one sample per row"),
        (["--calib", "twonames.npz"], 2, "has no array for input image:0 (it has: a, b)"),
        (["--eval", "wrongshape.npz"], 2, "--eval file wrongshape.npz: samples for input image:0 have shape"),
        (["--output-kind", "scores"], 2, "--output-kind wants NAME=KIND, not 'scores'"),
        (["--output-kind", "y=boxes"], 2, "--output-kind y: unknown kind 'boxes' (one of classes, binary,"),
        (["--output-kind", "y=classes:1"], 2, "--output-kind y: only values take a channel axis"),
        (["--output-kind", "y=values:0"], 2, "axis 0 is the batch, not a channel axis"),
        (["--output-kind", "y=values", "--output-kind", "y=classes"], 2, "names output y twice"),
    ],
)
def test_bad_conversion_options_are_refused(
    sqlite_farm: Farm,
    sample_models: dict[str, Path],
    tmp_path: Path,
    options: list[str],
    exit_code: int,
    fragment: str,
) -> None:
    import numpy as np

    (tmp_path / "notes.txt").write_text("not data\n")
    (tmp_path / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    np.save(tmp_path / "one.npy", np.zeros((1, 16, 16, 3), dtype=np.float32))
    images = np.zeros((4, 16, 16, 3), dtype=np.float32)
    np.savez(tmp_path / "unlabelled.npz", image=images)
    np.savez(tmp_path / "badlabels.npz", image=images, labels=np.array([0.5, 1, 2, 3]))
    np.save(tmp_path / "wrongshape.npy", np.zeros((4, 5), dtype=np.float32))
    np.save(tmp_path / "complex.npy", images.astype(np.complex64))
    np.savez(tmp_path / "twonames.npz", a=images, b=images)
    np.savez(tmp_path / "wrongshape.npz", image=np.zeros((4, 8, 8, 3)), labels=np.arange(4))
    options = [str(tmp_path / o) if o.endswith((".npy", ".npz", ".txt")) else o for o in options]
    hw = [] if "--hw" in options else ["--hw", "cpu"]
    result = sqlite_farm.cli("submit", "convert", str(sample_models["keras"]), *hw, *options)
    assert_refused(result, exit_code, fragment)
    _assert_nothing_written(sqlite_farm)


def test_report_of_an_unknown_job_or_a_bad_plot_name(sqlite_farm: Farm) -> None:
    assert_refused(sqlite_farm.cli("report", "deadbeef"), 6, "no job 'deadbeef'")
    assert_refused(sqlite_farm.cli("report", "deadbeef", "--plot", "chart.svg"), 2, "wants a .png")


@pytest.mark.parametrize("model", ["frozen_graph", "saved_model", "keras", "onnx"])
@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        ("pixels", "--inputs pixels: the "),  # "model has no such input" or "graph has no node pixels"
        ("image:0:?,8,8,3", "--inputs image:0: shape (?,8,8,3) contradicts the model's (?,16,16,3)"),
        ("image:0:?,16,16", "contradicts the model's (?,16,16,3)"),
    ],
)
def test_inputs_the_model_does_not_have_are_refused_on_the_client(
    sqlite_farm: Farm, sample_models: dict[str, Path], model: str, inputs: str, fragment: str
) -> None:
    result = sqlite_farm.cli(
        "submit", "convert", str(sample_models[model]), "--hw", "cpu", "--inputs", inputs
    )
    assert_refused(result, 2, fragment)
    _assert_nothing_written(sqlite_farm)


def test_an_output_kind_for_an_output_the_model_lacks_is_refused_on_the_client(
    sqlite_farm: Farm, sample_models: dict[str, Path]
) -> None:
    result = sqlite_farm.cli(
        "submit", "convert", str(sample_models["onnx"]), "--hw", "cpu", "--output-kind", "boxes=values"
    )
    assert_refused(result, 2, "--output-kind names boxes, not an output of the model (it has ")
    _assert_nothing_written(sqlite_farm)


def test_calibration_of_the_wrong_dtype_is_refused_for_an_integer_input(
    sqlite_farm: Farm, tmp_path: Path
) -> None:
    import numpy as np

    model = write_token_model(tmp_path / "tokens.onnx")
    np.save(tmp_path / "floats.npy", np.random.default_rng(0).random((8, 6)))  # float64 token ids
    result = sqlite_farm.cli(
        "submit", "convert", str(model), "--hw", "cpu", "--calib", str(tmp_path / "floats.npy")
    )
    assert_refused(result, 2, "samples for input ids are float64, the model takes int64")
    _assert_nothing_written(sqlite_farm)
