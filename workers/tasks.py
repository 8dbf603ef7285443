"""Celery task bodies. Each records its progress in the job store, which is the source of truth."""

from __future__ import annotations

import logging

from celery.exceptions import SoftTimeLimitExceeded
from sqlmodel import Session

from db import store
from db.engine import session_scope
from db.models import BenchmarkResult, Task, TaskState, Variant
from farm.errors import FarmError, ServiceUnavailableError, first_line
from farm.modelfile import ModelFormat, TensorArg
from farm.settings import get_settings
from queues.app import app
from queues.names import CONVERT_TASK
from workers.convert import ConversionRequest, VariantOutcome, build_variants

log = logging.getLogger(__name__)


@app.task(
    name=CONVERT_TASK,
    bind=True,
    autoretry_for=(ServiceUnavailableError,),  # the database was briefly unreachable
    retry_backoff=5,
    max_retries=5,
)
def convert(self, task_id: str, model_key: str) -> str:  # type: ignore[no-untyped-def]
    settings = get_settings()
    with session_scope(settings.database_url) as session:
        claimed = store.claim_task(session, task_id, worker=self.request.hostname or "?")
        if claimed is None:
            log.info("task %s already finished; ignoring a redelivered message", task_id)
            return "already finished"
        job, task = claimed
        request = ConversionRequest(
            job_id=job.id,
            hardware=task.hardware,
            model_key=model_key,
            model_format=ModelFormat(job.model_format),
            inputs=[TensorArg.from_json(item) for item in job.inputs],
            outputs=[item["name"] for item in job.outputs],
        )
    if task.attempts > settings.max_attempts:
        # Each earlier delivery died with its worker process (out of memory, a crashing
        # converter): stop requeueing instead of looping forever.
        return _fail(task_id, f"gave up after {settings.max_attempts} attempts: the worker died each time")
    try:
        outcomes = build_variants(request, settings)
    except FarmError as exc:
        return _fail(task_id, str(exc))
    except SoftTimeLimitExceeded:
        return _fail(task_id, f"timed out after {settings.task_soft_time_limit_s} s")
    except Exception as exc:
        log.exception("conversion of task %s crashed", task_id)
        return _fail(task_id, f"internal error: {type(exc).__name__}: {first_line(exc)}")
    return _record(task, outcomes)


def _fail(task_id: str, error: str) -> str:
    with session_scope(get_settings().database_url) as session:
        store.finish_task(session, task_id, TaskState.FAILED, error)
    return TaskState.FAILED.value


def _record(task: Task, outcomes: list[VariantOutcome]) -> str:
    failed = [o for o in outcomes if not o.verification.passed]
    state = TaskState.FAILED if failed else TaskState.SUCCEEDED
    error = "; ".join(
        f"{o.built.precision} variant failed verification: {o.verification.summary()}" for o in failed
    )
    with session_scope(get_settings().database_url) as session:
        for outcome in outcomes:
            _add_variant(session, task, outcome)
        store.finish_task(session, task.id, state, error or None)
    return state.value


def _add_variant(session: Session, task: Task, outcome: VariantOutcome) -> None:
    check = outcome.verification
    variant = Variant(
        job_id=task.job_id,
        task_id=task.id,
        hardware=task.hardware,
        format=outcome.built.format,
        precision=outcome.built.precision,
        artifact_key=outcome.artifact_key,
        sha256=outcome.sha256,
        size_bytes=outcome.size_bytes,
        passed=check.passed,
        max_abs_error=check.max_abs_error,
        max_rel_error=check.max_rel_error,
        nan_count=sum(c.nan_count for c in check.outputs),
        inf_count=sum(c.inf_count for c in check.outputs),
        atol=check.atol,
        rtol=check.rtol,
        verification=check.per_output(),
    )
    session.add(variant)
    session.flush()
    for m in outcome.measurements:
        session.add(
            BenchmarkResult(
                variant_id=variant.id,
                host=outcome.host,
                hardware=outcome.hardware_description,
                runtime=outcome.built.runtime,
                batch_size=m.batch_size,
                p50_ms=m.p50_ms,
                p95_ms=m.p95_ms,
                throughput_per_s=m.throughput_per_s,
                runs=m.runs,
            )
        )
