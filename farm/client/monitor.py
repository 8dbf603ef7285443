"""Watching the fleet: Flower, and `farm workers` (every worker's own answer, and each queue's depth)."""

from __future__ import annotations

import importlib.util
import ipaddress
import sys
from dataclasses import dataclass
from typing import Any

from celery import Celery

from farm.client.cluster import require_broker
from farm.core.errors import ServiceUnavailableError, ToolchainMissingError, UsageError, first_line
from farm.core.settings import FarmSettings, redacted
from farm.core.targets import hardware_classes
from queues.app import broker_errors
from queues.names import FLEET_INFO_COMMAND, queue_for


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def flower_command(settings: FarmSettings, address: str, port: int) -> tuple[list[str], dict[str, str]]:
    """Flower's command line and the environment it needs. Credentials travel in the environment
    (``FLOWER_BASIC_AUTH``), never on a command line that `ps` shows to every user of the host."""
    if importlib.util.find_spec("flower") is None:
        raise ToolchainMissingError("Flower is not installed: pip install 'farm[monitor]'")
    password = settings.flower_password.get_secret_value()
    if bool(settings.flower_user) != bool(password):
        raise UsageError("set both FARM_FLOWER_USER and FARM_FLOWER_PASSWORD, or neither")
    if not settings.flower_user and not is_loopback(address):
        raise UsageError(
            f"Flower on {address} would show the fleet's tasks to anyone who can reach it: "
            "set FARM_FLOWER_USER and FARM_FLOWER_PASSWORD, or serve on 127.0.0.1"
        )
    command = [sys.executable, "-m", "celery", "--app", "farm.client.flower_app:app", "flower"]
    command += [f"--address={address}", f"--port={port}"]
    if settings.flower_user:
        return command, {"FLOWER_BASIC_AUTH": f"{settings.flower_user}:{password}"}
    return command, {"FLOWER_UNAUTHENTICATED_API": "true"}  # loopback only, checked above


@dataclass
class Fleet:
    workers: dict[str, dict[str, Any]]  # worker name -> its answer (workers/control.py)
    queue_depths: dict[str, int]  # hardware queue -> messages waiting

    def to_json(self) -> dict[str, Any]:
        return {"workers": self.workers, "queues": self.queue_depths}


def read_fleet(app: Celery, settings: FarmSettings, timeout_s: float) -> Fleet:
    """Every live worker's answer (one broadcast, ``timeout_s`` for replies) and each queue's depth."""
    require_broker(settings)
    try:
        replies = app.control.broadcast(FLEET_INFO_COMMAND, reply=True, timeout=timeout_s) or []
        depths = queue_depths(app, [queue_for(name) for name in hardware_classes()])
    except broker_errors(app) as exc:
        shown = redacted(settings.broker_url)
        message = f"broker {shown} went away: {first_line(exc)}"
        raise ServiceUnavailableError(message, service="broker") from exc
    workers = {name: answer for reply in replies for name, answer in reply.items()}
    return Fleet(dict(sorted(workers.items())), depths)


def queue_depths(app: Celery, queues: list[str]) -> dict[str, int]:
    """Messages waiting on each queue; a queue nobody has used yet holds none."""
    depths = {}
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        for queue in queues:
            try:
                depths[queue] = channel.queue_declare(queue, passive=True).message_count
            except connection.channel_errors:  # the transport's "no such queue"
                depths[queue] = 0
    return depths
