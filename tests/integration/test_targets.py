"""Every hardware target this machine can run (cpu, arm and fpga, the latter two emulated on x86),
each beside the native baseline, through real workers; then the report, the cache, verdicts and
what a failed variant means for its job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from google.protobuf import text_format
from sqlmodel import col, select
from tritonclient.grpc import model_config_pb2

from db.engine import session_scope
from db.models import BenchmarkResult, Variant
from farm.client.jobs import load_job
from farm.client.report import build_report
from tests.conftest import Farm
from tests.integration.test_convert import submit, wait_for_tasks

pytestmark = pytest.mark.integration
ALL_LOCAL_VARIANTS = [
    ("arm", "arm", "dynamic"),
    ("arm", "arm", "fp16"),
    ("arm", "arm", "fp32"),
    ("arm", "arm", "int8"),
    ("arm", "arm-ort", "dynamic"),  # arm's second runtime, ONNX Runtime: a TensorFlow model builds with both
    ("arm", "arm-ort", "fp32"),
    ("arm", "arm-ort", "int8"),
    ("arm", "native", "fp32"),
    ("cpu", "cpu", "fp32"),
    ("cpu", "cpu", "int8"),
    ("cpu", "native", "fp32"),
    ("fpga", "fpga", "int8"),
    ("fpga", "native", "fp32"),
]


def test_one_job_builds_verifies_and_compares_every_local_target(
    shared_farm: Farm, digits: dict[str, Path], tmp_path: Path
) -> None:
    """A classifier trained on real images, calibrated on its labelled training images: every
    variant passes, each with its accuracy on the held-out fifth beside the original's."""
    farm = shared_farm  # its one worker serves cpu, arm and fpga
    job_id = submit(farm, digits["model"], "--calib", str(digits["calib"]), hw="cpu,arm,fpga")
    tasks = wait_for_tasks(farm, [job_id])
    assert sorted((t.hardware, t.state, t.error, t.warnings) for t in tasks) == [
        (hw, "succeeded", None, []) for hw in ("arm", "cpu", "fpga")
    ]

    result = farm.cli("report", job_id, "--json", "--plot", str(tmp_path / "speedups.png"))
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["variants"]
    assert sorted((r["hardware"], r["backend"], r["precision"]) for r in rows) == ALL_LOCAL_VARIANTS
    for row in rows:
        assert row["passed"] and row["failure"] is None, row
        assert row["verified_on"] == "calibration" and row["verify_samples"] == 251  # a fifth of 1,257
        assert [(o["kind"], o["rule"]) for o in row["outputs"]] == [("classes", row["gate"])]
        assert not row["thin_evidence"]
        assert row["accuracy"] > 0.9 and abs(row["accuracy_change_points"]) <= 1, row
        assert row["gate"] == ("accuracy" if row["precision"] in ("fp16", "dynamic", "int8") else "tolerance")
        assert row["p50_ms"] > 0 and row["p99_ms"] >= row["p50_ms"] and row["throughput_per_s"] > 0
        assert row["speedup"] > 0 and row["size_bytes"] > 0
        assert not any("synthetic" in note for note in row["notes"])  # calibrated on the given file
        if row["backend"] == "native":
            assert row["speedup"] == 1.0 and row["format"] == "tensorflow"
        else:  # timed in windows alternating with the baseline's: a median ratio and its spread
            assert row["speedup_low"] <= row["speedup"] <= row["speedup_high"], row
    fpga = next(r for r in rows if r["backend"] == "fpga")
    assert any("DPU compile and on-device run not done" in note for note in fpga["notes"])
    assert (tmp_path / "speedups.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    with session_scope(farm.settings.database_url) as session:
        variants = list(session.exec(select(Variant).where(Variant.job_id == job_id)))
        ids = [v.id for v in variants]
        benchmarks = list(
            session.exec(select(BenchmarkResult).where(col(BenchmarkResult.variant_id).in_(ids)))
        )
    assert len({v.cache_key for v in variants}) == len(variants)
    paired = {b.variant_id for b in benchmarks if b.pairs > 0}
    assert paired == {v.id for v in variants if v.backend != "native"}

    table = farm.cli("report", job_id)
    assert table.returncode == 0, table.stderr
    assert "fpga onnx int8" in table.stdout and "arm tflite fp16" in table.stdout
    assert "baseline" in table.stdout and "accuracy" in table.stdout
    assert max(len(line) for line in table.stdout.splitlines()) <= 100, table.stdout

    _check_export(farm, job_id, digits["model"], tmp_path / "deploy")


TRITON_TYPES = {"FLOAT": "TYPE_FP32", "FLOAT16": "TYPE_FP16", "INT64": "TYPE_INT64"}


def _check_export(farm: Farm, job_id: str, keras_model: Path, target: Path) -> None:
    """`farm export`: every Triton config parsed by Triton's own ModelConfig and held against its
    model file and the report; TFLite and the DPU's ONNX in bundles whose score.py runs for real."""
    result = farm.cli("export", job_id, "--format", "triton", "--to", str(target))
    assert result.returncode == 0, result.stderr
    rows = {(r.hardware, r.backend, r.precision): r for r in build_report(load_job(farm.settings, job_id))}
    served = sorted(key for key in rows if key[1] in ("cpu", "arm-ort"))
    bundled = sorted(key for key in rows if key[1] in ("arm", "fpga"))
    assert len(result.stdout.splitlines()) == len(served) + len(bundled) == len(ALL_LOCAL_VARIANTS) - 3
    configs = {}
    for path in (target / "triton").glob("*/config.pbtxt"):
        config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
        key = tuple(config.parameters[f"farm.{k}"].string_value for k in ("hardware", "backend", "precision"))
        configs[key] = config
        assert config.name == path.parent.name and config.platform == "onnxruntime_onnx"
        assert config.max_batch_size == rows[key].best_batch and config.HasField("dynamic_batching")
        assert [g.kind for g in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_CPU]
        assert config.parameters["farm.verdict"].string_value == "passed"
        graph = onnx.load(str(path.parent / "1" / "model.onnx")).graph
        constants = {initializer.name for initializer in graph.initializer}
        inputs = [value for value in graph.input if value.name not in constants]
        assert _triton_tensors(config.input) == _onnx_tensors(inputs)
        assert _triton_tensors(config.output) == _onnx_tensors(graph.output)
    assert sorted(configs) == served

    manifests = {
        p.name: json.loads((p / "manifest.json").read_text()) for p in (target / "bundles").iterdir()
    }
    assert sorted((m["hardware"], m["backend"], m["precision"]) for m in manifests.values()) == bundled
    import tensorflow as tf  # the Keras model itself is the reference the bundles must agree with

    keras = tf.keras.models.load_model(keras_model)
    for name in ("digits_arm_arm_int8", "digits_fpga_fpga_int8"):
        _check_bundle(target / "bundles" / name, manifests[name], keras)


def _triton_tensors(tensors: Any) -> list[tuple[str, str, list[int]]]:
    return [(t.name, model_config_pb2.DataType.Name(t.data_type), list(t.dims)) for t in tensors]


def _onnx_tensors(values: Any) -> list[tuple[str, str, list[int]]]:
    """As Triton takes a batch-first model: the first (open) dimension is the batch, left out."""
    tensors = []
    for value in values:
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]
        assert dims[0] == -1, value  # the digits classifier batches on its first dimension
        kind = onnx.TensorProto.DataType.Name(value.type.tensor_type.elem_type)
        tensors.append((value.name, TRITON_TYPES[kind], dims[1:]))
    return tensors


