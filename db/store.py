"""Reads and writes of the job store. Functions take the session as their first argument and
leave committing to the caller's ``session_scope``."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, or_, update
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


def claim_task(
    session: Session, task_id: str, worker: str, lease: str | None = None
) -> tuple[Job, Task] | None:
    """Mark a task running under ``lease`` (the Celery id of the delivery claiming it) and count
    the attempt; None when it finished already or another delivery holds it.

    A queued task is claimed by whichever delivery comes first. A running task is taken up again
    only under the lease that holds it: a message redelivered after its worker died carries the
    same Celery id, while any other live delivery (another message for the same task) would
    build it a second time beside the first. One conditional UPDATE, not read-then-write: two
    deliveries claiming at once (SQLite ignores FOR UPDATE) never both hold the task. A ``lease``
    of None holds only what no delivery holds (a task claimed without one).
    """
    claimable = or_(
        col(Task.state) == TaskState.QUEUED.value,
        and_(col(Task.state) == TaskState.RUNNING.value, _held_by(lease)),
    )
    claim = (
        update(Task)
        .where(col(Task.id) == task_id, claimable)
        .values(
            state=TaskState.RUNNING.value,
            lease=lease,
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


def holds_task(session: Session, task_id: str, lease: str | None) -> bool:
    """Whether ``lease`` still holds the task running; call it in the transaction that records
    the task's work. A conditional UPDATE of the task's row: on PostgreSQL it keeps the row
    locked until that transaction ends, so the task cannot finish in between."""
    statement = (
        update(Task)
        .where(col(Task.id) == task_id, col(Task.state) == TaskState.RUNNING.value, _held_by(lease))
        .values(lease=lease)
    )
    return session.exec(statement).rowcount == 1


def finish_task(
    session: Session,
    task_id: str,
    state: TaskState,
    error: str | None = None,
    warnings: Sequence[str] = (),
    lease: str | None = None,
) -> bool:
    """End the task, if ``lease`` holds it and it has not finished; False otherwise (another
    delivery holds it, or it ended already). A ``lease`` of None ends only a task no delivery
    holds: one the client could not send."""
    unfinished = [s.value for s in TaskState if not s.finished]
    statement = (
        update(Task)
        .where(col(Task.id) == task_id, col(Task.state).in_(unfinished), _held_by(lease))
        .values(state=state.value, error=error, warnings=list(warnings), finished_at=utcnow())
    )
    return session.exec(statement).rowcount == 1


def requeue_task(session: Session, task_id: str, lease: str, note: str) -> bool:
    """Put a task this lease holds back to queued (its message retried, for any worker of its class
    to take), with ``note`` saying why in its error; False when the lease no longer holds it."""
    statement = (
        update(Task)
        .where(col(Task.id) == task_id, col(Task.state) == TaskState.RUNNING.value, _held_by(lease))
        .values(state=TaskState.QUEUED.value, worker=None, error=note)
    )
    return session.exec(statement).rowcount == 1


def _held_by(lease: str | None) -> ColumnElement[bool]:
    return col(Task.lease).is_(None) if lease is None else col(Task.lease) == lease


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
