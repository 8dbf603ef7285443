"""A conversion task retried, not failed, when the fleet is at fault, and failed at the end with
the reason named: a worker that cannot build its class (the task goes back for a worker that can),
an artifact store that stays away. The task body runs here (Celery's ``apply``, whose retries
run at once) on a real database, the broken parts real: this host has no GPU, and the object
store's endpoint is a closed port."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from db import store
from db.engine import session_scope, upgrade_schema
from db.models import Job, Task, TaskState
from farm.core.hosts import class_problems
from farm.core.settings import FarmSettings
from queues.app import FarmCelery, make_app
from queues.names import CONVERT_TASK
from tests.conftest import free_port
from workers.taskrun import RETRY_INFRASTRUCTURE

RETRIES = RETRY_INFRASTRUCTURE["max_retries"]


def _app(tmp_path: Path, artifact_root: str) -> FarmCelery:
    import workers.tasks  # noqa: F401  (registers the task body)

    settings = FarmSettings(
        home=tmp_path / "home",
        broker_url="redis://127.0.0.1:1/0",  # never used: the task body and its retries run here
        database_url=f"sqlite:///{tmp_path / 'farm.db'}",
        artifact_root=artifact_root,
    )
    upgrade_schema(settings.database_url)
    return make_app(settings)


def _task(app: FarmCelery, hardware: str) -> str:
    job = Job(
        kind="convert",
        model_name="m.onnx",
        model_key=f"models/{'a' * 64}/m.onnx",
        model_sha256="a" * 64,
        model_format="onnx",
    )
    with session_scope(app.settings.database_url) as session:
        [task] = store.create_job(session, job, [hardware], "convert")
    return task.id


def _read(app: FarmCelery, task_id: str) -> Task:
    with session_scope(app.settings.database_url) as session:
        return session.get_one(Task, task_id)


@pytest.mark.skipif(not class_problems("gpu"), reason="this host can build gpu variants")
def test_a_worker_that_cannot_build_its_class_requeues_the_task(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = _app(tmp_path, str(tmp_path / "artifacts"))
    task_id = _task(app, "gpu")
    with caplog.at_level(logging.WARNING, logger="workers.taskrun"):
        app.tasks[CONVERT_TASK].apply(args=[task_id, f"models/{'a' * 64}/m.onnx"], task_id="celery-1")
    requeues = [r.getMessage() for r in caplog.records if "requeued:" in r.getMessage()]
    assert len(requeues) == RETRIES
    assert "cannot build it (this gpu worker can build nothing" in requeues[0]
    assert "a worker that can will take it" in requeues[0]
    task = _read(app, task_id)
    assert task.state == TaskState.FAILED and task.attempts == RETRIES + 1
    assert task.error is not None
    assert task.error.startswith(f"no worker that could build it took it in {RETRIES} retries: ")
    assert "this gpu worker can build nothing" in task.error


def test_an_artifact_store_that_stays_away_is_named_when_the_task_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    app = _app(tmp_path, "s3://nowhere/prefix")
    task_id = _task(app, "cpu")
    app.tasks[CONVERT_TASK].apply(args=[task_id, f"models/{'a' * 64}/m.onnx"], task_id="celery-1")
    task = _read(app, task_id)
    assert task.state == TaskState.FAILED and task.attempts == RETRIES + 1
    assert task.error is not None
    assert task.error.startswith(f"the artifact store stayed unreachable through {RETRIES} retries: ")
    assert "database" not in task.error
