"""``farm jobs``, ``farm status`` and ``farm artifacts``: reading results back."""

from __future__ import annotations

from pathlib import Path

import typer

from farm.cli.context import celery_app
from farm.cli.render import STATE_STYLE, console, job_table, print_json
from farm.cli.scoring import scoring_view
from farm.client.cluster import ping_broker
from farm.client.jobs import copy_artifacts, load_job, queues_for_display, recent_jobs
from farm.client.progress import infer_progress
from farm.client.schema import jobs_document, status_document
from farm.core.settings import get_settings, redacted


def list_jobs(
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="The jobs as JSON (schema_version 1, as report)."),
) -> None:
    """Recent jobs, one line each."""
    views = recent_jobs(get_settings(), limit)
    if as_json:
        print_json(jobs_document(views))
        return
    if not views:
        console.print("no jobs yet: submit one with `farm submit convert MODEL --hw cpu`")
    for view in views:
        state = view.state.value
        hardware = ",".join(
            sorted({s.hardware or "" for s in view.shards} - {""}) or [t.hardware for t in view.tasks]
        )
        created = view.job.created_at.strftime("%Y-%m-%d %H:%M:%S")
        console.print(
            f"{view.job.id}  {created}  [{STATE_STYLE.get(state, 'yellow')}]{state:9}[/]  "
            f"{view.job.kind:8} {hardware:16} {view.job.model_name}"
        )


def status(
    job_id: str = typer.Argument(..., help="A job id from `farm jobs`."),
    as_json: bool = typer.Option(False, "--json", help="The job as JSON (schema_version 1, as report)."),
) -> None:
    """Per-hardware state, timings, errors and variants of one job; a scoring job's progress and cost."""
    settings = get_settings()
    view = load_job(settings, job_id)
    if as_json:  # from the job store alone: a script polling it never waits on the broker
        print_json(status_document(view, settings.cost_per_hour))
        return
    # A job still under way needs the broker: say at once when it is away, and do not ask it for
    # live queues (a client asking a dead broker would wait on its connection retries).
    broker_up = view.state.finished or ping_broker(settings)
    if view.is_scoring:
        console.print(scoring_view(view, infer_progress(view.shards, settings.cost_per_hour)))
    else:
        queues = queues_for_display(celery_app(), settings, view) if broker_up else None
        console.print(job_table(view, queues, settings.cost_per_hour))
    if not broker_up:
        console.print(
            f"[yellow]broker {redacted(settings.broker_url)} unreachable: "
            "queued work waits, and running work cannot hand on, until it is back[/]"
        )


def artifacts(
    job_id: str = typer.Argument(..., help="A job id from `farm jobs`."),
    to: Path = typer.Option(..., "--to", help="Folder to copy the variants into."),
    include_failed: bool = typer.Option(
        False, "--include-failed", help="Also copy variants that failed verification."
    ),
) -> None:
    """Copy a job's verified variants out of the artifact store."""
    settings = get_settings()
    copied, left = copy_artifacts(settings, load_job(settings, job_id), to, include_failed)
    for path in copied:
        console.print(str(path))
    for variant in left:
        console.print(
            f"not copied: {variant.hardware} {variant.backend} {variant.precision} failed verification "
            "(--include-failed copies it)"
        )
