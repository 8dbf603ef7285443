"""`farm export JOB --format triton --to DIR`, on real ONNX models and real job-store rows (SQLite):
Triton configs parsed by Triton's own ModelConfig protobuf and checked against the model files;
batch-first models batched by Triton, models batched on another axis or with a fixed batch not;
a bundle's score.py run for real; and every refusal leaves nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from google.protobuf import text_format
from onnx import TensorProto, helper
from tritonclient.grpc import model_config_pb2

from db import store
from db.engine import ensure_schema, session_scope
from db.models import BenchmarkResult, Job, Variant
from farm.client.export import export_job
from farm.client.triton import onnx_tensors
from farm.core.artifacts import open_store, sha256_of
from farm.core.errors import FarmError
from farm.core.settings import FarmSettings
from farm.samples import write_mlp_onnx
from tests.conftest import assert_refused, farm_environment, run_cli_in_process, write_token_model

# Throughput per batch size: batch 4 is the best, not the largest measured.
THROUGHPUT = {1: 900.0, 2: 1500.0, 4: 2600.0, 8: 2400.0}


@dataclass
class Built:
    """A variant to record as a worker would: its model file and what it was verified as."""

    hardware: str
    backend: str
    precision: str
    model: Path
    signature: dict[str, Any]
    format: str = "onnx"
    passed: bool = True
    details: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def env(tmp_path: Path, sqlite_url: str) -> dict[str, str]:
    """A farm's environment; export needs the job store and the artifact store, no broker."""
    return farm_environment(tmp_path / "home", "redis://127.0.0.1:9/0", sqlite_url)


@pytest.fixture
def settings(env: dict[str, str]) -> FarmSettings:
    return FarmSettings(home=Path(env["FARM_HOME"]), database_url=env["FARM_DATABASE_URL"])


def signature(inputs: list[tuple[str, list[int | None], str, int | None]], outputs: list[str], **moved: int):
    """As workers/convert.py records it: shapes in sample layout (the batch first)."""
    return {
        "inputs": [{"name": n, "shape": s, "dtype": d, "batch_axis": a} for n, s, d, a in inputs],
        "outputs": outputs,
        "output_batch_axes": moved,
    }


MLP_SIGNATURE = signature([("features", [None, 20], "float32", 0)], ["probabilities"])


def record_job(
    settings: FarmSettings,
    model_name: str,
    variants: list[Built],
    *,
    state: str = "succeeded",
    kind: str = "convert",
    options: dict[str, Any] | None = None,
) -> str:
    """A job with its tasks, variants (models in the artifact store) and benchmark results."""
    ensure_schema(settings.database_url)
    artifacts = open_store(settings)
    with session_scope(settings.database_url) as session:
        job = Job(
            kind=kind, model_name=model_name, model_key="k", model_sha256="0" * 64, model_format="onnx",
            options=options or {},
        )  # fmt: skip
        tasks = store.create_job(session, job, sorted({v.hardware for v in variants}) or ["cpu"], kind)
        for task in tasks:
            task.state = state
        for built in variants:
            sha256 = sha256_of(built.model)
            variant = Variant(
                job_id=job.id, task_id=next(t.id for t in tasks if t.hardware == built.hardware),
                hardware=built.hardware, backend=built.backend, format=built.format,
                precision=built.precision, artifact_key=artifacts.put(built.model, f"variants/{sha256}/m"),
                sha256=sha256, size_bytes=built.model.stat().st_size, passed=built.passed,
                failure=None if built.passed else "accuracy too low", max_abs_error=0.002,
                max_rel_error=0.01, nan_count=0, inf_count=0, atol=0.05, rtol=0.1, gate="accuracy",
                verified_on="calibration", verify_samples=251, accuracy=0.97, reference_accuracy=0.975,
                signature=built.signature, details=built.details,
            )  # fmt: skip
            session.add(variant)
            session.flush()
            assert variant.id is not None
            for batch, throughput in THROUGHPUT.items():
                p50 = 1000 * batch / throughput
                session.add(BenchmarkResult(
                    variant_id=variant.id, host="bench-host", hardware="x86 cpu",
                    runtime="onnxruntime 1.32.0", batch_size=batch, p50_ms=p50, p95_ms=p50 * 1.1,
                    p99_ms=p50 * 1.2, throughput_per_s=throughput, runs=30, stable=True,
                ))  # fmt: skip
        return job.id


