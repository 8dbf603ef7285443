"""``farm submit infer``, ``farm cancel``, ``farm retry`` and ``farm result``: batch scoring."""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table

from farm.cli.context import celery_app
from farm.cli.follow import follow_conversion
from farm.cli.render import console
from farm.client.infer import (
    InferRequest,
    merge_result,
    parse_named_inputs,
    submit_infer,
    wait_for_manifest,
)
from farm.client.infer import cancel as cancel_job
from farm.client.infer import retry as retry_job
from farm.client.jobs import ConvertRequest, JobView, load_job, submit_convert
from farm.client.progress import InferProgress, infer_progress
from farm.core.cost import money
from farm.core.errors import FarmError
from farm.core.jobspec import InferOptions
from farm.core.output import scoring_output
from farm.core.settings import get_settings

POLL_S = 0.2


def infer(
    model_or_job: str = typer.Argument(..., help="A finished conversion job's id, or a model file."),
    data: str = typer.Option(
        ..., "--data", help="Parquet file, folder or glob; CSV; .npy. Local or fsspec URL."
    ),
    out: str = typer.Option(
        ...,
        "--out",
        help=r"Output folder, or object-store prefix (s3://bucket/prefix, farm\[s3]): a Parquet part per "
        "shard, and a manifest.",
    ),
    hw: str = typer.Option(
        ..., "--hw", help="Hardware classes that score, comma-separated: cpu,gpu,arm,fpga."
    ),
    columns: str = typer.Option("", "--columns", help="Feature columns of the model's one input, in order."),
    inputs: list[str] = typer.Option([], "--input", help="NAME=col1,col2: the columns of one input. Repeat."),
    keep: str = typer.Option(
        "", "--keep", help="Columns copied to the output beside the scores, e.g. id,label."
    ),
    precision: str = typer.Option(
        "", "--precision", help="Pin a precision: int8 for every class, or per class: cpu=fp32,fpga=int8."
    ),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Rows per inference call."),
    shard_rows: int = typer.Option(
        0, "--shard-rows", min=0, help="Rows per shard; default: about 16 shards."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier job's output in --out."),
    objective: str = typer.Option(
        "time",
        "--objective",
        help="time: every class named, each as fast as it goes; cost: the classes that score a row "
        "cheapest (FARM_COST_PER_HOUR_<CLASS>), and still finish by --deadline.",
    ),
    deadline: float | None = typer.Option(
        None, "--deadline", help="Seconds the job must finish within, at the variants' measured speeds."
    ),
    wait: bool = typer.Option(False, "--wait", help="Show progress until the job ends."),
) -> None:
    """Score a dataset with MODEL_OR_JOB's verified variants, on every hardware class named."""
    settings = get_settings()
    asked = InferRequest(
        model_or_job,
        data,
        out,
        hw,
        _split(columns),
        parse_named_inputs(inputs),
        _split(keep),
        precision,
        batch_size,
        shard_rows,
        overwrite,
        objective,
        deadline,
    )
    submitted = submit_infer(settings, celery_app(), asked, _convert_first)
    job, plan = submitted.job, submitted.plan
    options = InferOptions.model_validate(job.options)
    console.print(job.id)
    rows = options.dataset.rows
    classes = ", ".join(f"{hw} ({options.serving.get(hw, 'variant')})" for hw in options.variants)
    console.print(
        f"scoring {options.dataset.uri}: {rows:,} rows in shards of {options.shard_rows:,} on {classes}"
    )
    left_out = "".join(f"; {hw} left out: {why}" for hw, why in plan.left_out.items())
    if objective != "time" or deadline is not None or plan.cost is not None:
        console.print(f"objective {options.objective}: {plan.summary()}{left_out}")
    if wait:
        follow(job.id)


def _convert_first(model: Path, hardware: list[str], precisions: list[str]) -> str:
    settings = get_settings()
    asked = ConvertRequest(model, ",".join(hardware), precisions=",".join(precisions))
    job = submit_convert(settings, celery_app(), asked)
    console.print(
        f"no verified {','.join(hardware)} variants of {model.name} yet: converting first (job {job.id})"
    )
    then = (
        "it goes on in the farm, and nothing was submitted for scoring: run this again once it has "
        "finished (its variants then serve), or wait longer with FARM_CONVERT_WAIT_S"
    )
    view = follow_conversion(job.id, settings.convert_wait_s, then)
    if view.state.value == "failed":
        raise FarmError(f"converting {model.name} failed: see `farm status {job.id}`")
    return job.id


def follow(job_id: str) -> JobView:
    """Show progress until the job ends: a live view on a terminal, one line per change in a pipe."""
    settings = get_settings()
    last = ""
    with Live(console=console, auto_refresh=False) if console.is_terminal else nullcontext() as live:
        while True:
            view = load_job(settings, job_id)
            progress = infer_progress(view.shards, settings.cost_per_hour)
            if live is not None:
                live.update(scoring_view(view, progress), refresh=True)
            elif (line := progress_line(progress)) != last:
                console.print(line)
                last = line
            if view.state.finished:
                break
            time.sleep(POLL_S)
    if view.state.value == "succeeded":  # --wait ends when the output is complete, manifest too
        wait_for_manifest(scoring_output(settings, InferOptions.model_validate(view.job.options).out))
    _print_ending(view, progress)
    return view


def _print_ending(view: JobView, progress: InferProgress) -> None:
    if not console.is_terminal:
        console.print(scoring_view(view, progress))
    state = view.state.value
    if state == "succeeded":
        out = InferOptions.model_validate(view.job.options).out
        console.print(f"output: {out} (farm result {view.job.id} --to FILE)")
        return
    failed = progress.counts.get("failed", 0)
    raise FarmError(f"job {view.job.id} {state}: {failed} shards failed (farm retry {view.job.id})")


def progress_line(progress: InferProgress) -> str:
    per_class = ", ".join(f"{c.hardware} {c.rows:,}" for c in progress.classes)
    eta = f", ETA {progress.eta_s:.0f} s" if progress.eta_s is not None else ""
    return (
        f"{progress.done_rows:,}/{progress.total_rows:,} rows ({progress.fraction:.0%}), "
        f"{progress.rows_per_s:,.0f} rows/s{eta}; {per_class or 'no shard scored yet'}"
    )


def scoring_view(view: JobView, progress: InferProgress) -> Group:
    options = InferOptions.model_validate(view.job.options)
    title = f"job {view.job.id}: scoring with {view.job.model_name} -> {options.out}: {view.state.value}"
    table = Table(title=title, title_justify="left")
    priced = any(share.cost is not None for share in progress.classes)
    for column in ("hardware", "share", "rows", "shards", "running", "rows/s", *(["cost"] if priced else [])):
        table.add_column(column, justify="left" if column in ("hardware", "share") else "right")
    for share in progress.classes:
        bar = ProgressBar(total=max(progress.total_rows, 1), completed=share.rows, width=20)
        cost = [] if not priced else ["-" if share.cost is None else money(share.cost)]
        table.add_row(
            share.hardware,
            bar,
            f"{share.rows:,}",
            str(share.shards),
            str(share.running),
            f"{share.rows_per_s:,.0f}",
            *cost,
        )
    counts = ", ".join(f"{n} {state}" for state, n in sorted(progress.counts.items()))
    lines: list[RenderableType] = [table, progress_line(progress), f"shards: {counts}"]
    if priced:
        lines.append(cost_line(progress, view.state.finished))
    lines += [f"[red]{escape(error)}[/]" for error in progress.errors]
    return Group(*lines)


def cost_line(progress: InferProgress, finished: bool) -> str:
    """The job's cost so far (in all, once it has ended), by class: machine-hours held at each price."""
    by_class = ", ".join(
        f"{share.hardware} {money(share.cost) if share.cost is not None else 'no price'}"
        for share in progress.classes
    )
    total = money(progress.cost) if progress.cost is not None else "not known (a class has no price)"
    return f"cost {'in all' if finished else 'so far'}: {total} ({by_class})"


def cancel(job_id: str = typer.Argument(..., help="A scoring job's id.")) -> None:
    """Cancel a scoring job: waiting shards never run, running ones stop at their next batch."""
    cancelled, running = cancel_job(get_settings(), job_id)
    console.print(
        f"cancelled job {job_id}: {cancelled} waiting shards will not run, {running} running stop soon"
    )


def retry(job_id: str = typer.Argument(..., help="A scoring job's id.")) -> None:
    """Score again only the shards of a job that are not done (failed, cancelled or lost)."""
    reopened = retry_job(get_settings(), celery_app(), job_id)
    console.print(f"job {job_id}: {reopened} shards queued again")


def result(
    job_id: str = typer.Argument(..., help="A finished scoring job's id."),
    to: Path = typer.Option(..., "--to", help="The Parquet file to write, every row in input order."),
) -> None:
    """Merge a scoring job's parts into one Parquet file, in input order."""
    rows = merge_result(get_settings(), job_id, to)
    console.print(f"{to}: {rows:,} rows")


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]
