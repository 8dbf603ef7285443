"""Tables the CLI prints about jobs."""

from __future__ import annotations

import sys
from datetime import datetime

from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table

from farm.client import JobView, task_state_text
from farm.report import ReportRow, build_report

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
        state = task_state_text(task, queues, view.variants)
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
    if not view.variants:
        return Group(tasks)
    return Group(tasks, report_table(build_report(view)), variant_paths(view))


def report_table(rows: list[ReportRow], title: str = "variants") -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("hardware", "variant", "size", "verified", "max abs / rel err", "top-1"):
        table.add_column(column)
    for column in ("p50 / p99 b=1", "best throughput", "speedup"):
        table.add_column(column, justify="right")
    table.add_column("notes", overflow="fold")
    for row in rows:
        table.add_row(
            row.hardware,
            f"{row.backend} {row.format} {row.precision}",
            _size(row.size_bytes),
            _verified(row),
            f"{row.max_abs_error:.1e} / {row.max_rel_error:.1e}",
            "-" if row.top1_agreement is None else f"{row.top1_agreement:.0%}",
            f"{row.p50_ms:.2f} / {row.p99_ms:.2f} ms" if row.p50_ms and row.p99_ms else "-",
            f"{row.throughput_per_s:,.0f}/s b={row.best_batch}" if row.throughput_per_s else "-",
            _speedup(row),
            escape("; ".join(_notes(row))),
        )
    return table


def _verified(row: ReportRow) -> str:
    if row.is_baseline:
        return "baseline"
    return "[green]pass[/]" if row.passed else "[red]FAIL[/]"


def _speedup(row: ReportRow) -> str:
    if row.is_baseline:
        return "1.00x"
    return "-" if row.speedup is None else f"{row.speedup:.2f}x"


def _notes(row: ReportRow) -> list[str]:
    notes = list(row.notes)
    if row.cached_from is not None:
        notes.insert(0, f"cached (variant {row.cached_from})")
    if row.p50_ms is not None and not row.stable:
        notes.append("timings did not settle within 10%")
    return notes


def _size(size: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return f"{size:.1f} GiB"


def variant_paths(view: JobView) -> str:
    return "\n".join(
        f"{v.hardware} {v.backend} {v.precision}: {v.artifact_key} (sha256 {v.sha256[:12]})"
        for v in view.variants
    )


def _seconds(start: datetime | None, end: datetime | None) -> str:
    if start is None:
        return "-"
    if end is None:
        return "…"
    return f"{(end - start).total_seconds():.1f} s"
