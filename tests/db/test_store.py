"""The job store on SQLite and PostgreSQL: migrations, and the reads and writes the farm makes."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from db import store
from db.engine import get_engine, session_scope, upgrade_schema
from db.models import Job, TaskState


def test_migrations_create_exactly_the_model_tables(database_url: str) -> None:
    upgrade_schema(database_url)
    upgrade_schema(database_url)  # idempotent
    with get_engine(database_url).connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == []


def _job() -> Job:
    return Job(kind="convert", model_name="m.pb", model_key="models/x/m.pb", model_sha256="x" * 64,
               model_format="frozen_graph", inputs=[{"name": "a:0", "shape": [None, 3]}])  # fmt: skip


def test_job_lifecycle(database_url: str) -> None:
    upgrade_schema(database_url)
    with session_scope(database_url) as session:
        job = _job()
        tasks = store.create_job(session, job, ["cpu", "gpu"], "convert")
        assert store.job_state(tasks) is TaskState.QUEUED
    with session_scope(database_url) as session:
        claimed = store.claim_task(session, tasks[0].id, worker="cpu@h")
        assert claimed is not None and claimed[1].attempts == 1
    with session_scope(database_url) as session:
        assert store.job_state(store.tasks_of(session, job.id)) is TaskState.RUNNING
        store.finish_task(session, tasks[0].id, TaskState.SUCCEEDED)
        store.finish_task(session, tasks[1].id, TaskState.FAILED, "boom")
    with session_scope(database_url) as session:
        assert store.claim_task(session, tasks[0].id, worker="cpu@h") is None  # a redelivery is ignored
        finished = store.tasks_of(session, job.id)
        assert store.job_state(finished) is TaskState.FAILED
        assert [t.error for t in finished] == [None, "boom"]
        loaded = store.get_job(session, job.id)
        assert loaded.inputs == [{"name": "a:0", "shape": [None, 3]}]
        assert loaded.created_at.tzinfo is not None
        assert [j.id for j in store.recent_jobs(session, 5)] == [job.id]
