"""``farm submit convert``: queue a model's conversion for one or more hardware classes."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.live import Live

from farm.cli.render import console, job_table
from farm.client import JobView, live_queues, load_job, submit_convert
from farm.errors import FarmError
from farm.modelfile import parse_tensor_arg
from farm.settings import get_settings
from queues.app import app as celery_app

app = typer.Typer(help="Submit work to the farm.", no_args_is_help=True)
POLL_S = 0.5


@app.command()
def convert(
    model: Path = typer.Argument(..., help="Frozen graph .pb, SavedModel folder, .keras/.h5 or .onnx."),
    hw: str = typer.Option(..., "--hw", help="Hardware classes, comma-separated: cpu,gpu,arm,fpga."),
    inputs: list[str] = typer.Option(
        [], "--inputs", help="Input tensor NAME[:shape], e.g. image:0:?,224,224,3. Repeat for several."
    ),
    outputs: list[str] = typer.Option([], "--outputs", help="Output tensor NAME. Repeat for several."),
    wait: bool = typer.Option(False, "--wait", help="Show live progress until every task ends."),
    timeout: float = typer.Option(
        0, "--timeout", min=0, help="With --wait: give up after this many seconds."
    ),
) -> None:
    """Convert MODEL into a verified, benchmarked variant per hardware class."""
    settings = get_settings()
    tensor_args = [parse_tensor_arg(text) for text in inputs]
    job = submit_convert(settings, celery_app, model, hw, tensor_args, outputs)
    console.print(job.id)
    if wait:
        view = _follow(job.id, timeout)
        if view.state.value == "failed":
            raise FarmError(f"job {job.id} failed: see `farm status {job.id}`")


def _follow(job_id: str, timeout: float) -> JobView:
    settings = get_settings()
    deadline = time.monotonic() + timeout if timeout else None
    queues = live_queues(celery_app, settings.worker_probe_timeout_s)
    view = load_job(settings, job_id)
    with Live(job_table(view, queues), console=console, refresh_per_second=4, transient=False) as live:
        while not view.state.finished:
            if deadline and time.monotonic() > deadline:
                raise FarmError(f"job {job_id} not finished after {timeout:g} s; it goes on in the farm")
            time.sleep(POLL_S)
            view = load_job(settings, job_id)
            if any(task.state == "queued" for task in view.tasks):
                queues = live_queues(celery_app, settings.worker_probe_timeout_s)
            live.update(job_table(view, queues))
    return view
