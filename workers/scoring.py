"""The batch-scoring task. Each message is one *lane* of a job on one hardware class: it claims
the next unscored shard, sends the next lane of its class while shards are left, then scores its
shard and publishes the part. Sending before scoring lets one lane spread onto every idle worker
process of its class, with one message always waiting for the next free process: every class
pulls work as fast as it goes, the faster class scores more, and no class sits idle while
shards wait. The message's Celery id is the lease on its shard: a message redelivered after its
worker died takes up the same shard again.
"""

from __future__ import annotations

import logging
import time

from celery import shared_task
from sqlmodel import Session

from db import shards, store
from db.engine import session_scope
from db.models import Job, Shard, ShardState, Variant
from farm.core.artifacts import open_store
from farm.core.errors import FarmError, ServiceUnavailableError, first_line
from farm.core.jobspec import InferOptions
from farm.core.output import ROW_COLUMN, ScoringOutput, part_name, scoring_output
from farm.core.settings import FarmSettings
from queues.app import FarmCelery, broker_errors, send_lane
from queues.names import INFER_TASK
from workers.infer import (
    Cancelled,
    ClassRate,
    ScoredPart,
    runner_for,
    score_shard,
    wait_for_faster,
)
from workers.taskrun import RETRY_INFRASTRUCTURE, FarmTask, attempt_limit, guarded

log = logging.getLogger(__name__)
CANCEL_CHECK_S = 1.0  # how often a running shard asks whether its job was cancelled
HAND_ON_WAIT_S = 600  # how long a lane waits for a broker that went away to send the next one


class ShardTask(FarmTask):
    def record_failure(self, celery_id: str, args: tuple, error: str) -> None:
        with session_scope(self.app.settings.database_url) as session:
            shards.fail_leased(session, args[0], celery_id, error)  # the lease is the Celery id


@shared_task(name=INFER_TASK, bind=True, base=ShardTask, **RETRY_INFRASTRUCTURE)
def infer_shard(self: ShardTask, job_id: str, hardware: str) -> str:
    app: FarmCelery = self.app
    settings = app.settings
    lease = self.request.id
    with session_scope(settings.database_url) as session:
        job = store.get_job(session, job_id)
        options = InferOptions.model_validate(job.options)
        pause = _step_back(session, job_id, hardware, options)
        shard = (
            None
            if pause
            else shards.claim_shard(
                session, job_id, lease, hardware, self.request.hostname or "?", attempt_limit(self, settings)
            )
        )
        variant = session.get(Variant, options.variants[hardware])
        if shard is not None and variant is None:  # never leave a claimed shard running
            error = f"its {hardware} variant {options.variants[hardware]} is gone from the job store"
            shards.end_shard(session, shard.id or 0, lease, ShardState.FAILED, error)
    if pause:  # the next lane looks again after the pause, handed on like any other
        _hand_on(app, job_id, hardware, countdown=pause)
        return f"stepped back {pause:.1f} s for a faster class"
    if shard is None:
        # A retry of a lane whose manifest step met an outage finds nothing to score: the
        # manifest is still its to write (every writer writes the same content).
        _write_manifest_when_done(settings, job, options)
        return "nothing left to score"
    if variant is None:  # the job's other shards still get a lane, and so end too
        _hand_on(app, job_id, hardware)
        return "failed"
    handed_on = _send_next_lane(app, job_id, hardware)

    def fail(error: str) -> str:
        with session_scope(settings.database_url) as session:
            shards.end_shard(session, shard.id or 0, lease, ShardState.FAILED, error)
        return "failed"

    outcome = guarded(
        self,
        lambda: _score(settings, job, options, shard, lease, variant),
        fail,
        f"shard {shard.index} of job {job_id}",
    )
    if not handed_on:  # the broker was away before scoring: hand on once it is back
        _hand_on_when_the_broker_is_back(app, job_id, hardware)
    _write_manifest_when_done(settings, job, options)
    return outcome


def _score(
    settings: FarmSettings, job: Job, options: InferOptions, shard: Shard, lease: str, variant: Variant
) -> str:
    out = scoring_output(settings, options.out)
    target = out.staging(job.id, shard.index, lease)
    out.remove_dead_attempts(job.id, shard.index, keep=target)
    model = open_store(settings).local(variant.artifact_key, variant.sha256)
    runner = runner_for(variant, model, options.outputs)
    try:
        part = score_shard(options, shard.start, shard.stop, target, runner, CancelWatch(settings, job.id))
    except Cancelled:
        with session_scope(settings.database_url) as session:
            shards.end_shard(session, shard.id or 0, lease, ShardState.CANCELLED)
        return "cancelled"
    _refuse_an_output_taken(out, part, shard.index, job.id)  # before the transaction: it holds locks
    with session_scope(settings.database_url) as session:
        # Done, then published, in one transaction: the row turns done only if this lease still
        # holds the shard, and only then does the part go under its final name (a rename, or
        # one PUT to an object store); any error below rolls the row back, so no shard counts
        # done without its part in place, and no attempt without the lease ever publishes.
        if not shards.finish_shard(
            session, shard.id or 0, lease, part.rows, part.sha256, part.seconds, variant.id or 0
        ):
            target.unlink(missing_ok=True)
            return "superseded by a later attempt"
        out.publish(part.path, shard.index)
    return "done"