def parsed_config(folder: Path) -> Any:
    return text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


def tensors(config_tensors: Any) -> list[tuple[str, str, list[int]]]:
    return [(t.name, model_config_pb2.DataType.Name(t.data_type), list(t.dims)) for t in config_tensors]


def test_batch_first_variants_become_triton_models_with_their_record(
    tmp_path: Path, env: dict[str, str], settings: FarmSettings
) -> None:
    mlp = write_mlp_onnx(tmp_path / "mlp.onnx")
    job_id = record_job(settings, "mlp.onnx", [
        Built("cpu", "native", "fp32", mlp, MLP_SIGNATURE, format="onnx"),
        Built("cpu", "cpu", "fp32", mlp, MLP_SIGNATURE),
        Built("cpu", "cpu", "int8", mlp, MLP_SIGNATURE, passed=False),
        Built("gpu", "gpu-ort", "fp16", mlp, MLP_SIGNATURE),
    ])  # fmt: skip
    out = tmp_path / "exports" / "deploy"
    result = run_cli_in_process(["export", job_id, "--format", "triton", "--to", str(out)], env)
    assert result.returncode == 0, result.stderr
    models = (("mlp_cpu_cpu_fp32", "KIND_CPU"), ("mlp_gpu_gpu-ort_fp16", "KIND_GPU"))
    assert result.stdout.splitlines() == [
        *(
            f"model {name}: {out}/triton/{name} (onnxruntime_onnx, max_batch_size 4, {kind})"
            for name, kind in models
        ),
        "not exported: cpu cpu int8 failed verification",
    ]
    assert sorted(p.name for p in out.iterdir()) == ["triton"]  # no bundles: Triton serves both
    assert [p.name for p in out.parent.iterdir()] == ["deploy"]  # no staging folder left beside it
    for name, kind in models:
        folder = out / "triton" / name
        assert (folder / "1" / "model.onnx").read_bytes() == mlp.read_bytes()
        config = parsed_config(folder)
        assert (config.name, config.platform, config.max_batch_size) == (name, "onnxruntime_onnx", 4)
        assert tensors(config.input) == [("features", "TYPE_FP32", [20])]  # the batch left out
        assert tensors(config.output) == [("probabilities", "TYPE_FP32", [10])]
        assert config.HasField("dynamic_batching")
        assert [(group.kind, group.count) for group in config.instance_group] == [
            (model_config_pb2.ModelInstanceGroup.Kind.Value(kind), 1)
        ]
        parameters = {key: value.string_value for key, value in config.parameters.items()}
        assert parameters["farm.verdict"] == "passed" and parameters["farm.passed"] == "true"
        assert parameters["farm.job"] == job_id and parameters["farm.best_batch"] == "4"
        assert parameters["farm.gate"] == "accuracy" and parameters["farm.verified_on"] == "calibration"
        assert parameters["farm.accuracy"] == "0.97" and parameters["farm.verify_samples"] == "251"
        assert float(parameters["farm.p50_ms"]) == pytest.approx(1000 / 900)
        assert float(parameters["farm.throughput_per_s"]) == 2600.0
        assert parameters["farm.host"] == "bench-host" and parameters["farm.sha256"] == sha256_of(mlp)
        assert parameters["farm.runtime"] == "onnxruntime 1.32.0"


def _stateful_model(target: Path) -> Path:
    """A recurrent-style model: ``x`` (batch, 4) and a state ``(2, batch, 8)`` batched on axis 1."""
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Neg", ["state"], ["next_state"])]
    graph = helper.make_graph(
        nodes,
        "stateful",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "batch", 8]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("next_state", TensorProto.FLOAT, [2, "batch", 8]),
        ],
    )
    return _saved(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), target)


def _fixed_batch_model(target: Path, output_shape: list[int] | None = None) -> Path:
    """``x`` (1, 4) -> ``y``: a batch of one, fixed; with ``output_shape`` None, y's shape undeclared."""
    output = (
        helper.make_tensor_value_info("y", TensorProto.FLOAT, output_shape)
        if output_shape is not None
        else helper.make_empty_tensor_value_info("y")
    )
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [output],
    )
    return _saved(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), target)


