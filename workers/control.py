"""The worker's answer to `farm workers`: what it serves, with which toolchains, doing what.

One remote-control command, so the client asks the whole fleet in a single broadcast instead of
one round trip each for stats, queues and active tasks.
"""

from __future__ import annotations

import os
import socket
from importlib.metadata import version
from typing import Any

from celery.worker import state as worker_state
from celery.worker.control import inspect_command

from farm.core.settings import FarmSettings
from queues.names import FLEET_INFO_COMMAND
from workers.backends import usable_backends

_identity: dict[str, Any] = {}


def describe_worker(hardware: list[str], settings: FarmSettings) -> dict[str, str]:
    """Once, in `farm worker` before it starts consuming: toolchains are probed here, not per ask.
    Returns the toolchain of each backend this worker builds with, by backend name."""
    _identity.update(
        hardware=hardware,
        toolchains={
            backend.name: backend.toolchain(settings)
            for name in hardware
            for backend in usable_backends(name)
        },
        farm_version=version("farm"),
        host=socket.gethostname(),
        pid=os.getpid(),
    )
    return _identity["toolchains"]


@inspect_command(name=FLEET_INFO_COMMAND)
def farm_info(state: Any) -> dict[str, Any]:
    consumer = state.consumer
    return {
        **_identity,
        "queues": sorted(queue.name for queue in consumer.task_consumer.queues),
        "concurrency": consumer.pool.num_processes,
        "pool_pids": sorted(consumer.pool.info.get("processes", [])),
        "max_tasks_per_child": consumer.app.conf.worker_max_tasks_per_child,
        "max_memory_per_child_kib": consumer.app.conf.worker_max_memory_per_child,
        "active": [
            {"id": request.id, "name": request.name, "args": request.args, "started": request.time_start}
            for request in worker_state.active_requests
        ],
    }
