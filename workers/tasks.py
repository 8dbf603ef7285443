"""Celery task bodies. Each records its progress in the job store, which is the source of truth."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from sqlmodel import Session

from db import store
from db.engine import session_scope
from db.models import BenchmarkResult, Task, TaskState, Variant
from farm.core.artifacts import open_store
from farm.core.errors import ConversionError, FarmError, first_line
from farm.core.jobspec import ConvertOptions
from farm.core.modelfile import ModelFormat, TensorArg
from farm.core.settings import FarmSettings
from queues.app import FarmCelery
from queues.names import CONVERT_TASK
from workers.convert import ConversionRequest, PlannedVariant, VariantBuilder, VariantOutcome, plan_variants
from workers.outcome import task_outcome
from workers.taskrun import RETRY_INFRASTRUCTURE, FarmTask, attempt_limit, gave_up, guarded
from workers.verify import POLICY_VERSION

log = logging.getLogger(__name__)


class ConvertTask(FarmTask):
    def record_failure(self, celery_id: str, args: tuple, error: str) -> None:
        _fail(self.app.settings, args[0], celery_id, error)  # the lease is the Celery id


class LeaseLost(Exception):
    """The task ended, or another delivery holds it: this one records nothing more."""


@shared_task(name=CONVERT_TASK, bind=True, base=ConvertTask, **RETRY_INFRASTRUCTURE)
def convert(self: ConvertTask, task_id: str, model_key: str) -> str:
    app: FarmCelery = self.app
    settings = app.settings
    lease = self.request.id  # a redelivery of this message carries the same id
    with session_scope(settings.database_url) as session:
        claimed = store.claim_task(session, task_id, self.request.hostname or "?", lease)
        if claimed is None:
            return _not_claimed(session, task_id, lease)
        job, task = claimed
        request = ConversionRequest(
            job_id=job.id,
            hardware=task.hardware,
            model_key=model_key,
            model_sha256=job.model_sha256,
            model_format=ModelFormat(job.model_format),
            inputs=[TensorArg.from_json(item) for item in job.inputs],
            outputs=[item["name"] for item in job.outputs],
            options=ConvertOptions.model_validate(job.options),
        )
    reason = gave_up(task.attempts, attempt_limit(self, settings))
    if reason:
        return _fail(settings, task_id, lease, reason)

    def work() -> str:
        try:
            build_errors = _convert(settings, task, lease, request)
            return _finish(settings, task_id, lease, build_errors, request.options.strict)
        except LeaseLost:
            log.warning("task %s ended or is held by another delivery; %s stops", task_id, lease)
            return "lost its lease"

    def fail(error: str) -> str:
        return _fail(settings, task_id, lease, error)

    def requeued(note: str) -> None:
        with session_scope(settings.database_url) as session:
            store.requeue_task(session, task_id, lease, note)

    return guarded(self, work, fail, f"conversion of task {task_id}", requeued)


def _not_claimed(session: Session, task_id: str, lease: str) -> str:
    task = session.get(Task, task_id)
    if task is not None and not TaskState(task.state).finished:
        log.warning("task %s is held by delivery %s; delivery %s leaves it", task_id, task.lease, lease)
        return "held by another delivery"
    log.info("task %s already finished; ignoring a redelivered message", task_id)
    return "already finished"


def _convert(settings: FarmSettings, task: Task, lease: str, request: ConversionRequest) -> list[str]:
    """Reuse or build every planned variant, recording each as soon as it is done (so progress is
    visible and a redelivery after a crash resumes where the dead worker stopped). Returns the
    precisions that could not be built; verdicts are read back from the recorded variants."""
    errors = []
    with tempfile.TemporaryDirectory(prefix=f"farm-{request.job_id}-") as workdir:
        builder = VariantBuilder(request, settings, Path(workdir))
        for planned in plan_variants(request, settings):
            if _already_recorded(settings, task, lease, planned, request.options.force):
                continue
            builder.prepare()  # the model and its samples: their failures end the whole task
            outcome = build_or_failure(builder.build, planned)
            if isinstance(outcome, str):  # one precision failed; the others may still build
                errors.append(outcome)
                continue
            _record(settings, task, lease, outcome)
    return errors


def build_or_failure(
    build: Callable[[PlannedVariant], VariantOutcome], planned: PlannedVariant
) -> VariantOutcome | str:
    """Build one variant, or say why this precision could not be built, so that the class's other
    precisions still are: a converter, an FP16 pass, the graph optimiser, a runtime session or
    anything unforeseen failing on it is this variant's failure, named by its type and first line
    (a ConversionError by its message). What concerns the whole task still ends it: the model's or
    the data's errors (any other FarmError), the fleet's (retried), and the time limit."""
    try:
        return build(planned)
    except ConversionError as exc:
        return f"{planned.backend} {planned.precision}: {exc}"
    except (FarmError, SoftTimeLimitExceeded):
        raise
    except Exception as exc:
        log.exception("%s %s could not be built", planned.backend, planned.precision)
        return f"{planned.backend} {planned.precision}: {type(exc).__name__}: {first_line(exc)}"


def _already_recorded(
    settings: FarmSettings, task: Task, lease: str, planned: PlannedVariant, force: bool
) -> bool:
    """True when this task holds the variant already, or the cache had it and it was reused."""
    artifacts = open_store(settings)
    with session_scope(settings.database_url) as session:
        _hold(session, task.id, lease)
        if planned.cache_key in store.task_cache_keys(session, task.id):
            return True
        cached = None if force else store.cached_variant(session, planned.cache_key)
        if cached is None or not artifacts.exists(cached.artifact_key):
            return False
        store.reuse_variant(session, cached, task)
        log.info("reused cached %s %s variant %s", planned.backend, planned.precision, cached.id)
        return True


def _finish(settings: FarmSettings, task_id: str, lease: str, build_errors: list[str], strict: bool) -> str:
    """The task's outcome from every variant it recorded, built here or reused from the cache."""
    with session_scope(settings.database_url) as session:
        _hold(session, task_id, lease)
        outcome = task_outcome(store.variants_of_task(session, task_id), build_errors, strict)
        store.finish_task(session, task_id, outcome.state, outcome.error, outcome.warnings, lease)
    return outcome.state.value


