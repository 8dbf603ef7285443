"""What every farm task does around its work, whatever its kind (conversion, scoring a shard):
give up on work whose worker died on every attempt, fail at once on the model's or the data's
errors, retry on the infrastructure's, and turn anything unexpected into a recorded failure."""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import Task as CeleryTask
from celery.exceptions import SoftTimeLimitExceeded

from farm.errors import FarmError, ServiceUnavailableError, first_line
from farm.settings import get_settings

log = logging.getLogger(__name__)

RETRY_INFRASTRUCTURE = dict(
    autoretry_for=(ServiceUnavailableError,),  # the database or the broker was briefly unreachable
    retry_backoff=5,
    retry_backoff_max=60,
    max_retries=5,
)


def gave_up(attempts: int, max_attempts: int) -> str | None:
    """Why to stop, when earlier deliveries each died with their worker process (out of memory,
    a crashing runtime): requeueing them forever would never end. ``attempts`` leaves out the
    retries after an infrastructure error: those deliveries did not die."""
    if attempts > max_attempts:
        return f"gave up after {max_attempts} attempts: the worker died each time"
    return None


def guarded(task: CeleryTask, work: Callable[[], str], fail: Callable[[str], str], what: str) -> str:
    """Run ``work``; record a failure through ``fail`` unless the error is worth a retry."""
    try:
        return work()
    except ServiceUnavailableError:
        if task.request.retries < (task.max_retries or 0):
            raise  # Celery retries it with backoff: the job store keeps the task's state meanwhile
        return fail("the database stayed unreachable through every retry")
    except FarmError as exc:  # the model's or the data's fault: retrying would fail the same way
        return fail(str(exc))
    except SoftTimeLimitExceeded:
        return fail(f"timed out after {get_settings().task_soft_time_limit_s} s")
    except Exception as exc:
        log.exception("%s crashed", what)
        return fail(f"internal error: {type(exc).__name__}: {first_line(exc)}")
