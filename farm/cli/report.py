"""``farm report JOB``: every variant of a job side by side, with its speedup over native."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import typer

from farm.cli.render import REPORT_WIDTH, console, print_json, report_view
from farm.client.jobs import load_job
from farm.client.report import ReportRow, build_report
from farm.client.schema import report_document
from farm.core.errors import FarmError, ToolchainMissingError, UsageError
from farm.core.settings import get_settings


def report(
    job_id: str = typer.Argument(..., help="A job id from `farm jobs`."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the variants as JSON (schema_version 1: README, JSON for schedulers)."
    ),
    plot: Path | None = typer.Option(None, "--plot", help="Also write a bar chart of speedups to this PNG."),
    wide: bool = typer.Option(False, "--wide", help="Every column, notes in full (wider than 100 columns)."),
) -> None:
    """One row per variant: format, precision, size, verification, latency, throughput, speedup."""
    if plot is not None and plot.suffix.lower() != ".png":
        raise UsageError(f"--plot wants a .png file name, not {plot.name}")
    settings = get_settings()
    view = load_job(settings, job_id)
    rows = build_report(view, settings.cost_per_hour)
    if not rows:
        raise FarmError(f"job {job_id} has no variants yet (state: {view.state.value})")
    if plot is not None:
        write_speedup_plot(rows, plot, title=f"job {job_id}: {view.job.model_name}")
    if as_json:
        print_json(report_document(view, settings.cost_per_hour))
        return
    title = f"job {job_id}: {view.job.model_name} ({view.state.value})"
    # Held to REPORT_WIDTH even in a pipe (where the console is wider): cells wrap rather than
    # the table growing past it when a run's numbers come out a character longer.
    console.print(report_view(rows, title, wide), width=None if wide else min(console.width, REPORT_WIDTH))
    if plot is not None:
        console.print(f"plot: {plot}")


def write_speedup_plot(rows: list[ReportRow], target: Path, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only; workers and CI have no display
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ToolchainMissingError("--plot needs matplotlib: pip install 'farm[report]'") from exc
    measured = [row for row in rows if row.speedup is not None and not row.is_baseline]
    if not measured:
        raise FarmError("no variant has a speedup to plot yet (the native baseline is missing)")
    figure, axes = plt.subplots(figsize=(max(6.0, 0.8 * len(measured) + 2), 4.5))
    labels = [f"{r.hardware}\n{r.backend} {r.precision}" for r in measured]
    colours = ["tab:green" if r.passed else "tab:red" for r in measured]
    speedups = [r.speedup or 0.0 for r in measured]
    # Error bars: the 95% confidence interval of the median paired ratio.
    spread = [
        [s - (r.speedup_low or s) for s, r in zip(speedups, measured, strict=True)],
        [(r.speedup_high or s) - s for s, r in zip(speedups, measured, strict=True)],
    ]
    bars = axes.bar(labels, speedups, color=colours, yerr=spread, capsize=4)
    axes.bar_label(bars, fmt="%.2fx")
    axes.axhline(1.0, color="black", linewidth=1, linestyle="--", label="native (1x)")
    axes.set_ylabel("speedup over native, batch 1 (median of paired windows)")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.stem}.{uuid.uuid4().hex}.png")
    try:
        figure.savefig(temporary, dpi=110)
        os.replace(temporary, target)  # no half-written picture under the asked name
    finally:
        plt.close(figure)
        temporary.unlink(missing_ok=True)
