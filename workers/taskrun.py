"""What every farm task does around its work, whatever its kind (conversion, scoring a shard):
give up on work whose worker died on every attempt, fail at once on the model's or the data's
errors, retry on the infrastructure's (``FarmError.retryable``: a service away, a worker missing
a toolchain or out of memory), and turn anything unexpected into a recorded failure."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from billiard.einfo import ExceptionInfo
from celery import Task as CeleryTask
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from farm.core.errors import (
    FarmError,
    InfrastructureError,
    ServiceUnavailableError,
    ToolchainMissingError,
    first_line,
)
from farm.core.settings import FarmSettings

log = logging.getLogger(__name__)

RETRY_INFRASTRUCTURE = dict(
    # The retryable errors: a service briefly away, a worker lacking a toolchain or room. The
    # retry is a new message on the same queue, which any worker of the class may take.
    autoretry_for=(InfrastructureError,),
    retry_backoff=5,
    retry_backoff_max=60,
    max_retries=5,
)


def attempt_limit(task: CeleryTask, settings: FarmSettings) -> int:
    """Deliveries a task or shard may have: FARM_MAX_ATTEMPTS for those whose worker died, plus
    the retries after the database or broker was briefly away (those deliveries did not die)."""
    return settings.max_attempts + task.request.retries


def gave_up(attempts: int, max_attempts: int) -> str | None:
    """Why to stop, when earlier deliveries each died with their worker process (out of memory,
    a crashing runtime): requeueing them forever would never end."""
    if attempts > max_attempts:
        return f"gave up after {max_attempts} attempts: the worker died each time"
    return None


def guarded(
    task: CeleryTask,
    work: Callable[[], str],
    fail: Callable[[str], str],
    what: str,
    requeued: Callable[[str], object] | None = None,
) -> str:
    """Run ``work``; record a failure through ``fail`` unless the error is worth a retry. A retry
    is logged with its reason, and ``requeued`` (given) notes that reason on the task's row."""
    started = time.monotonic()
    try:
        return work()
    except FarmError as exc:
        if not exc.retryable:  # the model's or the data's fault: retrying would fail the same way
            return fail(str(exc))
        if task.request.retries >= (task.max_retries or 0):
            return fail(gave_up_retrying(exc, task.request.retries))
        reason = retry_reason(exc, task.request.hostname or "this worker")
        log.warning("%s: %s", what, reason)
        if requeued is not None and not _database_away(exc):
            try:
                requeued(reason)
            except Exception:  # a note only: the retry goes ahead without it
                log.exception("could not note on %s why it was requeued", what)
        raise  # Celery retries it with backoff: the job store keeps the task's state meanwhile
    except SoftTimeLimitExceeded:
        return fail(f"timed out after {time.monotonic() - started:.0f} s ({_limits(task.app.settings)})")
    except Exception as exc:
        log.exception("%s crashed", what)
        return fail(f"internal error: {type(exc).__name__}: {first_line(exc)}")


def retry_reason(exc: FarmError, worker: str) -> str:
    if isinstance(exc, ToolchainMissingError):
        return f"requeued: {worker} cannot build it ({first_line(exc)}); a worker that can will take it"
    if isinstance(exc, ServiceUnavailableError):
        return f"retrying: the {exc.service} is unreachable ({first_line(exc)})"
    return f"retrying: {first_line(exc)}"


def gave_up_retrying(exc: FarmError, retries: int) -> str:
    """The failure recorded once a retryable error outlasted every retry, naming what was at fault."""
    if isinstance(exc, ServiceUnavailableError):
        return f"the {exc.service} stayed unreachable through {retries} retries: {first_line(exc)}"
    if isinstance(exc, ToolchainMissingError):
        return f"no worker that could build it took it in {retries} retries: {first_line(exc)}"
    return f"gave up after {retries} retries: {first_line(exc)}"


def _database_away(exc: FarmError) -> bool:
    return isinstance(exc, ServiceUnavailableError) and exc.service == "database"


def _limits(settings: FarmSettings) -> str:
    return f"FARM_TASK_TIME_LIMIT_S {settings.task_time_limit_s}, soft {settings.task_soft_time_limit_s}"


class FarmTask(CeleryTask):
    """A farm task whose failures outside its own handling still reach the job store: a hard time
    limit (the worker's main process kills the pool process and calls this there), or an error
    that escaped every retry. Without it the task's row would stay `running` for good."""

    def record_failure(self, celery_id: str, args: tuple[Any, ...], error: str) -> None:
        raise NotImplementedError

    def on_failure(
        self, exc: Exception, task_id: str, args: tuple[Any, ...], kwargs: dict, einfo: ExceptionInfo
    ) -> None:
        if isinstance(exc, TimeLimitExceeded):
            limits = _limits(self.app.settings)
            error = f"timed out: stopped at the hard time limit ({limits}), its process replaced"
        elif isinstance(exc, FarmError):  # raised outside the task's own handling
            error = gave_up_retrying(exc, self.request.retries) if exc.retryable else str(exc)
        else:
            error = f"internal error: {type(exc).__name__}: {first_line(exc)}"
        try:
            self.record_failure(task_id, tuple(args), error)
        except Exception:  # the job store is away too: the attempt limit catches it on redelivery
            log.exception("could not record the failure of %s[%s]: %s", self.name, task_id, error)