def _complex_model(target: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "complex",
        [helper.make_tensor_value_info("x", TensorProto.COMPLEX64, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.COMPLEX64, [1, 4])],
    )
    return _saved(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), target)


def _stateful_signature() -> dict:
    """A recurrent model's: its state batched on axis 1, fed and returned."""
    return signature(
        [("x", [None, 4], "float32", 0), ("state", [None, 2, 8], "float32", 1)], ["y", "next_state"],
        next_state=1,
    )  # fmt: skip


def _saved(model: onnx.ModelProto, target: Path) -> Path:
    model.ir_version = 8
    onnx.save(model, str(target))
    return target


def test_models_batched_on_another_axis_or_with_a_fixed_batch_are_not_batched_by_triton(
    tmp_path: Path, settings: FarmSettings
) -> None:
    stateful_signature = _stateful_signature()
    token_signature = signature([("ids", [None, 6], "int64", 0)], ["mean"])
    job_id = record_job(settings, "state model.v2.onnx", [
        Built("cpu", "cpu", "fp32", _stateful_model(tmp_path / "stateful.onnx"), stateful_signature),
        Built("arm", "arm-ort", "fp32", _fixed_batch_model(tmp_path / "fixed.onnx", [1, 4]),
              signature([("x", [1, 4], "float32", 0)], ["y"])),
        Built("arm", "arm-ort", "dynamic", write_token_model(tmp_path / "tokens.onnx"), token_signature),
    ])  # fmt: skip
    exported, left = export_job(settings, job_id, "triton", tmp_path / "out")
    assert left == [] and [e.kind for e in exported] == ["model"] * 3
    repository = tmp_path / "out" / "triton"
    configs = {e.name: parsed_config(e.path) for e in exported}
    assert sorted(configs) == sorted(p.name for p in repository.iterdir())

    stateful = configs["state_model_v2_cpu_cpu_fp32"]  # the name made safe: letters, digits, _ and -
    assert stateful.max_batch_size == 0 and not stateful.HasField("dynamic_batching")
    assert tensors(stateful.input) == [("x", "TYPE_FP32", [-1, 4]), ("state", "TYPE_FP32", [2, -1, 8])]
    assert tensors(stateful.output) == [("y", "TYPE_FP32", [-1, 4]), ("next_state", "TYPE_FP32", [2, -1, 8])]

    fixed = configs["state_model_v2_arm_arm-ort_fp32"]
    assert fixed.max_batch_size == 0 and not fixed.HasField("dynamic_batching")
    assert tensors(fixed.input) == [("x", "TYPE_FP32", [1, 4])] and tensors(fixed.output) == [
        ("y", "TYPE_FP32", [1, 4])
    ]

    tokens = configs["state_model_v2_arm_arm-ort_dynamic"]  # its output is a scalar: no batch to share
    assert tokens.max_batch_size == 0 and not tokens.HasField("dynamic_batching")
    assert tensors(tokens.input) == [("ids", "TYPE_INT64", [-1, 6])]
    assert tensors(tokens.output) == [("mean", "TYPE_FP32", [1])]
    assert list(tokens.output[0].reshape.shape) == [] and tokens.output[0].HasField("reshape")


def test_a_tensorrt_plan_takes_its_inputs_from_the_signature(tmp_path: Path, settings: FarmSettings) -> None:
    """No GPU here: a fabricated plan (bytes Triton never loads in this test) checks the config."""
    plan = tmp_path / "model_fp16.engine"
    plan.write_bytes(b"not a real engine")
    engine = {"gpu_name": "NVIDIA H200", "compute_capability": "9.0", "tensorrt_version": "10.9"}
    job_id = record_job(settings, "mlp.onnx", [
        Built("gpu", "gpu-tensorrt", "fp16", plan, MLP_SIGNATURE, format="tensorrt", details=engine),
    ])  # fmt: skip
    [exported], _ = export_job(settings, job_id, "triton", tmp_path / "out")
    assert (exported.path / "1" / "model.plan").read_bytes() == plan.read_bytes()
    config = parsed_config(exported.path)
    assert (config.platform, config.max_batch_size) == ("tensorrt_plan", 4)
    assert tensors(config.input) == [("features", "TYPE_FP32", [20])]
    assert len(config.output) == 0  # Triton completes the outputs from the engine
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert config.parameters["farm.details.gpu_name"].string_value == "NVIDIA H200"


