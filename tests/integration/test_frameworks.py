"""Every framework in, every class out (farm/samples_frameworks.py builds the models): scikit-learn,
XGBoost and LightGBM models convert on cpu and arm and batch scoring gives exactly what the library
itself predicts; PyTorch models (ExportedProgram, TorchScript) and ONNX as real exports come
(Constant-node weights, height and width left open) convert on cpu, arm and fpga, through real
workers. What a class cannot run is refused at submit, in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from farm import samples_frameworks
from tests.conftest import Farm, assert_refused, built_once
from tests.integration.test_convert import submit, wait_for_tasks

pytestmark = pytest.mark.integration
TABULAR_MODELS = ("forest", "pipeline", "xgboost", "lightgbm")


@pytest.fixture(scope="session")
def tabular(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return built_once(tmp_path_factory, "frameworks-tabular", samples_frameworks.write_tabular)


@pytest.fixture(scope="session")
def torch_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return built_once(tmp_path_factory, "frameworks-torch", samples_frameworks.write_torch)


@pytest.fixture(scope="session")
def open_shape(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return built_once(tmp_path_factory, "frameworks-onnx", samples_frameworks.write_open_shape_onnx)


def test_tabular_models_convert_on_cpu_and_arm_and_score_exactly_as_the_library_predicts(
    shared_farm: Farm, tabular: dict[str, Path], tmp_path: Path
) -> None:
    farm = shared_farm
    calib = ("--calib", str(tabular["calib"]))
    # What each job needs to show, and no more (the suite's time): the MLP's INT8 built once,
    # XGBoost's reduced precisions refused as nothing to quantize, the others FP32 only.
    extra = {
        "pipeline": ("--allow-pickle", "--no-search"),
        "forest": ("--precision", "fp32"),
        "lightgbm": ("--precision", "fp32"),
        "xgboost": (),
    }
    jobs = {name: submit(farm, tabular[name], *calib, *extra[name], hw="cpu,arm") for name in TABULAR_MODELS}
    tasks = wait_for_tasks(farm, list(jobs.values()), timeout=300)
    assert [(t.state, t.error) for t in tasks] == [("succeeded", None)] * len(tasks)
    for name, job_id in jobs.items():
        rows = {(row["hardware"], row["backend"], row["precision"]): row for row in _report(farm, job_id)}
        for hardware, backend in (("cpu", "cpu"), ("arm", "arm-ort")):
            assert rows[(hardware, backend, "fp32")]["passed"], (name, rows[(hardware, backend, "fp32")])
        if name == "pipeline":  # a network quantizes: its INT8 is a real variant
            assert ("cpu", "cpu", "int8") in rows
        elif name == "xgboost":  # a tree ensemble has no integer kernels: INT8 says so, unbuilt
            assert ("cpu", "cpu", "int8") not in rows
            status = farm.cli("status", job_id)
            assert "nothing to quantize" in status.stdout + status.stderr, status.stdout
        # The fastest verified variant of each class serves; the MLP's INT8 is close, not equal,
        # to the library's predictions, so its scoring is pinned to FP32.
        pins = ("--precision", "cpu=fp32,arm=fp32") if name == "pipeline" else ()
        scored = _score(farm, job_id, tabular["data"], tmp_path / name, *pins)
        _assert_library_predictions(name, tabular[name], scored)


def _score(farm: Farm, job_id: str, data: Path, folder: Path, *extra: str) -> dict[str, np.ndarray]:
    columns = ",".join(f"f{index}" for index in range(samples_frameworks.FEATURES))
    result = farm.cli(
        "submit", "infer", job_id, "--data", str(data), "--out", str(folder / "out"), "--hw", "cpu,arm",
        "--columns", columns, "--keep", "id", "--shard-rows", "500", "--wait", *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    scoring_job = result.stdout.split()[0]
    merged = folder / "scored.parquet"
    assert farm.cli("result", scoring_job, "--to", str(merged)).returncode == 0
    table = pq.read_table(merged).sort_by("id")
    assert table["id"].to_pylist() == list(range(table.num_rows))  # every row once
    return {name: np.asarray(table[name].to_pylist()) for name in table.column_names}


def _assert_library_predictions(name: str, model: Path, scored: dict[str, np.ndarray]) -> None:
    features, _ = samples_frameworks.tabular_task(len(scored["id"]), samples_frameworks.SEED + 1)
    if name == "lightgbm":
        import lightgbm as lgb

        expected = lgb.Booster(model_file=str(model)).predict(features)
        np.testing.assert_allclose(scored["prediction"], expected, rtol=1e-4, atol=1e-4)
        return
    probabilities = _library_probabilities(name, model, features)
    np.testing.assert_array_equal(scored["label"], probabilities.argmax(axis=1))
    np.testing.assert_allclose(np.stack(scored["probabilities"]), probabilities, atol=1e-4)


def _library_probabilities(name: str, model: Path, features: np.ndarray) -> np.ndarray:
    if name == "xgboost":
        import xgboost as xgb

        classifier = xgb.XGBClassifier()
        classifier.load_model(str(model))
        return classifier.predict_proba(features)
    if name == "forest":
        import skops.io as sio

        estimator = sio.load(model, trusted=sio.get_untrusted_types(file=model))
    else:
        import joblib

        estimator = joblib.load(model)
    assert (estimator.predict(features) == estimator.predict_proba(features).argmax(axis=1)).all()
    return estimator.predict_proba(features)


def test_pytorch_and_onnx_as_exported_convert_on_every_class(
    shared_farm: Farm, torch_models: dict[str, Path], open_shape: dict[str, Path]
) -> None:
    farm = shared_farm
    models = {
        "pt2": (torch_models["pt2"], torch_models["calib"]),
        "torchscript": (torch_models["torchscript"], torch_models["calib"]),
        "open_shape": (open_shape["model"], open_shape["calib"]),
    }
    jobs = {
        name: submit(farm, model, "--calib", str(calib), "--precision", "fp32,int8", hw="cpu,arm,fpga")
        for name, (model, calib) in models.items()
    }
    tasks = wait_for_tasks(farm, list(jobs.values()), timeout=300)
    assert [(t.state, t.error) for t in tasks] == [("succeeded", None)] * len(tasks)
    for name, job_id in jobs.items():
        rows = _report(farm, job_id)
        built = {(row["hardware"], row["backend"], row["precision"]) for row in rows}
        assert {("cpu", "cpu", "fp32"), ("arm", "arm-ort", "fp32"), ("fpga", "fpga", "int8")} <= built, name
        assert not any(row["backend"] == "arm" for row in rows)  # TFLite takes TensorFlow models only
        arm_fp32 = next(
            r for r in rows if (r["hardware"], r["backend"], r["precision"]) == ("arm", "arm-ort", "fp32")
        )
        assert arm_fp32["passed"] and any("standing in for an ARM" in note for note in arm_fp32["notes"])
        native = [row for row in rows if row["backend"] == "native"]
        assert native and all("pytorch" in row["format"] or name == "open_shape" for row in native)
        deprecated = any("TorchScript is deprecated" in note for row in native for note in row["notes"])
        assert deprecated == (name == "torchscript")
        if name != "pt2":  # the samples gave the shapes the model left open; the DPU is fixed to them
            fpga = next(row for row in rows if row["hardware"] == "fpga" and row["backend"] == "fpga")
            assert any("the samples' shape" in note for note in fpga["notes"]), fpga["notes"]


@pytest.mark.parametrize(
    ("case", "fragments"),
    [
        ("tree on fpga", ("fpga cannot run a skops model's operators",)),
        ("pickle unasked", ("--allow-pickle", "skops.io.dump")),
        ("pickled torch", ("pickled PyTorch", "torch.export.save")),
        ("open shape unsampled", ("unknown dimensions (?,3,?,?)", "--calib")),
        ("torchscript unshaped", ("TorchScript does not declare its input shapes",)),
    ],
)
def test_what_a_class_or_the_farm_cannot_take_is_refused_at_submit_in_one_line(
    sqlite_farm: Farm,
    tabular: dict[str, Path],
    torch_models: dict[str, Path],
    open_shape: dict[str, Path],
    case: str,
    fragments: tuple[str, ...],
) -> None:
    submissions = {
        "tree on fpga": (tabular["forest"], "cpu,fpga", 3),
        "pickle unasked": (tabular["pipeline"], "cpu", 2),
        "pickled torch": (torch_models["pickled"], "cpu", 3),
        "open shape unsampled": (open_shape["model"], "cpu", 2),
        "torchscript unshaped": (torch_models["torchscript"], "cpu", 2),
    }
    model, hardware, code = submissions[case]
    assert_refused(sqlite_farm.cli("submit", "convert", str(model), "--hw", hardware), code, *fragments)


def _report(farm: Farm, job_id: str) -> list[dict]:
    result = farm.cli("report", job_id, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["variants"]


@pytest.fixture(scope="session")
def recurrent(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return built_once(tmp_path_factory, "frameworks-recurrent", samples_frameworks.write_recurrent_onnx)


def test_a_recurrent_model_with_a_state_on_axis_1_and_a_scalar_input_converts_verifies_and_scores(
    shared_farm: Farm, recurrent: dict[str, Path], tmp_path: Path
) -> None:
    """The sample file gives every input one row per sample (the state as (samples, 2, 8), the
    sample rate once per sample); the farm feeds the model its own layout."""
    farm = shared_farm
    job_id = submit(farm, recurrent["model"], "--calib", str(recurrent["calib"]), hw="cpu,arm,fpga")
    tasks = {task.hardware: task for task in wait_for_tasks(farm, [job_id], timeout=300)}
    assert (tasks["cpu"].state, tasks["arm"].state) == ("succeeded", "succeeded"), tasks
    assert "internal error" not in (tasks["fpga"].error or "")  # a verdict, with its reason, if any
    rows = _report(farm, job_id)
    fp32 = {row["hardware"]: row for row in rows if row["precision"] == "fp32" and row["backend"] != "native"}
    assert fp32["cpu"]["passed"] and fp32["arm"]["passed"]
    assert fp32["cpu"]["verify_samples"] == 30  # the held-out fifth: every input's samples line up
    assert any(row["hardware"] == "fpga" and row["backend"] == "fpga" for row in rows)

    data = _recurrent_rows(tmp_path / "steps.parquet", 600)
    result = farm.cli(
        "submit", "infer", job_id, "--data", str(data), "--out", str(tmp_path / "out"), "--hw", "cpu",
        "--precision", "fp32", "--input", "x=x", "--input", "state=state", "--input", "sr=sr",
        "--keep", "id", "--wait",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    merged = tmp_path / "scored.parquet"
    assert farm.cli("result", result.stdout.split()[0], "--to", str(merged)).returncode == 0
    scored = pq.read_table(merged).sort_by("id")
    expected_scores, expected_state = _run_as_written(recurrent["model"], data)
    np.testing.assert_allclose(np.stack(scored["scores"].to_pylist()), expected_scores, atol=1e-5)
    # The next state comes back one row per sample: the model's (2, N, 8) with N moved first.
    np.testing.assert_allclose(np.stack(scored["next_state"].to_pylist()), expected_state, atol=1e-5)


def _recurrent_rows(target: Path, rows: int) -> Path:
    import pyarrow as pa

    rng = np.random.default_rng(8)
    x = rng.normal(0, 1, (rows, 16)).astype(np.float32)
    state = rng.normal(0, 0.5, (rows, 16)).astype(np.float32)  # each row's (2, 8), flattened
    table = pa.table(
        {
            "id": np.arange(rows),
            "x": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 16),
            "state": pa.FixedSizeListArray.from_arrays(pa.array(state.reshape(-1)), 16),
            "sr": np.full(rows, 16000, dtype=np.int64),
        }
    )
    pq.write_table(table, target)
    return target


def _run_as_written(model: Path, data: Path) -> tuple[np.ndarray, np.ndarray]:
    """The model run directly, in its own layout, on every row at once."""
    import onnxruntime as ort

    table = pq.read_table(data)
    x = np.stack(table["x"].to_pylist()).astype(np.float32)
    state = np.stack(table["state"].to_pylist()).astype(np.float32).reshape(-1, 2, 8).transpose(1, 0, 2)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    scores, next_state = session.run(None, {"x": x, "state": state, "sr": np.array(16000, dtype=np.int64)})
    return scores, next_state.transpose(1, 0, 2).reshape(len(x), -1)