def _fail(settings: FarmSettings, task_id: str, lease: str, error: str) -> str:
    with session_scope(settings.database_url) as session:
        if not store.finish_task(session, task_id, TaskState.FAILED, error, lease=lease):
            log.warning("task %s not failed by %s, which does not hold it: %s", task_id, lease, error)
            return "lost its lease"
    return TaskState.FAILED.value


def _hold(session: Session, task_id: str, lease: str) -> None:
    """Go on only while this delivery holds the task (its row stays locked to the commit)."""
    if not store.holds_task(session, task_id, lease):
        raise LeaseLost(task_id)


def _record(settings: FarmSettings, task: Task, lease: str, outcome: VariantOutcome) -> None:
    with session_scope(settings.database_url) as session:
        _hold(session, task.id, lease)
        variant = _variant_row(task, outcome)
        session.add(variant)
        session.flush()
        _add_benchmarks(session, variant, outcome)


def _variant_row(task: Task, outcome: VariantOutcome) -> Variant:
    check = outcome.verification
    thresholds = check.thresholds
    return Variant(
        job_id=task.job_id,
        task_id=task.id,
        hardware=task.hardware,
        backend=outcome.planned.backend,
        format=outcome.built.format,
        precision=outcome.built.precision,
        cache_key=outcome.planned.cache_key,
        toolchain=outcome.planned.toolchain,
        artifact_key=outcome.artifact_key,
        sha256=outcome.sha256,
        size_bytes=outcome.size_bytes,
        passed=check.passed,
        failure="; ".join(check.failures) or None,
        gate=check.gate,
        policy=POLICY_VERSION,
        verified_on=outcome.verified_on,
        max_abs_error=check.max_abs_error,
        max_rel_error=check.max_rel_error,
        mean_error=check.mean_error,
        nan_count=sum(c.nan_count for c in check.outputs),
        inf_count=sum(c.inf_count for c in check.outputs),
        top1_agreement=check.top1_agreement,
        accuracy=check.accuracy.variant if check.accuracy else None,
        reference_accuracy=check.accuracy.reference if check.accuracy else None,
        atol=thresholds.atol,
        rtol=thresholds.rtol,
        min_top1=thresholds.min_top1,
        max_mean_error=thresholds.max_mean_error,
        max_accuracy_drop=thresholds.max_accuracy_drop,
        verify_samples=check.samples,
        verification=check.per_output(),
        notes=outcome.notes,
        details=outcome.built.details,
        signature=outcome.signature,
        build_s=outcome.build_s,
        benchmark_s=outcome.benchmark_s,
    )


def _add_benchmarks(session: Session, variant: Variant, outcome: VariantOutcome) -> None:
    assert variant.id is not None, "the variant row is flushed before its benchmarks"
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
                p99_ms=m.p99_ms,
                throughput_per_s=m.throughput_per_s,
                runs=m.runs,
                stable=m.stable,
                **(asdict(m.pairing) if m.pairing else {}),
            )
        )