def _run_score(
    bundle: Path, tmp_path: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, np.ndarray]]:
    """The bundle's score.py as a user runs it: its own process, from another folder."""
    out = tmp_path / f"{bundle.name}-outputs.npz"
    result = subprocess.run(
        [sys.executable, str(bundle / "score.py"), str(out)], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    with np.load(out) as outputs:
        return result, {name: outputs[name] for name in outputs.files}


def test_a_dpu_bundle_scores_the_jobs_calibration_samples_for_real(
    tmp_path: Path, settings: FarmSettings
) -> None:
    mlp = write_mlp_onnx(tmp_path / "mlp.onnx")
    calib = tmp_path / "calib.npz"
    features = np.random.default_rng(1).normal(size=(30, 20)).astype(np.float64)  # cast when read
    np.savez(calib, features=features, labels=np.arange(30) % 10)
    sha256 = sha256_of(calib)
    key = open_store(settings).put(calib, f"calibration/{sha256}/calib.npz")
    job_id = record_job(
        settings, "mlp.onnx", [Built("fpga", "fpga", "int8", mlp, MLP_SIGNATURE)],
        options={"calib_key": key, "calib_sha256": sha256},
    )  # fmt: skip
    [exported], _ = export_job(settings, job_id, "triton", tmp_path / "out")
    bundle = tmp_path / "out" / "bundles" / "mlp_fpga_fpga_int8"
    assert exported.kind == "bundle" and exported.path == bundle
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bundles"]  # no Triton model
    assert sorted(p.name for p in bundle.iterdir()) == [
        "manifest.json",
        "model.onnx",
        "sample.npz",
        "score.py",
    ]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["inputs"] == [
        {"name": "features", "shape": [None, 20], "dtype": "float32", "batch_axis": 0}
    ]
    assert manifest["outputs"] == [
        {"name": "probabilities", "shape": [None, 10], "dtype": "float32", "batch_axis": 0}
    ]
    assert manifest["precision"] == "int8" and manifest["verdict"] == "passed"
    assert manifest["runtime"] == "onnxruntime 1.32.0" and manifest["host"] == "bench-host"
    assert manifest["sample"] == "sample.npz" and "--calib file calib.npz" in manifest["sample_from"]
    with np.load(bundle / "sample.npz") as sample:
        assert sample["features"].dtype == np.float32
        np.testing.assert_array_equal(sample["features"], features[:8].astype(np.float32))

    result, outputs = _run_score(bundle, tmp_path)
    assert result.stdout.splitlines() == ["probabilities: float32 (8, 10)"]
    assert "no VitisAIExecutionProvider here" in result.stderr
    expected = ort.InferenceSession(str(mlp)).run(
        ["probabilities"], {"features": features[:8].astype(np.float32)}
    )
    np.testing.assert_allclose(outputs["probabilities"], expected[0], rtol=1e-5, atol=1e-6)


def test_a_bundle_without_calibration_samples_gets_seeded_random_data_in_the_models_layout(
    tmp_path: Path, settings: FarmSettings
) -> None:
    stateful_signature = _stateful_signature()
    model = _stateful_model(tmp_path / "stateful.onnx")
    job_id = record_job(settings, "rnn.onnx", [Built("fpga", "fpga", "int8", model, stateful_signature)])
    [exported], _ = export_job(settings, job_id, "triton", tmp_path / "out")
    manifest = json.loads((exported.path / "manifest.json").read_text())
    assert [(t["name"], t["batch_axis"]) for t in manifest["inputs"]] == [("x", 0), ("state", 1)]
    assert [(t["name"], t["batch_axis"]) for t in manifest["outputs"]] == [("y", 0), ("next_state", 1)]
    assert "seeded random data" in manifest["sample_from"]
    with np.load(exported.path / "sample.npz") as sample:
        assert sample["x"].shape == (8, 4) and sample["state"].shape == (2, 8, 8)  # the batch on axis 1
        state = sample["state"]
    result, outputs = _run_score(exported.path, tmp_path)
    assert result.stdout.splitlines() == ["y: float32 (8, 4)", "next_state: float32 (2, 8, 8)"]
    np.testing.assert_array_equal(outputs["next_state"], -state)


@pytest.fixture
def finished_job(tmp_path: Path, settings: FarmSettings) -> str:
    mlp = write_mlp_onnx(tmp_path / "mlp.onnx")
    return record_job(settings, "mlp.onnx", [Built("cpu", "cpu", "fp32", mlp, MLP_SIGNATURE)])


def _refused_export(env: dict[str, str], target: Path, job_id: str, fmt: str = "triton") -> Any:
    before = sorted(p.name for p in target.parent.iterdir())
    result = run_cli_in_process(["export", job_id, "--format", fmt, "--to", str(target)], env)
    assert sorted(p.name for p in target.parent.iterdir()) == before  # nothing written, nothing staged
    return result


def test_a_folder_that_is_not_empty_and_an_unknown_format_are_refused(
    tmp_path: Path, env: dict[str, str], finished_job: str
) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    assert_refused(_refused_export(env, taken, finished_job), 2, "--to", "is not an empty folder")
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]
    assert_refused(_refused_export(env, tmp_path / "out", finished_job, "onnx"), 2, "unknown --format 'onnx'")
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty folder is taken as it is
    assert (
        run_cli_in_process(["export", finished_job, "--format", "triton", "--to", str(empty)], env).returncode
        == 0
    )
    assert (empty / "triton" / "mlp_cpu_cpu_fp32" / "config.pbtxt").is_file()


