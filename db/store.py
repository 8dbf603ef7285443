"""Reads and writes of the job store. Functions take the session as their first argument and
leave committing to the caller's ``session_scope``."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import update
from sqlmodel import Session, col, select

from db.models import BenchmarkResult, Job, Task, TaskState, Variant, utcnow
from farm.core.errors import NotFoundError


def create_job(session: Session, job: Job, hardware: Sequence[str], kind: str) -> list[Task]:
    session.add(job)
    tasks = [Task(job_id=job.id, hardware=hw, kind=kind) for hw in hardware]
    session.add_all(tasks)
    session.flush()
    return tasks


def get_job(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id!r} (see `farm jobs`)")
    return job


def recent_jobs(session: Session, limit: int) -> list[Job]:
    return list(session.exec(select(Job).order_by(col(Job.created_at).desc()).limit(limit)))


def jobs_of_model(session: Session, model_sha256: str, kind: str) -> list[Job]:
    """Jobs of one kind on the model with this sha256, newest first."""
    query = select(Job).where(Job.model_sha256 == model_sha256, Job.kind == kind)
    return list(session.exec(query.order_by(col(Job.created_at).desc())))


def tasks_of(session: Session, job_id: str) -> list[Task]:
    return list(session.exec(select(Task).where(Task.job_id == job_id).order_by(col(Task.hardware))))


def variants_of(session: Session, job_id: str) -> list[Variant]:
    return list(session.exec(select(Variant).where(Variant.job_id == job_id).order_by(col(Variant.id))))


def variants_of_ids(session: Session, variant_ids: Sequence[int]) -> list[Variant]:
    return list(session.exec(select(Variant).where(col(Variant.id).in_(variant_ids))))


def variants_of_task(session: Session, task_id: str) -> list[Variant]:
    return list(session.exec(select(Variant).where(Variant.task_id == task_id).order_by(col(Variant.id))))


def benchmarks_of(session: Session, variant_ids: Sequence[int]) -> list[BenchmarkResult]:
    query = select(BenchmarkResult).where(col(BenchmarkResult.variant_id).in_(variant_ids))
    return list(session.exec(query.order_by(col(BenchmarkResult.batch_size))))


def job_state(tasks: Sequence[Task]) -> TaskState:
    states = {TaskState(task.state) for task in tasks}
    if states <= {TaskState.QUEUED}:
        return TaskState.QUEUED
    if not all(state.finished for state in states):
        return TaskState.RUNNING
    return TaskState.FAILED if TaskState.FAILED in states else TaskState.SUCCEEDED


def claim_task(session: Session, task_id: str, worker: str) -> tuple[Job, Task] | None:
    """Mark a task running and count the attempt; None when it already finished (a redelivery).

    One conditional UPDATE, not read-then-write: two deliveries claiming at once (SQLite ignores
    FOR UPDATE) each count their attempt, and neither claims a task the other has finished.
    """
    unfinished = [state.value for state in TaskState if not state.finished]
    claim = (
        update(Task)
        .where(col(Task.id) == task_id, col(Task.state).in_(unfinished))
        .values(
            state=TaskState.RUNNING.value,
            attempts=Task.attempts + 1,
            worker=worker,
            started_at=utcnow(),
            error=None,
        )
    )
    claimed = session.exec(claim).rowcount == 1
    task = session.get(Task, task_id, populate_existing=True)
    if task is None:
        raise NotFoundError(f"no task {task_id!r}")
    return (get_job(session, task.job_id), task) if claimed else None


def finish_task(
    session: Session, task_id: str, state: TaskState, error: str | None = None, warnings: Sequence[str] = ()
) -> None:
    task = session.get(Task, task_id)
    if task is None:
        raise NotFoundError(f"no task {task_id!r}")
    task.state = state
    task.error = error
    task.warnings = list(warnings)
    task.finished_at = utcnow()
    session.add(task)


def record_celery_ids(session: Session, celery_ids: dict[str, str]) -> None:
    for task_id, celery_id in celery_ids.items():
        session.exec(update(Task).where(col(Task.id) == task_id).values(celery_id=celery_id))


def fail_unsent_tasks(session: Session, task_ids: Sequence[str], error: str) -> None:
    for task_id in task_ids:
        finish_task(session, task_id, TaskState.FAILED, error)


def cached_variant(session: Session, cache_key: str) -> Variant | None:
    """The newest variant built under this cache key, if any."""
    query = select(Variant).where(Variant.cache_key == cache_key, col(Variant.reused_from).is_(None))
    return session.exec(query.order_by(col(Variant.id).desc()).limit(1)).first()


def task_cache_keys(session: Session, task_id: str) -> set[str]:
    """Cache keys of the variants a task already recorded (by an earlier delivery that died)."""
    return set(session.exec(select(Variant.cache_key).where(Variant.task_id == task_id)))


def reuse_variant(session: Session, original: Variant, task: Task) -> Variant:
    """Record a cached variant, and its benchmark results, as this task's own."""
    copy = Variant.model_validate(
        original.model_dump(exclude={"id", "job_id", "task_id", "created_at", "reused_from"}),
        update={"job_id": task.job_id, "task_id": task.id, "reused_from": original.id},
    )
    session.add(copy)
    session.flush()
    for result in benchmarks_of(session, [original.id or -1]):
        session.add(
            BenchmarkResult.model_validate(
                result.model_dump(exclude={"id", "variant_id", "created_at"}), update={"variant_id": copy.id}
            )
        )
    return copy
