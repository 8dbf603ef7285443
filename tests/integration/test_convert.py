"""End to end: the CLI submits, Redis carries, a real Celery worker converts, the store records."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import numpy as np
import onnxruntime as ort
import psutil
import pytest
from sqlmodel import col, select

from db.engine import session_scope
from db.models import BenchmarkResult, Job, Task, TaskState, Variant
from farm.core.artifacts import sha256_of
from farm.core.waiting import wait_until
from farm.samples import INPUT_SHAPE
from tests.conftest import Farm

pytestmark = pytest.mark.integration
FORMATS = ("frozen_graph", "saved_model", "keras", "h5")


def wait_for_tasks(farm: Farm, job_ids: list[str], timeout: float = 240) -> list[Task]:
    def finished() -> list[Task] | None:
        with session_scope(farm.settings.database_url) as session:
            tasks = list(session.exec(select(Task).where(col(Task.job_id).in_(job_ids))))
        return tasks if tasks and all(TaskState(task.state).finished for task in tasks) else None

    return wait_until(finished, timeout, f"tasks of {job_ids} finished", interval_s=0.2)


def submit(farm: Farm, model: Path, *extra: str, hw: str = "cpu") -> str:
    result = farm.cli("submit", "convert", str(model), "--hw", hw, *extra)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[0]


def test_a_task_no_worker_serves_is_shown_waiting(sqlite_farm: Farm, sample_models: dict[str, Path]) -> None:
    job_id = submit(sqlite_farm, sample_models["keras"], "--precision", "fp32")
    status = sqlite_farm.cli("status", job_id)
    assert status.returncode == 0, status.stderr
    assert "waiting for a cpu worker" in status.stdout  # not silently hanging


def test_every_format_converts_to_a_verified_cpu_variant(
    shared_farm: Farm, sample_models: dict[str, Path]
) -> None:
    farm = shared_farm
    # --force: each is built by the worker now, not served from an earlier test's conversion.
    job_ids = {fmt: submit(farm, sample_models[fmt], "--precision", "fp32", "--force") for fmt in FORMATS}
    tasks = wait_for_tasks(farm, list(job_ids.values()))
    assert [(t.state, t.error) for t in tasks] == [("succeeded", None)] * len(FORMATS)
    assert all(t.attempts == 1 and t.worker and t.worker.startswith("cpu-") for t in tasks)

    with session_scope(farm.settings.database_url) as session:
        jobs = {job.id: job for job in session.exec(select(Job).where(col(Job.id).in_(job_ids.values())))}
        variants = list(session.exec(select(Variant).where(col(Variant.job_id).in_(job_ids.values()))))
        ids = [v.id for v in variants]
        benchmarks = list(
            session.exec(select(BenchmarkResult).where(col(BenchmarkResult.variant_id).in_(ids)))
        )
    assert {jobs[v.job_id].model_format for v in variants} == {"frozen_graph", "saved_model", "keras"}
    assert all(v.reused_from is None for v in variants)  # built, not reused
    # Per job: the native TensorFlow baseline and the fp32 ONNX variant, each measured here.
    assert sorted((v.backend, v.format) for v in variants if v.job_id == job_ids["keras"]) == [
        ("cpu", "onnx"),
        ("native", "tensorflow"),
    ]
    assert len(variants) == 2 * len(FORMATS)
    assert {b.variant_id for b in benchmarks} == {v.id for v in variants}
    assert {b.batch_size for b in benchmarks} >= {1, 2} and {b.batch_size for b in benchmarks} <= {1, 2, 4}
    assert all(0 < b.p50_ms <= b.p95_ms <= b.p99_ms and b.throughput_per_s > 0 for b in benchmarks)

    expected = _tensorflow_outputs(sample_models["keras"])
    for variant in (v for v in variants if v.backend == "cpu"):
        assert variant.passed and (variant.format, variant.precision) == ("onnx", "fp32")
        assert variant.max_abs_error < 1e-4 and variant.nan_count == variant.inf_count == 0
        artifact = Path(farm.settings.artifact_root) / variant.artifact_key
        assert sha256_of(artifact) == variant.sha256
        assert artifact.stat().st_size == variant.size_bytes
        np.testing.assert_allclose(_onnx_outputs(artifact), expected, atol=1e-5, rtol=1e-4)


def test_wait_status_jobs_and_artifacts(
    shared_farm: Farm, sample_models: dict[str, Path], tmp_path: Path
) -> None:
    farm = shared_farm
    model = str(sample_models["frozen_graph"])
    waited = farm.cli("submit", "convert", model, "--hw", "cpu", "--precision", "fp32", "--wait")
    assert waited.returncode == 0, waited.stderr
    job_id = waited.stdout.splitlines()[0].strip()
    assert "cpu: succeeded" in waited.stdout and "cpu onnx fp32" in waited.stdout

    jobs = farm.cli("jobs")
    assert jobs.returncode == 0 and job_id in jobs.stdout and "succeeded" in jobs.stdout

    status = farm.cli("status", job_id)
    # The variant may be an earlier job's build, served from the cache: its key names that job.
    assert "pass" in status.stdout
    assert re.search(r"cpu cpu fp32: variants/[0-9a-f]{12}/cpu/cpu-fp32/model.onnx", status.stdout)

    copied = farm.cli("artifacts", job_id, "--to", str(tmp_path / "out"))
    assert copied.returncode == 0, copied.stderr
    files = sorted((tmp_path / "out").iterdir())
    assert [f.name for f in files] == [f"{job_id}-cpu-cpu-fp32.onnx"]  # the baseline is the model itself
    np.testing.assert_allclose(
        _onnx_outputs(files[0]), _tensorflow_outputs(sample_models["keras"]), atol=1e-5, rtol=1e-4
    )


def test_a_worker_process_killed_mid_task_loses_no_work(
    sqlite_farm: Farm, sample_models: dict[str, Path]
) -> None:
    worker = sqlite_farm.start_worker("cpu")
    job_id = submit(sqlite_farm, sample_models["saved_model"])
    wait_until_running(sqlite_farm, job_id)
    for child in _children(worker.pid):
        os.kill(child, signal.SIGKILL)  # the pool process dies as if out of memory

    [task] = wait_for_tasks(sqlite_farm, [job_id])
    assert task.state == "succeeded" and task.attempts == 2
    with session_scope(sqlite_farm.settings.database_url) as session:
        variants = list(session.exec(select(Variant).where(Variant.job_id == job_id)))
    # Each variant exactly once: those the dead attempt recorded were not built again.
    assert sorted((v.backend, v.precision) for v in variants) == [
        ("cpu", "fp32"),
        ("cpu", "int8"),
        ("native", "fp32"),
    ]


def wait_until_running(farm: Farm, job_id: str, timeout: float = 60) -> None:
    def running() -> bool:
        with session_scope(farm.settings.database_url) as session:
            return session.exec(select(Task).where(Task.job_id == job_id)).one().state == "running"

    wait_until(running, timeout, f"the task of {job_id} running", interval_s=0.05)


def _children(pid: int) -> list[int]:
    children = psutil.Process(pid).children()
    assert children, "the worker has no pool process"
    return [child.pid for child in children]


def _tensorflow_outputs(keras_file: Path) -> np.ndarray:
    import keras

    model = keras.models.load_model(keras_file, compile=False)
    return np.asarray(model(_inputs(), training=False))


def _onnx_outputs(onnx_file: Path) -> np.ndarray:
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: _inputs()})[0]


def _inputs() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((3, *INPUT_SHAPE)).astype(np.float32)