def test_unfinished_scoring_and_unverified_jobs_are_refused(
    tmp_path: Path, env: dict[str, str], settings: FarmSettings
) -> None:
    mlp = write_mlp_onnx(tmp_path / "mlp.onnx")
    running = record_job(
        settings, "mlp.onnx", [Built("cpu", "cpu", "fp32", mlp, MLP_SIGNATURE)], state="running"
    )
    scoring = record_job(settings, "mlp.onnx", [], kind="infer")
    unverified = record_job(settings, "mlp.onnx", [
        Built("cpu", "native", "fp32", mlp, MLP_SIGNATURE),
        Built("cpu", "cpu", "int8", mlp, MLP_SIGNATURE, passed=False),
    ])  # fmt: skip
    # A folder name each: the README's table of refusals keeps one row per command line.
    running_refused = _refused_export(env, tmp_path / "unfinished", running)
    assert_refused(running_refused, 2, f"job {running} is running", "once it has finished")
    assert_refused(_refused_export(env, tmp_path / "scores", scoring), 2, "is a scoring job")
    unverified_refused = _refused_export(env, tmp_path / "unverified", unverified)
    assert_refused(unverified_refused, 2, "no verified variant to export", "1 built")
    assert_refused(_refused_export(env, tmp_path / "nothing", "0123456789ab"), 6, "no job '0123456789ab'")


def test_an_export_that_fails_half_way_leaves_nothing(tmp_path: Path, settings: FarmSettings) -> None:
    mlp = write_mlp_onnx(tmp_path / "mlp.onnx")
    complex_model = _complex_model(tmp_path / "complex.onnx")  # a type Triton has no name for
    job_id = record_job(settings, "m.onnx", [
        Built("cpu", "cpu", "fp32", mlp, MLP_SIGNATURE),  # written first, into the staging folder
        Built("cpu", "cpu", "int8", complex_model, signature([("x", [1, 4], "complex64", 0)], ["y"])),
    ])  # fmt: skip
    with pytest.raises(FarmError, match="Triton has no type for complex64"):
        export_job(settings, job_id, "triton", tmp_path / "exports" / "out")
    assert list((tmp_path / "exports").iterdir()) == []  # neither the export nor its staging folder


def test_an_output_shape_the_exporter_left_out_is_inferred_for_the_config(tmp_path: Path) -> None:
    _, outputs = onnx_tensors(_fixed_batch_model(tmp_path / "undeclared.onnx"))  # y: no type, no shape
    assert [(o.name, o.shape, o.dtype) for o in outputs] == [("y", (1, 4), "float32")]
