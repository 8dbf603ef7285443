"""Tables the CLI prints about jobs."""

from __future__ import annotations

import sys
from datetime import datetime

from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table

from farm.client import JobView, task_state_text

# In a pipe (scripts, CI logs, tests) rich would wrap at 80 columns; lines stay whole instead.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)

STATE_STYLE = {"succeeded": "green", "failed": "red", "running": "cyan"}


def job_table(view: JobView, queues: set[str] | None) -> Group:
    job = view.job
    tasks = Table(title=f"job {job.id}: {job.model_name} ({job.model_format})", title_justify="left")
    for column in ("hardware", "state", "attempts", "worker", "waited", "ran"):
        tasks.add_column(column)
    tasks.add_column("error", overflow="fold")
    for task in view.tasks:
        state = task_state_text(task, queues)
        style = STATE_STYLE.get(task.state, "yellow")
        tasks.add_row(
            task.hardware,
            f"[{style}]{state}[/]",
            str(task.attempts),
            task.worker or "-",
            _seconds(task.queued_at, task.started_at),
            _seconds(task.started_at, task.finished_at),
            escape(task.error or ""),
        )
    return Group(tasks, variant_table(view), variant_paths(view)) if view.variants else Group(tasks)


def variant_table(view: JobView) -> Table:
    table = Table(title="variants", title_justify="left")
    for column in ("variant", "verified", "max abs / rel error", "p50 / p95 at b=1", "best throughput"):
        table.add_column(column)
    for variant in view.variants:
        results = view.benchmarks.get(variant.id or -1, [])
        single = next((r for r in results if r.batch_size == 1), None)
        best = max(results, key=lambda r: r.throughput_per_s, default=None)
        table.add_row(
            f"{variant.hardware} {variant.format} {variant.precision}",
            "[green]pass[/]" if variant.passed else "[red]FAIL[/]",
            f"{variant.max_abs_error:.1e} / {variant.max_rel_error:.1e}",
            f"{single.p50_ms:.3f} / {single.p95_ms:.3f} ms" if single else "-",
            f"{best.throughput_per_s:,.0f}/s at b={best.batch_size}" if best else "-",
        )
    return table


def variant_paths(view: JobView) -> str:
    return "\n".join(
        f"{v.hardware} {v.precision}: {v.artifact_key} (sha256 {v.sha256[:12]}, {v.size_bytes:,} bytes)"
        for v in view.variants
    )


def _seconds(start: datetime | None, end: datetime | None) -> str:
    if start is None:
        return "-"
    if end is None:
        return "…"
    return f"{(end - start).total_seconds():.1f} s"
