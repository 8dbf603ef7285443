"""Nothing runs that should not: a pickled message put on a queue by hand is refused and logged,
never executed, and the worker goes on serving."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Producer

from farm.samples import write_mlp_onnx
from tests.conftest import Farm
from tests.integration.test_infer import convert

pytestmark = pytest.mark.integration


class _Exploit:
    """Unpickling this runs a shell command: what a pickle-accepting worker would execute."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_a_pickled_task_message_is_refused_and_logged_never_run(sqlite_farm: Farm, tmp_path: Path) -> None:
    farm = sqlite_farm
    worker = farm.start_worker("cpu")
    marker = tmp_path / "pwned"
    task_id = str(uuid.uuid4())
    with Connection(farm.env["FARM_BROKER_URL"]) as connection:
        producer = Producer(connection.channel(), exchange=Exchange("cpu", type="direct"), routing_key="cpu")
        producer.publish(
            ((_Exploit(marker),), {}, {}),  # a Celery protocol 2 body: args, kwargs, embed
            serializer="pickle",
            headers={"task": "farm.convert", "id": task_id, "lang": "py", "argsrepr": "()"},
        )

    log = Path(farm.env["FARM_HOME"]) / "worker-0.log"
    deadline = time.monotonic() + 30
    while "untrusted content of type pickle" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "Refusing to deserialize untrusted content of type pickle" in log.read_text()
    assert not marker.exists()
    assert worker.poll() is None  # still up, and still serving:
    convert(farm, write_mlp_onnx(tmp_path / "mlp.onnx"))
    assert not marker.exists()
    assert json.loads(farm.cli("workers", "--json").stdout)["queues"]["cpu"] == 0  # not left to retry
