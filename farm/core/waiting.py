"""Waiting for something to become true, the one way every part of farm waits: the client for a
worker or a job, `farm up` for Redis, the benchmarks and the tests for states and log lines."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class TimedOut(TimeoutError):
    """What was awaited did not happen in time; the message says what it was."""


def wait_until(
    check: Callable[[], T | None],
    timeout_s: float,
    what: str,
    interval_s: float = 0.1,
    give_up: Callable[[], str | None] = lambda: None,
) -> T:
    """Call ``check`` every ``interval_s`` until it returns something truthy, and return that.

    Raises TimedOut naming ``what`` after ``timeout_s``, or as soon as ``give_up`` returns a reason
    (a process that exited will never answer)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        reason = give_up()
        if reason:
            raise TimedOut(f"{what}: {reason}")
        if time.monotonic() > deadline:
            raise TimedOut(f"{what}: not within {timeout_s:g} s")
        time.sleep(interval_s)
