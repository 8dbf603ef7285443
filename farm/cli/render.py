"""Tables the CLI prints about jobs."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from rich import box
from rich.console import Console, Group, JustifyMethod, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from farm.client.jobs import JobView, task_state_text
from farm.client.report import ReportRow, build_report
from farm.core.cost import money
from farm.core.outputkinds import THIN_EVIDENCE

# In a pipe (scripts, CI logs, tests) rich would wrap at 80 columns; lines stay whole instead.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)

STATE_STYLE = {"succeeded": "green", "failed": "red", "running": "cyan"}


def print_json(document: object) -> None:
    """One JSON document on stdout for scripts: never through rich, which would wrap and style it."""
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


def job_table(view: JobView, queues: set[str] | None, prices: Mapping[str, float] | None = None) -> Group:
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
    parts: list[RenderableType] = [tasks]
    if view.variants:
        parts += [report_view(build_report(view, prices)), variant_paths(view)]
    warnings = warnings_text(view)
    if warnings:
        parts.append(Text(warnings, style="yellow"))
    return Group(*parts)


REPORT_WIDTH = 100  # the report fits a terminal this wide; --wide shows every column instead
SYNTHETIC_VERDICTS = (
    "Verified on synthetic random inputs (no --calib or --eval): the verdicts of the fp16, dynamic "
    "and int8 variants say little about real inputs. Give --calib FILE, best with labels, or --eval FILE."
)


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[ReportRow], str]  # "" when the row has no value
    justify: JustifyMethod = "left"
    wide_only: bool = False


def report_view(rows: list[ReportRow], title: str = "variants", wide: bool = False) -> Group:
    """The variants side by side. Compact: one reference per note, the notes numbered under the
    table, so it fits REPORT_WIDTH columns; wide: every column, notes in full."""
    distinct = dict.fromkeys(text for row in rows for text in _notes(row))  # in order of first use
    notes = {text: number for number, text in enumerate(distinct, start=1)}
    columns = [c for c in COLUMNS if (wide or not c.wide_only) and any(c.cell(row) for row in rows)]
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for column in columns:
        table.add_column(column.header, justify=column.justify, overflow="fold")
    table.add_column("notes", overflow="fold")
    for row in rows:
        texts = _notes(row)
        cited = "; ".join(texts) if wide else ",".join(str(notes[text]) for text in texts)
        table.add_row(*[column.cell(row) or "-" for column in columns], escape(cited))
    parts: list[RenderableType] = [table]
    if not wide:
        parts += [_wrapped(f"{number}. {text}", indent=3) for text, number in notes.items()]
    elif any(row.outputs for row in rows if not row.is_baseline):
        parts.append(outputs_table(rows))
    if any(row.verified_on == "synthetic" for row in rows):
        parts.append(_wrapped(SYNTHETIC_VERDICTS))
    return Group(*parts)


def _wrapped(text: str, indent: int = 0) -> Text:
    return Text("\n".join(textwrap.wrap(text, REPORT_WIDTH, subsequent_indent=" " * indent)))


def _variant(row: ReportRow) -> str:
    return f"native {row.format}" if row.is_baseline else f"{row.backend} {row.format} {row.precision}"


def _verdict(row: ReportRow) -> str:
    """pass or FAIL, naming the outputs that failed when the model has several, and n=, the
    samples that judged it ("thin" when they are too few to say much)."""
    if row.is_baseline:
        return "baseline"
    failed = row.failed_outputs if len(row.outputs) > 1 and not row.passed else []
    verdict = (
        "[green]pass[/]" if row.passed else "[red]FAIL[/]" + "".join(f" {escape(name)}" for name in failed)
    )
    evidence = f" n={row.verify_samples}" if row.verify_samples else ""
    return verdict + evidence + (" thin" if row.thin_evidence else "")


def outputs_table(rows: list[ReportRow]) -> Table:
    """Each variant's verdict output by output: the kind, the rule that judged it, the numbers
    that decided, and why it failed (``--wide``)."""
    table = Table(title="outputs", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for header in ("hw", "variant", "output", "kind", "rule", "deciding numbers", "failures"):
        table.add_column(header, overflow="fold")
    for row in rows:
        for output in [] if row.is_baseline else row.outputs:
            named = " (named)" if output.get("kind_named") else ""
            failures = "; ".join(output.get("failures", []))
            table.add_row(
                row.hardware,
                _variant(row),
                escape(output["name"]),
                f"{output.get('kind', '?')}{named}",
                output.get("rule", ""),
                _deciding_numbers(output),
                f"[red]{escape(failures)}[/]" if failures else "[green]pass[/]",
            )
    return table


def _deciding_numbers(output: dict) -> str:
    numbers = []
    if output.get("top1_agreement") is not None:
        numbers.append(f"agreement {output['top1_agreement']:.1%}")
    if output.get("expected_loss") is not None:
        numbers.append(f"expected loss {output['expected_loss']:.1%}")
    if output.get("near_flips") is not None:
        numbers.append(f"near flips {output['near_flips']:.0%}")
    if output.get("mean_cosine") is not None:
        numbers.append(f"cosine {output['mean_cosine']:.4f}")
    if output.get("worst_channel_error") is not None:
        numbers.append(
            f"worst channel {output['worst_channel']}: {output['worst_channel_error']:.2f} of spread"
        )
    if output.get("max_unordered_pairs"):
        numbers.append(f"order lost {output['max_unordered_pairs']:.0%}")
    return ", ".join(numbers)


def _accuracy(row: ReportRow) -> str:
    if row.accuracy is None:
        return ""
    change = row.accuracy_change_points
    return f"{row.accuracy:.1%}" if row.is_baseline or change is None else f"{row.accuracy:.1%} {change:+.1f}"


def _speedup(row: ReportRow) -> str:
    if row.speedup is None:
        return ""
    text = _times(row.speedup)
    if row.speedup_low is None or row.speedup_high is None or row.is_baseline:
        return text
    return f"{text} ({_rough(row.speedup_low)}-{_rough(row.speedup_high)})"


def _times(value: float | None) -> str:
    return "" if value is None else f"{_number(value)}x"


def _number(value: float) -> str:
    """About three significant figures, and the same number of decimals in a column's range."""
    decimals = 0 if value >= 100 else 1 if value >= 10 else 2 if value >= 1 else 3
    return f"{value:.{decimals}f}"


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


