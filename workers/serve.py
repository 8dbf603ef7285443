"""Starting a worker: which classes it serves, whether this host can, and the Celery worker
that consumes exactly their queues."""

from __future__ import annotations

import logging

from db.engine import upgrade_schema
from farm.core.errors import ToolchainMissingError, UsageError
from farm.core.hosts import class_problems, detect_hardware_classes
from farm.core.settings import get_settings
from farm.core.targets import hardware_classes, parse_hardware_list
from queues.app import make_app
from queues.names import queue_for, worker_name
from workers.backends import backends_for

log = logging.getLogger(__name__)


def serve(hw: str, concurrency: int | None, name: str | None) -> None:
    settings = get_settings()
    hardware = worker_hardware(hw)
    refuse_without_toolchain(hardware)
    upgrade_schema(settings.database_url)
    app = make_app(settings)
    # Registering the task bodies and the answer to `farm workers` on this app.
    import workers.scoring
    import workers.tasks  # noqa: F401
    from workers.control import describe_worker

    say_what_builds(hardware, describe_worker(hardware, settings))
    app.worker_main(
        [
            "worker",
            "--queues", ",".join(queue_for(h) for h in hardware),
            "--hostname", name or worker_name(hardware),
            "--concurrency", str(concurrency or settings.worker_concurrency),
            "--task-events",
            "--without-mingle",
            "--without-gossip",
            "--loglevel", "INFO",
        ]
    )  # fmt: skip


def worker_hardware(text: str) -> list[str]:
    if text.strip().lower() != "auto":
        return parse_hardware_list(text)
    detected = [hw for hw in detect_hardware_classes() if hw in hardware_classes()]
    if not detected:
        raise UsageError("no hardware class of this host has a backend; name one with --hw")
    return detected


def refuse_without_toolchain(hardware: list[str]) -> None:
    for name in hardware:
        problems = class_problems(name)
        if problems:
            raise ToolchainMissingError(f"the {name} worker cannot take its queue: {'; '.join(problems)}")


def say_what_builds(hardware: list[str], toolchains: dict[str, str]) -> None:
    """Which backends this worker builds with for each class, and why any other is not used."""
    for name in hardware:
        for backend in backends_for(name):
            if backend.name in toolchains:
                print(f"{name} builds with {backend.name}: {toolchains[backend.name]}", flush=True)
            else:
                problems = "; ".join(backend.host_problems())
                print(f"{name} does not use {backend.name}: {problems}", flush=True)