def _check_bundle(bundle: Path, manifest: dict[str, Any], keras: Any) -> None:
    """score.py in its own process, on the bundle's sample: outputs as the manifest names them,
    one per sample, and the same digits the Keras model reads on at least 7 of the 8."""
    assert (bundle / manifest["model_file"]).is_file() and manifest["verdict"] == "passed"
    out = bundle.parent.parent.parent / f"{bundle.name}.npz"
    run = subprocess.run(
        [sys.executable, str(bundle / "score.py"), str(out)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    [digit] = manifest["inputs"]
    with np.load(bundle / "sample.npz") as sample, np.load(out) as scored:
        images, outputs = sample[digit["name"]], {name: scored[name] for name in scored.files}
    assert list(outputs) == [spec["name"] for spec in manifest["outputs"]]
    assert len(run.stdout.splitlines()) == len(outputs) and len(images) == manifest["samples"] == 8
    for spec in manifest["outputs"]:
        shape, declared = outputs[spec["name"]].shape, spec["shape"]
        assert shape[spec["batch_axis"]] == len(images), (spec, shape)
        if declared is not None:  # an ONNX model's (a TFLite model's output shapes are not read at export)
            assert len(shape) == len(declared) and all(
                d in (None, s) for d, s in zip(declared, shape, strict=True)
            )
    [scores] = outputs.values()
    agree = scores.argmax(-1) == keras.predict(images, verbose=0).argmax(-1)
    assert agree.sum() >= 7, (bundle.name, agree)


def test_resubmission_reuses_cached_variants_unless_forced(
    shared_farm: Farm, sample_models: dict[str, Path]
) -> None:
    farm = shared_farm
    model = str(sample_models["frozen_graph"])
    # --force: built now, so the newest build under each cache key is this job's.
    first = farm.cli("submit", "convert", model, "--hw", "cpu", "--force", "--wait")
    assert first.returncode == 0, first.stderr

    again = farm.cli("submit", "convert", model, "--hw", "cpu", "--wait")
    assert again.returncode == 0, again.stderr
    assert "cpu: succeeded (3 of 3 variants reused from the cache)" in again.stdout
    first_id, again_id = first.stdout.split()[0], again.stdout.split()[0]
    originals, copies = _variants(farm, first_id), _variants(farm, again_id)
    assert {v.reused_from for v in copies} == {v.id for v in originals}
    assert {(v.artifact_key, v.sha256) for v in copies} == {(v.artifact_key, v.sha256) for v in originals}

    forced = farm.cli("submit", "convert", model, "--hw", "cpu", "--precision", "int8", "--force", "--wait")
    assert forced.returncode == 0, forced.stderr
    assert "reused" not in forced.stdout, forced.stdout
    rebuilt = _variants(farm, forced.stdout.split()[0])
    assert sorted((v.backend, v.precision, v.reused_from) for v in rebuilt) == [
        ("cpu", "int8", None),
        ("native", "fp32", None),
    ]


def test_a_failed_variant_is_a_warning_a_cached_resubmission_repeats_and_strict_fails(
    shared_farm: Farm, sample_models: dict[str, Path], tmp_path: Path
) -> None:
    farm = shared_farm
    model = str(sample_models["keras"])
    strictest = ("--max-mean-error", "0")  # no INT8 variant has zero error: cpu int8 fails, fp32 passes
    first = farm.cli("submit", "convert", model, "--hw", "cpu", *strictest, "--force", "--wait")
    assert first.returncode == 0, first.stderr  # cpu has a verified variant: the job succeeds
    job_id = first.stdout.split()[0]
    warning = "warning: cpu: cpu int8 failed verification: mean error"
    assert "cpu: succeeded (1 warning)" in first.stdout
    assert warning in first.stdout.splitlines()[-1] and "(kept, never served)" in first.stdout
    int8 = next(v for v in _variants(farm, job_id) if v.backend == "cpu" and v.precision == "int8")
    assert not int8.passed and int8.mean_error > 0 and int8.max_mean_error == 0
    assert int8.failure and int8.failure.startswith("mean error") and int8.verified_on == "synthetic"

    status = farm.cli("status", job_id)
    assert status.returncode == 0 and warning in status.stdout and "FAIL" in status.stdout
    assert status.stdout.count("Verified on synthetic random inputs") == 1

    copied = farm.cli("artifacts", job_id, "--to", str(tmp_path / "out"))
    assert copied.returncode == 0 and "not copied: cpu cpu int8 failed verification" in copied.stdout
    assert [p.name for p in (tmp_path / "out").iterdir()] == [f"{job_id}-cpu-cpu-fp32.onnx"]

    # The cache holds the same verdicts: the resubmission ends with the same outcome and warning.
    again = farm.cli("submit", "convert", model, "--hw", "cpu", *strictest, "--wait")
    assert again.returncode == 0, again.stderr
    assert "cpu: succeeded (3 of 3 variants reused from the cache, 1 warning)" in again.stdout
    assert warning in again.stdout

    strict = farm.cli("submit", "convert", model, "--hw", "cpu", *strictest, "--strict", "--wait")
    assert strict.returncode == 1 and f"job {strict.stdout.split()[0]} failed" in strict.stderr
    [task] = wait_for_tasks(farm, [strict.stdout.split()[0]])
    assert task.error and task.error.startswith("--strict: cpu int8 failed verification: mean error")

    # A job whose only variant (here the cached int8) fails verification fails: nothing serves cpu.
    only_int8 = farm.cli(
        "submit", "convert", model, "--hw", "cpu", "--precision", "int8", *strictest, "--wait"
    )
    assert only_int8.returncode == 1, only_int8.stdout
    [task] = wait_for_tasks(farm, [only_int8.stdout.split()[0]])
    assert task.error and task.error.startswith(
        "no verified variant: cpu int8 failed verification: mean error"
    )


def _variants(farm: Farm, job_id: str) -> list[Variant]:
    with session_scope(farm.settings.database_url) as session:
        return list(session.exec(select(Variant).where(Variant.job_id == job_id)))