def _refuse_an_output_taken(out: ScoringOutput, part: ScoredPart, index: int, job_id: str) -> None:
    """Publish a part only into an output this job still owns."""
    owner = out.owner()
    if owner != job_id:  # `--overwrite` gave the output to another job
        part.path.unlink(missing_ok=True)
        taken = f"{out.location} now holds the output of job {owner}: part {index} not published there"
        raise FarmError(taken)


class CancelWatch:
    """Whether `farm cancel` stopped the job: cheap enough to ask every batch, since it reads the
    job store at most once per CANCEL_CHECK_S."""

    def __init__(self, settings: FarmSettings, job_id: str) -> None:
        self.settings = settings
        self.job_id = job_id
        self.checked_at = time.monotonic()
        self.cancelled = False

    def __call__(self) -> bool:
        if not self.cancelled and time.monotonic() - self.checked_at >= CANCEL_CHECK_S:
            with session_scope(self.settings.database_url) as session:
                job = session.get(Job, self.job_id)
                self.cancelled = job is None or job.cancelled_at is not None
            self.checked_at = time.monotonic()
        return self.cancelled


def _step_back(session: Session, job_id: str, hardware: str, options: InferOptions) -> float | None:
    progress = shards.class_progress(session, job_id)
    rates = {hw: ClassRate(p.lane_rate, p.running) for hw, p in progress.items()}
    _, pending_rows = shards.count_in_state(session, job_id, ShardState.PENDING)
    return wait_for_faster(rates, hardware, pending_rows, options.shard_rows)


def _hand_on(app: FarmCelery, job_id: str, hardware: str, countdown: float | None = None) -> None:
    """Send the next lane now, or wait for the broker to take it."""
    if not _send_next_lane(app, job_id, hardware, countdown):
        _hand_on_when_the_broker_is_back(app, job_id, hardware, countdown)


def _hand_on_when_the_broker_is_back(
    app: FarmCelery, job_id: str, hardware: str, countdown: float | None = None
) -> None:
    """Wait for the broker to send the next lane. Not a Celery retry: a retry is itself a message
    to the broker, and a lost one would leave the job's other shards without a lane. This worker
    process could take no other work meanwhile anyway."""
    pause, deadline = 1.0, time.monotonic() + HAND_ON_WAIT_S
    while not _send_next_lane(app, job_id, hardware, countdown):
        if time.monotonic() > deadline:
            raise ServiceUnavailableError(
                f"the broker stayed away {HAND_ON_WAIT_S} s: farm retry {job_id}", service="broker"
            )
        time.sleep(pause)
        pause = min(pause * 2, 30.0)


def _send_next_lane(app: FarmCelery, job_id: str, hardware: str, countdown: float | None = None) -> bool:
    """Queue the next lane while shards wait (``countdown``: taken up no sooner); False when the
    broker could not take it. Before scoring that is no reason to stop: the shard is scored
    first, and the lane sent after."""
    with session_scope(app.settings.database_url) as session:
        pending, _ = shards.count_in_state(session, job_id, ShardState.PENDING)
    if not pending:
        return True
    try:
        send_lane(app, job_id, hardware, countdown=countdown)
    except broker_errors(app) as exc:
        log.warning("the broker took no next lane of job %s (%s); trying again", job_id, first_line(exc))
        return False
    return True


def _write_manifest_when_done(settings: FarmSettings, job: Job, options: InferOptions) -> None:
    """The manifest, once every shard is done, and so after every part (whichever lane finishes
    last writes it; a second writer writes the same content)."""
    with session_scope(settings.database_url) as session:
        unfinished, _ = shards.count_in_state(
            session, job.id, ShardState.PENDING, ShardState.RUNNING, ShardState.FAILED, ShardState.CANCELLED
        )
        if unfinished:
            return
        done = shards.shards_of(session, job.id)
        variants = {v.id: v for v in store.variants_of_ids(session, list(options.variants.values()))}
    out = scoring_output(settings, options.out)
    if out.owner() != job.id:  # a lane that ran late, after `--overwrite` gave the output away
        log.warning("job %s: %s now holds another job's output; no manifest written", job.id, out.location)
        return
    manifest = {
        "job": job.id,
        "rows": sum(s.rows for s in done),
        "columns": [ROW_COLUMN, *options.keep, *options.output_columns],
        "parts": [_part_entry(shard, variants.get(shard.variant_id)) for shard in done],
    }
    out.write_manifest(manifest)


def _part_entry(shard: Shard, variant: Variant | None) -> dict:
    described = (
        f"{variant.hardware} {variant.backend} {variant.format} {variant.precision}" if variant else "?"
    )
    return {
        "name": part_name(shard.index),
        "shard": shard.index,
        "first_row": shard.start,
        "rows": shard.rows,
        "sha256": shard.sha256,
        "hardware": shard.hardware,
        "variant_id": shard.variant_id,
        "variant": described,
        "worker": shard.worker,
        "seconds": round(shard.seconds, 3),
    }