def _rough(value: float) -> str:
    """Two figures, for a spread beside its median."""
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def _ms(value: float | None) -> str:
    return "" if value is None else f"{_number(value)} ms"


COLUMNS = [
    Column("hw", lambda r: r.hardware),
    Column("variant", _variant),
    Column("size", lambda r: _size(r.size_bytes), "right"),
    Column("verdict", _verdict),
    Column("gate", lambda r: "" if r.is_baseline else r.gate, wide_only=True),
    Column("accuracy", _accuracy, "right"),
    Column("top-1", lambda r: "" if r.is_baseline else _share(r.top1_agreement), "right"),
    Column("mean err", lambda r: "" if r.is_baseline else f"{r.mean_error:.2%}", "right", wide_only=True),
    Column("max abs / rel err", lambda r: f"{r.max_abs_error:.1e} / {r.max_rel_error:.1e}", wide_only=True),
    Column("p50 b=1", lambda r: _ms(r.p50_ms), "right"),
    Column("p99 b=1", lambda r: _ms(r.p99_ms), "right", wide_only=True),
    Column("speedup b=1", _speedup, "right"),
    Column(
        "best throughput",
        lambda r: f"{r.throughput_per_s:,.0f}/s b={r.best_batch}" if r.throughput_per_s else "",
        "right",
        wide_only=True,
    ),
    Column("vs native", lambda r: _times(r.throughput_speedup), "right", wide_only=True),
    # Shown only once a price is set for the row's class (FARM_COST_PER_HOUR_<CLASS>).
    Column("cost/M", lambda r: "" if r.cost_per_million is None else money(r.cost_per_million), "right"),
    Column("runtime", lambda r: r.runtime, wide_only=True),
]


def _notes(row: ReportRow) -> list[str]:
    notes = []
    if row.failure:
        notes.append(f"{row.backend} {row.precision} failed verification: {row.failure}")
    if row.thin_evidence:
        notes.append(
            f"thin evidence: judged on {row.verify_samples} samples (fewer than {THIN_EVIDENCE}); "
            f"give --calib with {5 * THIN_EVIDENCE}+ samples (a fifth is held out) "
            f"or --eval with {THIN_EVIDENCE}+"
        )
    if row.cached_from is not None:
        notes.append("reused from the cache: an earlier job's variant, verdict and timings")
    notes += row.notes
    if row.p50_ms is not None and not row.stable:
        notes.append("timings did not settle within 10%: the host was busy")
    return notes


def warnings_text(view: JobView) -> str:
    """The warnings of a job's tasks, one line each: what failed without failing the job."""
    return "\n".join(
        f"warning: {task.hardware}: {warning} (kept, never served)"
        for task in view.tasks
        for warning in task.warnings
    )


def _size(size: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{_number(size)} {unit}"
        size /= 1024
    return f"{_number(size)} GiB"


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
