"""Watching the fleet for real: `farm workers` against live workers, and Flower's API and metrics."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from db import store
from db.engine import session_scope
from farm.samples import write_mlp_onnx
from tests.conftest import Farm, assert_refused, free_port
from tests.integration.test_convert import submit, wait_for_tasks

pytestmark = pytest.mark.integration
USER, PASSWORD = "ops", "flower-test-secret"


def fleet(farm: Farm) -> dict[str, Any]:
    result = farm.cli("workers", "--json", "--timeout", "0.5")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_farm_workers_shows_each_worker_and_the_work_waiting(
    sqlite_farm: Farm, sample_models: dict[str, Path]
) -> None:
    farm = sqlite_farm
    farm.start_worker("cpu")
    waiting = submit(farm, sample_models["frozen_graph"], hw="fpga")  # no fpga worker: its task waits
    assert fleet(farm)["queues"]["fpga"] == 1

    job_id = submit(farm, sample_models["frozen_graph"], hw="cpu")  # TensorFlow: several seconds
    seen: dict[str, Any] = {}
    deadline = time.monotonic() + 120
    while not seen and time.monotonic() < deadline:
        ((name, answer),) = fleet(farm)["workers"].items()
        seen = next((task for task in answer["active"] if task["name"] == "farm.convert"), {})
    assert seen, "the running conversion never showed as active"
    assert name.startswith("cpu-") and answer["hardware"] == ["cpu"] and answer["queues"] == ["cpu"]
    assert answer["concurrency"] == 1 and answer["toolchains"]["cpu"].startswith("onnxruntime ")
    assert seen["args"][0] in {t.id for t in wait_for_tasks(farm, [job_id])}

    table = farm.cli("workers")
    assert table.returncode == 0, table.stderr
    assert name[:20] in table.stdout and "waiting in queues: arm 0, cpu 0, fpga 1" in table.stdout
    with session_scope(farm.settings.database_url) as session:
        assert [t.state for t in store.tasks_of(session, waiting)] == ["queued"]  # nothing consumes fpga


def test_farm_workers_names_an_unreachable_broker_in_one_line(sqlite_farm: Farm) -> None:
    sqlite_farm.env["FARM_BROKER_URL"] = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    result = sqlite_farm.cli("workers")
    assert_refused(result, 5, "error: cannot reach the broker at redis://:***@127.0.0.1:")
    assert "hunter2" not in result.stderr


def _get(url: str, auth: bool = True) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def flower(sqlite_farm: Farm) -> Iterator[str]:
    port = free_port()
    env = {**sqlite_farm.env, "FARM_FLOWER_USER": USER, "FARM_FLOWER_PASSWORD": PASSWORD}
    log = (Path(env["FARM_HOME"]) / "flower.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "farm", "flower", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if _get(f"{base}/healthcheck", auth=False)[0] == 200:
                break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"Flower did not start: {Path(log.name).read_text()[-2000:]}")
        time.sleep(0.3)
    yield base
    os.kill(process.pid, signal.SIGTERM)
    process.wait(15)


def test_flower_shows_the_farms_workers_and_tasks_behind_auth(
    sqlite_farm: Farm, flower: str, tmp_path: Path
) -> None:
    farm = sqlite_farm
    farm.start_worker("cpu")
    job_id = submit(farm, write_mlp_onnx(tmp_path / "mlp.onnx"), "--precision", "fp32", hw="cpu")
    task_ids = {t.id for t in wait_for_tasks(farm, [job_id])}

    assert _get(f"{flower}/api/workers", auth=False)[0] == 401
    assert _get(f"{flower}/api/tasks", auth=False)[0] == 401
    status, body = _get(f"{flower}/api/workers?refresh=1")
    assert status == 200 and any(name.startswith("cpu-") for name in json.loads(body))

    tasks: dict[str, Any] = {}
    deadline = time.monotonic() + 30  # events reach Flower a moment after the task ends
    while not tasks and time.monotonic() < deadline:
        status, body = _get(f"{flower}/api/tasks")
        assert status == 200
        tasks = {k: t for k, t in json.loads(body).items() if t["name"] == "farm.convert"}
        time.sleep(0.5)
    (task,) = tasks.values()
    assert task["state"] == "SUCCESS" and task_ids & set(json.loads(task["args"].replace("'", '"')))

    status, metrics = _get(f"{flower}/metrics", auth=False)  # Prometheus scrapes without credentials
    assert status == 200 and b'flower_events_total{task="farm.convert"' in metrics


@pytest.mark.parametrize(
    ("address", "extra", "message"),
    [
        ("0.0.0.0", {}, "Flower on 0.0.0.0 would show the fleet's tasks to anyone"),
        ("127.0.0.1", {"FARM_FLOWER_USER": "ops"}, "set both FARM_FLOWER_USER and FARM_FLOWER_PASSWORD"),
    ],
)
def test_flower_refuses_to_serve_the_fleet_unprotected(
    sqlite_farm: Farm, address: str, extra: dict[str, str], message: str
) -> None:
    sqlite_farm.env.update(extra)
    assert_refused(sqlite_farm.cli("flower", "--address", address, "--port", str(free_port())), 2, message)
