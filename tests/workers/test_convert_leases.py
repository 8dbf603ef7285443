"""The conversion task body holds its task by lease (its delivery's Celery id): a second live
delivery of the task, with another Celery id, neither builds nor records nor fails it. The task
body runs in this process (Celery's ``apply``) on a real database, both SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from db import store
from db.engine import session_scope, upgrade_schema
from db.models import Job, Task, TaskState
from farm.core.settings import FarmSettings
from queues.app import FarmCelery, make_app
from queues.names import CONVERT_TASK


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> FarmCelery:
    import workers.tasks  # noqa: F401  (registers the task body)

    settings = FarmSettings(
        home=tmp_path / "home",
        broker_url="redis://127.0.0.1:1/0",  # never used: the task body runs here, nothing is sent
        database_url=database_url,
        artifact_root=str(tmp_path / "artifacts"),
    )
    upgrade_schema(database_url)
    return make_app(settings)


def _held_task(app: FarmCelery, lease: str) -> Task:
    job = Job(
        kind="convert",
        model_name="m.onnx",
        model_key="models/x/m.onnx",  # not in the store: building it would fail the task
        model_sha256="x" * 64,
        model_format="onnx",
    )
    with session_scope(app.settings.database_url) as session:
        [task] = store.create_job(session, job, ["cpu"], "convert")
    with session_scope(app.settings.database_url) as session:
        claimed = store.claim_task(session, task.id, "cpu@first", lease=lease)
    assert claimed is not None
    return claimed[1]


def _read(app: FarmCelery, task_id: str) -> Task:
    with session_scope(app.settings.database_url) as session:
        return session.get_one(Task, task_id)


def test_a_second_live_delivery_leaves_the_task_to_the_first(app: FarmCelery) -> None:
    task = _held_task(app, lease="celery-first")
    result = app.tasks[CONVERT_TASK].apply(args=[task.id, "models/x/m.onnx"], task_id="celery-second")
    assert result.get() == "held by another delivery"
    after = _read(app, task.id)
    assert (after.state, after.lease, after.worker, after.attempts, after.error) == (
        TaskState.RUNNING,
        "celery-first",
        "cpu@first",
        1,
        None,
    )
    with session_scope(app.settings.database_url) as session:
        assert store.variants_of_task(session, task.id) == []


def test_a_rival_deliverys_failure_hook_does_not_fail_the_held_task(app: FarmCelery) -> None:
    # A hard time limit's hook runs in the worker's main process with the killed delivery's id.
    task = _held_task(app, lease="celery-first")
    app.tasks[CONVERT_TASK].record_failure("celery-second", (task.id, "models/x/m.onnx"), "timed out")
    assert _read(app, task.id).state == TaskState.RUNNING
    app.tasks[CONVERT_TASK].record_failure("celery-first", (task.id, "models/x/m.onnx"), "timed out")
    after = _read(app, task.id)
    assert (after.state, after.error) == (TaskState.FAILED, "timed out")
