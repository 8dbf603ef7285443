"""``farm flower`` and ``farm workers``: watching the fleet."""

from __future__ import annotations

import json
import os
import time

import typer
from rich.markup import escape
from rich.table import Table

from farm.cli.context import celery_app
from farm.cli.render import console
from farm.client.monitor import Fleet, flower_command, read_fleet
from farm.core.settings import get_settings


def flower(
    port: int | None = typer.Option(None, "--port", help="Default FARM_FLOWER_PORT (5555)."),
    address: str | None = typer.Option(
        None, "--address", help="Default FARM_FLOWER_ADDRESS (127.0.0.1); off loopback it needs auth."
    ),
) -> None:
    # Typer reads help as rich markup, where a bare [monitor] is a style tag: "\[" keeps it.
    r"""Run Flower, the fleet's web dashboard, against the farm's broker (needs farm\[monitor])."""
    settings = get_settings()
    command, env = flower_command(settings, address or settings.flower_address, port or settings.flower_port)
    os.execve(command[0], command, {**os.environ, **env})  # Flower takes this process and its signals


def workers(
    as_json: bool = typer.Option(False, "--json", help="One JSON document instead of tables."),
    timeout: float = typer.Option(1.0, "--timeout", min=0.1, help="Seconds to wait for workers' replies."),
) -> None:
    """Every live worker: hardware, queues, concurrency, active tasks, toolchains; and queue depths."""
    fleet = read_fleet(celery_app(), get_settings(), timeout)
    if as_json:
        typer.echo(json.dumps(fleet.to_json(), indent=2, sort_keys=True))
        return
    _print_fleet(fleet)


def _print_fleet(fleet: Fleet) -> None:
    table = Table("worker", "hardware", "queues", "concurrency", "active", "toolchains")
    now = time.time()
    for name, answer in fleet.workers.items():
        if "hardware" not in answer:  # not a farm worker, or one older than this command
            table.add_row(escape(name), "?", "?", "?", "?", escape(str(answer)))
            continue
        active = [f"{task['name']} {now - (task['started'] or now):.0f}s" for task in answer["active"]]
        toolchains = "\n".join(f"{backend}: {text}" for backend, text in answer["toolchains"].items())
        table.add_row(
            escape(name),
            ",".join(answer["hardware"]),
            ",".join(answer["queues"]),
            str(answer["concurrency"]),
            escape("\n".join(active) or "idle"),
            escape(toolchains),
        )
    console.print(table if table.row_count else "no live worker answered")
    depths = ", ".join(f"{queue} {count}" for queue, count in fleet.queue_depths.items())
    console.print(f"waiting in queues: {depths}")
