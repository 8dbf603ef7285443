"""`farm up` / `farm down`: a real Redis and a real worker, started and stopped in the background."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import psutil
import pytest
import redis

from farm.client.cluster import LocalFarm
from tests.conftest import Farm, farm_environment, free_port

pytestmark = pytest.mark.integration


def _pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_up_is_idempotent_and_down_stops_what_up_started(tmp_path: Path) -> None:
    broker = f"redis://127.0.0.1:{free_port()}/0"
    farm = Farm(farm_environment(tmp_path / "home", broker, f"sqlite:///{tmp_path / 'farm.db'}"))
    try:
        first = farm.cli("up", timeout=180)
        assert first.returncode == 0, first.stderr
        assert "redis   started" in first.stdout and "cpu     worker started" in first.stdout
        assert "not consuming" not in first.stdout  # `up` waited until the worker took its queue
        flower = f"http://127.0.0.1:{farm.env['FARM_FLOWER_PORT']}"
        assert "flower  started" in first.stdout and flower in first.stdout
        assert redis.Redis.from_url(broker).ping()
        assert (farm.settings.home / "redis" / "appendonlydir").is_dir()  # persistence is on

        again = farm.cli("up", timeout=120)
        assert "redis   already running" in again.stdout and "worker already running" in again.stdout
        redis_only = farm.cli("up", "--no-workers")
        assert "redis   already running" in redis_only.stdout and "worker" not in redis_only.stdout
        assert "flower" not in redis_only.stdout

        status = farm.cli("up", "--status")
        assert status.stdout.count("running") == 3 and "worker-cpu" in status.stdout
        pids = [c.pid for c in LocalFarm(farm.settings).components()]
        assert len(pids) == 3 and all(pids)
        with urllib.request.urlopen(f"{flower}/healthcheck", timeout=10) as response:
            assert response.read() == b"OK"
    finally:
        down = farm.cli("down", timeout=120)
    assert down.returncode == 0 and "stopped flower, worker-cpu, redis" in down.stdout
    assert not any(_pid_alive(pid) for pid in pids if pid)
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(broker, socket_connect_timeout=0.5).ping()
    assert "nothing was running" in farm.cli("down").stdout


def test_up_refuses_a_redis_it_did_not_start_on_its_port(tmp_path: Path, redis_url: str) -> None:
    # Two farm homes on one broker would take each other's messages and answer them from the
    # wrong job store: the second `farm up` says so instead.
    farm = Farm(farm_environment(tmp_path / "home", redis_url, f"sqlite:///{tmp_path / 'farm.db'}"))
    result = farm.cli("up", "--no-workers")
    assert result.returncode == 5, result.stderr
    assert "a Redis this farm did not start already answers on" in result.stderr
