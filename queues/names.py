"""Queue names. Every hardware class has a queue of the same name, consumed only by workers
that have that hardware."""

from __future__ import annotations

CONVERT_TASK = "farm.convert"
# One lane of a batch-scoring job: scores the next unclaimed shard, then sends itself again.
INFER_TASK = "farm.infer_shard"


def queue_for(hardware: str) -> str:
    return hardware


def worker_name(hardware: list[str]) -> str:
    # Celery expands %h to the host name: cpu@host, or cpu+arm@host for a multi-queue worker.
    return "+".join(hardware) + "@%h"


# The remote-control command every farm worker answers for `farm workers` (workers/control.py).
FLEET_INFO_COMMAND = "farm_info"
