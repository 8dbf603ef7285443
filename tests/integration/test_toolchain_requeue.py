"""A worker that finds, at task time, that it lacks a toolchain (its TensorFlow cannot be
imported) is the host's fault, not the model's: it puts the task back on its queue, saying why,
and a worker that has the toolchain converts it. Real Redis, real workers, a real TensorFlow
install made unusable for one worker as a broken install is (its import fails)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sqlmodel import select

from db.engine import session_scope
from db.models import Task, TaskState
from tests.conftest import Farm

pytestmark = pytest.mark.integration

BROKEN_IMPORT = (
    'raise ImportError("libtensorflow_framework.so.2: cannot open shared object file", name="tensorflow")\n'
)


def _task(farm: Farm, job_id: str) -> Task:
    with session_scope(farm.settings.database_url) as session:
        return session.exec(select(Task).where(Task.job_id == job_id)).one()


def test_a_worker_without_tensorflow_hands_the_task_to_one_with_it(
    sqlite_farm: Farm, sample_models: dict[str, Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken-tensorflow"
    (broken / "tensorflow").mkdir(parents=True)
    (broken / "tensorflow" / "__init__.py").write_text(BROKEN_IMPORT)
    path = os.pathsep.join(filter(None, [str(broken), sqlite_farm.env.get("PYTHONPATH")]))
    without = sqlite_farm.start_worker("cpu", env={**sqlite_farm.env, "PYTHONPATH": path})

    model = str(sample_models["frozen_graph"])
    submitted = sqlite_farm.cli("submit", "convert", model, "--hw", "cpu", "--precision", "fp32")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip().splitlines()[0]

    deadline = time.monotonic() + 120
    while not (_task(sqlite_farm, job_id).error or "").startswith("requeued:"):
        assert _task(sqlite_farm, job_id).state != TaskState.FAILED, _task(sqlite_farm, job_id).error
        assert time.monotonic() < deadline, "the task was never requeued"
        time.sleep(0.2)
    task = _task(sqlite_farm, job_id)
    assert task.state == TaskState.QUEUED and task.worker is None
    assert "cannot build it (converting TensorFlow models needs tensorflow" in (task.error or "")
    assert "a worker that can will take it" in (task.error or "")

    without.terminate()  # its held retry goes back to the queue
    without.wait(60)
    sqlite_farm.start_worker("cpu")
    deadline = time.monotonic() + 240
    while not TaskState(_task(sqlite_farm, job_id).state).finished:
        assert time.monotonic() < deadline, "the task did not finish on the worker with TensorFlow"
        time.sleep(0.5)
    task = _task(sqlite_farm, job_id)
    assert (task.state, task.error) == (TaskState.SUCCEEDED, None)
    assert task.attempts >= 2
