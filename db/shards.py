"""Reads and writes of an inference job's shards. Every change of a shard's state is one
conditional UPDATE, so two attempts at one shard (a redelivered message beside a slow original,
say) can never both claim it or both finish it. Callers commit through ``session_scope``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from db.models import Job, Shard, ShardState, TaskState, utcnow

GAVE_UP = "gave up after {attempts} attempts: the worker died each time"


def create_shards(session: Session, job_id: str, ranges: Sequence[tuple[int, int]]) -> None:
    session.add_all(Shard(job_id=job_id, index=i, start=a, stop=b) for i, (a, b) in enumerate(ranges))


def shards_of(session: Session, job_id: str) -> list[Shard]:
    return list(session.exec(select(Shard).where(Shard.job_id == job_id).order_by(col(Shard.index))))


def claim_shard(
    session: Session, job_id: str, lease: str, hardware: str, worker: str, max_attempts: int
) -> Shard | None:
    """The shard this lease should score next, marked running; None when nothing is left.

    A message redelivered after its worker died carries the same lease: it takes up the shard
    it held, unless that shard has used up its attempts, which then fails instead of looping.
    """
    job = session.get(Job, job_id)
    if job is None or job.cancelled_at is not None:
        return None
    held = session.exec(
        select(Shard).where(Shard.job_id == job_id, Shard.lease == lease, Shard.state == ShardState.RUNNING)
    ).first()
    if held is not None:
        if held.attempts < max_attempts:
            return _mark_running(session, held.id, lease, hardware, worker, ShardState.RUNNING)
        _set_state(
            session,
            col(Shard.id) == held.id,
            lease,
            ShardState.FAILED,
            error=GAVE_UP.format(attempts=held.attempts),
        )
    for _ in range(20):  # another lane may take the same pending shard between our read and update
        query = select(Shard.id).where(Shard.job_id == job_id, Shard.state == ShardState.PENDING)
        shard_id = session.exec(
            query.order_by(col(Shard.index)).limit(1).with_for_update(skip_locked=True)
        ).first()
        if shard_id is None:
            return None
        claimed = _mark_running(session, shard_id, lease, hardware, worker, ShardState.PENDING)
        if claimed is not None:
            return claimed
    return None


def _mark_running(
    session: Session, shard_id: int | None, lease: str, hardware: str, worker: str, expected: ShardState
) -> Shard | None:
    condition = col(Shard.id) == shard_id, col(Shard.state) == expected
    values = dict(
        state=ShardState.RUNNING.value,
        lease=lease,
        attempts=Shard.attempts + 1,
        hardware=hardware,
        worker=worker,
        started_at=utcnow(),
        error=None,
    )
    if session.exec(update(Shard).where(*condition).values(**values)).rowcount != 1:
        return None
    shard = session.get(Shard, shard_id)
    if shard is not None:
        session.refresh(shard)
    return shard


def finish_shard(
    session: Session, shard_id: int, lease: str, rows: int, sha256: str, seconds: float, variant_id: int
) -> bool:
    """Mark the shard done with its part's row count and checksum; False when this lease no
    longer holds it (a later attempt took it over, or the job was cancelled)."""
    values = dict(rows=rows, sha256=sha256, seconds=seconds, variant_id=variant_id)
    return _set_state(session, col(Shard.id) == shard_id, lease, ShardState.DONE, **values)


def end_shard(
    session: Session, shard_id: int, lease: str, state: ShardState, error: str | None = None
) -> bool:
    """Fail or cancel the shard this lease holds."""
    return _set_state(session, col(Shard.id) == shard_id, lease, state, error=error)


def fail_leased(session: Session, job_id: str, lease: str, error: str) -> bool:
    """Fail whichever shard of the job this lease holds running (its task died without saying)."""
    return _set_state(session, col(Shard.job_id) == job_id, lease, ShardState.FAILED, error=error)


def _set_state(session: Session, which: Any, lease: str, state: ShardState, **values: object) -> bool:
    """End the running shard that ``which`` picks, if ``lease`` still holds it."""
    statement = (
        update(Shard)
        .where(which, col(Shard.lease) == lease, col(Shard.state) == ShardState.RUNNING)
        .values(state=state.value, finished_at=utcnow(), **values)
    )
    return session.exec(statement).rowcount == 1


def cancel_job(session: Session, job: Job) -> int:
    """Stop a job: its pending shards are cancelled now, its running ones at their next batch."""
    job.cancelled_at = utcnow()
    session.add(job)
    statement = (
        update(Shard)
        .where(col(Shard.job_id) == job.id, col(Shard.state) == ShardState.PENDING)
        .values(state=ShardState.CANCELLED.value, finished_at=utcnow())
    )
    return session.exec(statement).rowcount


def reopen_unfinished(session: Session, job: Job) -> int:
    """Put every shard that is not done back to pending, with fresh attempts; returns how many."""
    job.cancelled_at = None
    session.add(job)
    statement = (
        update(Shard)
        .where(col(Shard.job_id) == job.id, col(Shard.state) != ShardState.DONE)
        .values(state=ShardState.PENDING.value, attempts=0, lease=None, error=None, finished_at=None)
    )
    return session.exec(statement).rowcount


@dataclass(frozen=True)
class ClassProgress:
    """One hardware class's part in a job so far."""

    hardware: str
    rows: int  # scored, in finished shards
    shards: int
    seconds: float  # summed over its shards: rows / seconds is one lane's rate
    running: int  # shards it holds now

    @property
    def lane_rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def class_progress(session: Session, job_id: str) -> dict[str, ClassProgress]:
    done = session.exec(
        select(Shard.hardware, func.sum(Shard.rows), func.count(), func.sum(Shard.seconds))
        .where(Shard.job_id == job_id, Shard.state == ShardState.DONE)
        .group_by(Shard.hardware)
    ).all()
    running_rows = session.exec(
        select(Shard.hardware, func.count())
        .where(Shard.job_id == job_id, Shard.state == ShardState.RUNNING)
        .group_by(Shard.hardware)
    ).all()
    # A shard gets its hardware class when claimed, so a running or done shard always has one.
    running = {str(hw): int(count) for hw, count in running_rows}
    progress = {
        str(hw): ClassProgress(str(hw), int(rows), int(n), float(s), running.get(str(hw), 0))
        for hw, rows, n, s in done
    }
    for hw, count in running.items():
        progress.setdefault(hw, ClassProgress(hw, 0, 0, 0.0, count))
    return progress


def count_in_state(session: Session, job_id: str, *states: ShardState) -> tuple[int, int]:
    """How many shards of the job are in one of ``states``, and their rows."""
    query = select(func.count(), func.coalesce(func.sum(Shard.stop - Shard.start), 0)).where(
        Shard.job_id == job_id, col(Shard.state).in_([s.value for s in states])
    )
    count, rows = session.exec(query).one()
    return int(count), int(rows)


def infer_job_state(job: Job, shards: Sequence[Shard]) -> TaskState:
    states = {ShardState(shard.state) for shard in shards}
    if not all(state.finished for state in states):
        return (
            TaskState.QUEUED
            if states <= {ShardState.PENDING} and job.cancelled_at is None
            else TaskState.RUNNING
        )
    if job.cancelled_at is not None or ShardState.CANCELLED in states:
        return TaskState.CANCELLED
    return TaskState.FAILED if ShardState.FAILED in states else TaskState.SUCCEEDED
