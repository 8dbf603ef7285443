"""The job store on SQLite and PostgreSQL: migrations, and the reads and writes the farm makes."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

from db import store
from db.engine import HEAD_REVISION, MIGRATIONS, get_engine, schema_revision, session_scope, upgrade_schema
from db.models import BenchmarkResult, Job, Task, TaskState, Variant


def test_migrations_create_exactly_the_model_tables(database_url: str) -> None:
    assert schema_revision(database_url) is None  # a fresh database
    upgrade_schema(database_url)
    assert schema_revision(database_url) == HEAD_REVISION
    upgrade_schema(database_url)  # idempotent
    with get_engine(database_url).connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == []


def test_the_head_revision_constant_is_alembics_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def test_a_variant_reused_from_the_cache_copies_its_benchmarks(database_url: str) -> None:
    upgrade_schema(database_url)
    with session_scope(database_url) as session:
        job = _job()
        [task, again] = store.create_job(session, job, ["cpu", "arm"], "convert")
        original = Variant(
            job_id=job.id,
            task_id=task.id,
            hardware="cpu",
            backend="cpu",
            format="onnx",
            precision="int8",
            cache_key="k" * 64,
            artifact_key="variants/a",
            sha256="s" * 64,
            size_bytes=10,
            passed=True,
            max_abs_error=0.01,
            max_rel_error=0.1,
            nan_count=0,
            inf_count=0,
            atol=0.05,
            rtol=0.1,
            notes=["a note"],
            details={"gpu_name": "x"},
        )
        session.add(original)
        session.flush()
        session.add(
            BenchmarkResult(
                variant_id=original.id,
                host="h",
                hardware="cpu",
                runtime="ort",
                batch_size=1,
                p50_ms=1.0,
                p95_ms=2.0,
                p99_ms=3.0,
                throughput_per_s=900.0,
                runs=30,
            )
        )
    with session_scope(database_url) as session:
        found = store.cached_variant(session, "k" * 64)
        assert found is not None and found.id == original.id
        copy = store.reuse_variant(session, found, again)
        assert store.task_cache_keys(session, again.id) == {"k" * 64}
    with session_scope(database_url) as session:
        assert store.cached_variant(session, "k" * 64).id == original.id  # copies are never the source
        [result] = store.benchmarks_of(session, [copy.id])
        assert (result.p99_ms, result.throughput_per_s) == (3.0, 900.0)
        stored = session.get(Variant, copy.id)
        assert stored.reused_from == original.id and stored.task_id == again.id
        assert (stored.notes, stored.details, stored.artifact_key) == (
            ["a note"],
            {"gpu_name": "x"},
            "variants/a",
        )


def _job() -> Job:
    return Job(
        kind="convert",
        model_name="m.pb",
        model_key="models/x/m.pb",
        model_sha256="x" * 64,
        model_format="frozen_graph",
        inputs=[{"name": "a:0", "shape": [None, 3]}],
    )


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


def test_concurrent_deliveries_of_one_jobs_tasks_lose_no_update(database_url: str) -> None:
    """Workers racing on one job (each task delivered twice at once, as a redelivery can): every
    claim counts an attempt, a finished task is never claimed again, and every finish lands."""
    upgrade_schema(database_url)
    hardware = ["cpu", "arm", "fpga", "gpu"]
    with session_scope(database_url) as session:
        task_ids = [t.id for t in store.create_job(session, _job(), hardware, "convert")]
    deliveries = [task_id for task_id in task_ids for _ in range(2)]
    start = threading.Barrier(len(deliveries))
    claims: list[str] = []

    def deliver(task_id: str, worker: str) -> None:
        start.wait()
        with session_scope(database_url) as session:
            claimed = store.claim_task(session, task_id, worker)
        if claimed is not None:
            claims.append(task_id)
            with session_scope(database_url) as session:
                store.finish_task(session, task_id, TaskState.SUCCEEDED)

    with ThreadPoolExecutor(len(deliveries)) as pool:
        for future in [pool.submit(deliver, t, f"w{i}") for i, t in enumerate(deliveries)]:
            future.result()
    with session_scope(database_url) as session:
        tasks = store.tasks_of(session, session.get_one(Task, task_ids[0]).job_id)
    assert {t.state for t in tasks} == {TaskState.SUCCEEDED}
    assert {t.id: t.attempts for t in tasks} == {t: claims.count(t) for t in task_ids}
    assert all(1 <= t.attempts <= 2 and t.finished_at is not None for t in tasks)
