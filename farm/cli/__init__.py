"""The ``farm`` command line. Every FarmError becomes one line on stderr and its exit code."""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console
from rich.markup import escape
from typer.exceptions import Abort, Exit, TyperException

from farm.cli import cluster, export, fleet, jobs, report, scoring, submit
from farm.core.errors import INTERNAL_ERROR_EXIT, FarmError, first_line

app = typer.Typer(
    name="farm",
    help="Convert models into verified, benchmarked variants per hardware class; score data with them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(cluster.up)
app.command()(cluster.down)
app.command()(cluster.worker)
app.command()(fleet.workers)
app.command()(fleet.flower)
app.add_typer(submit.app, name="submit")
app.command("jobs")(jobs.list_jobs)
app.command()(jobs.status)
app.command()(jobs.artifacts)
app.command()(export.export)
app.command()(report.report)
app.command()(scoring.cancel)
app.command()(scoring.retry)
app.command()(scoring.result)

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def main() -> None:
    try:
        app(standalone_mode=False)
    except FarmError as exc:
        _fail(str(exc), exc.exit_code)
    except Exit as exc:
        sys.exit(exc.exit_code)
    except Abort:
        _fail("aborted", 130)
    except TyperException as exc:
        context = getattr(exc, "ctx", None)  # usage errors carry the command they belong to
        command = context.command_path if context else "farm"
        _fail(f"{exc.format_message()} (see `{command} --help`)", exc.exit_code)
    except Exception as exc:
        if os.environ.get("FARM_DEBUG"):
            raise
        _fail(
            f"internal error: {type(exc).__name__}: {first_line(exc)} (FARM_DEBUG=1 shows more)",
            INTERNAL_ERROR_EXIT,
        )


def _fail(message: str, code: int) -> None:
    stderr.print(f"[bold red]error:[/] {escape(message)}")
    sys.exit(code)
