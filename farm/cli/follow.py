"""Following a conversion job until it ends: `farm submit convert --wait`, and `farm submit infer
MODEL_FILE` waiting for the conversion it started. Each says when a queued task has no worker
serving its queue, and gives up after a timeout (the job goes on in the farm)."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.live import Live

from farm.cli.context import celery_app
from farm.cli.render import console, job_table
from farm.client.jobs import JobView, load_job, queues_for_display, task_state_text
from farm.core.errors import FarmError
from farm.core.settings import get_settings

POLL_S = 0.2
PROBE_WORKERS_AFTER_S = 2.0  # a task still queued then may have no worker: ask


def follow_conversion(job_id: str, timeout: float, then: str = "it goes on in the farm") -> JobView:
    """Poll the job store until the job ends: redrawn live on a terminal; in a pipe, one line
    per state change, then the final table. Past ``timeout`` seconds (0: never) a FarmError
    says the job is not finished, and ``then``."""
    if console.is_terminal:
        with Live(console=console, auto_refresh=False) as live:
            return _poll(job_id, timeout, then, lambda view, q: live.update(job_table(view, q), refresh=True))
    seen: dict[str, str] = {}

    def print_changes(view: JobView, queues: set[str] | None) -> None:
        for task in view.tasks:
            text = task_state_text(task, queues, view.variants)
            if seen.get(task.hardware) != text:
                seen[task.hardware] = text
                console.print(f"{task.hardware}: {text}")

    view = _poll(job_id, timeout, then, print_changes)
    console.print(job_table(view, set()))
    return view


def _poll(
    job_id: str, timeout: float, then: str, show: Callable[[JobView, set[str] | None], None]
) -> JobView:
    settings = get_settings()
    deadline = time.monotonic() + timeout if timeout else None
    while True:
        view = load_job(settings, job_id)
        show(view, queues_for_display(celery_app(), settings, view, PROBE_WORKERS_AFTER_S))
        if view.state.finished:
            return view
        if deadline and time.monotonic() > deadline:
            raise FarmError(f"job {job_id} not finished after {timeout:g} s; {then}")
        time.sleep(POLL_S)
