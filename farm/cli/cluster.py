"""``farm up``, ``farm down`` and ``farm worker``: the local farm and its workers."""

from __future__ import annotations

import os
import sys

import typer
from rich.markup import escape
from rich.table import Table

from db.engine import upgrade_schema
from farm.cli.context import celery_app
from farm.cli.render import console
from farm.client.cluster import LocalFarm, broker_is_local, port_is_free, worker_command
from farm.client.jobs import live_queues
from farm.client.monitor import flower_command
from farm.core.errors import ToolchainMissingError
from farm.core.hosts import class_problems, detect_hardware_classes
from farm.core.settings import get_settings, redacted
from farm.core.targets import hardware_classes, parse_hardware_list
from farm.core.waiting import TimedOut, wait_until
from queues.names import queue_for

WORKER_READY_TIMEOUT_S = 60.0
FLOWER_READY_TIMEOUT_S = 30.0


def up(
    status: bool = typer.Option(False, "--status", help="Only show what runs."),
    hw: str = typer.Option(
        "auto",
        "--hw",
        help="Workers to start, e.g. cpu,arm,fpga (arm and fpga emulate on x86); auto detects.",
    ),
    workers: bool = typer.Option(
        True, "--workers/--no-workers", help="--no-workers: start only Redis (no workers, no Flower)."
    ),
) -> None:
    """Start the local farm in the background: Redis, one worker per hardware class, and Flower."""
    settings = get_settings()
    farm = LocalFarm(settings)
    if status:
        _show_status(farm)
        return
    if broker_is_local(settings):
        component, started = farm.start_redis()
        console.print(f"redis   {'started' if started else 'already running'} (pid {component.pid})")
    else:
        console.print(f"redis   not started here: the broker is {redacted(settings.broker_url)}")
    upgrade_schema(settings.database_url)
    for hardware in _servable_hardware(hw) if workers else []:
        component, started = farm.start(f"worker-{hardware}", worker_command(hardware, None, None))
        console.print(
            f"{hardware:7} worker {'started' if started else 'already running'} (pid {component.pid})"
        )
        _wait_until_consuming(farm, hardware)
    if workers:
        _start_flower(farm)
    console.print(f"state in {settings.home}; stop with `farm down`")


def _start_flower(farm: LocalFarm) -> None:
    """Flower beside the local farm when farm[monitor] is installed and its port is free."""
    settings = farm.settings
    address, port = settings.flower_address, settings.flower_port
    try:
        command, env = flower_command(settings, address, port)
    except ToolchainMissingError:
        console.print(escape("flower  not started: pip install 'farm[monitor]' for the dashboard"))
        return
    if not farm.component("flower").running and not port_is_free(address, port):
        console.print(f"flower  not started: {address}:{port} is taken (set FARM_FLOWER_PORT)")
        return
    component, started = farm.start("flower", command, env)
    state = "started" if started else "already running"
    try:  # `up` returns when what it started serves, Flower included
        wait_until(
            lambda: not port_is_free(address, port),
            FLOWER_READY_TIMEOUT_S,
            "flower listening",
            give_up=lambda: None if farm.component("flower").running else "it exited",
        )
    except TimedOut:
        state = f"{state} but not listening yet: see {component.log}"
    console.print(f"flower  {state} (pid {component.pid}): http://{address}:{port}")


def _servable_hardware(text: str) -> list[str]:
    servable = []
    wanted = detect_hardware_classes() if text.strip().lower() == "auto" else parse_hardware_list(text)
    for hardware in wanted:
        if hardware not in hardware_classes():
            console.print(f"{hardware:7} detected, but farm has no backend for it yet")
        elif problems := class_problems(hardware):
            console.print(f"{hardware:7} worker not started: {escape('; '.join(problems))}")
        else:
            servable.append(hardware)
    return servable


def _wait_until_consuming(farm: LocalFarm, hardware: str) -> None:
    worker = farm.component(f"worker-{hardware}")
    try:
        wait_until(
            lambda: queue_for(hardware) in (live_queues(celery_app(), timeout_s=1.0) or set()),
            WORKER_READY_TIMEOUT_S,
            f"{hardware} worker consuming",
            interval_s=0.5,
            give_up=lambda: None if farm.component(worker.name).running else "it exited",
        )
    except TimedOut:
        console.print(f"[yellow]{hardware} worker is not consuming its queue yet: see {worker.log}[/]")


def _show_status(farm: LocalFarm) -> None:
    table = Table("component", "state", "pid", "log")
    for component in farm.components():
        state = "[green]running[/]" if component.running else "[red]stopped[/]"
        table.add_row(component.name, state, str(component.pid or "-"), str(component.log))
    console.print(table if table.row_count else "nothing started by `farm up` here")
    settings = farm.settings
    console.print(f"broker {redacted(settings.broker_url)}\ndatabase {redacted(settings.database_url)}")


def down() -> None:
    """Stop what `farm up` started, workers first."""
    stopped = LocalFarm(get_settings()).stop_all()
    console.print(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")


def worker(
    hw: str = typer.Option(
        "auto", "--hw", help="Hardware classes to serve, e.g. cpu or cpu,arm; auto detects."
    ),
    concurrency: int | None = typer.Option(None, "--concurrency", "-c", min=1, help="Parallel tasks."),
    name: str | None = typer.Option(None, "--name", help="Worker name; default <hw>@<host>."),
) -> None:
    """Run a Celery worker consuming exactly the queues of its hardware classes."""
    # The worker is its own program (`python -m workers`): the client imports no worker code.
    # exec, not a child: signals (a container's SIGTERM) reach the worker itself.
    os.execv(sys.executable, worker_command(hw, concurrency, name))
