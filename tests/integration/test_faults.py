"""Faults caused for real in the middle of a scoring job, with real Redis and real workers: the
database away for seconds, the broker restarted, a worker stopped with SIGTERM. Every job ends
`succeeded` with every row exactly once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

from db import store
from db.engine import session_scope
from db.models import ShardState
from farm.core.redisserver import server_command, wait_for_redis
from farm.samples import write_feature_table
from tests.conftest import Farm, _postgres_database, farm_environment, free_port
from tests.integration.test_convert import submit, wait_for_tasks, wait_until_running
from tests.integration.test_infer import (
    SLOW_JOB_ROWS,
    assert_every_row_once,
    convert,
    score,
    shards_of,
    slow_job,
    wait_for_a_shard,
    wait_for_job,
)

pytestmark = pytest.mark.integration


class TcpProxy:
    """A TCP relay the test can cut: while cut, it refuses new connections and has dropped every
    open one, which is what a database host that went away looks like to its clients."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.resume()

    def resume(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=True)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
                    self._listener.shutdown(socket.SHUT_RDWR)
                self._listener.close()
                self._listener = None
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._open += [client, upstream]
            for source, sink in [(client, upstream), (upstream, client)]:
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def proxied_postgres(tmp_path: Path, redis_url: str) -> Iterator[tuple[Farm, TcpProxy]]:
    """A farm whose every database connection goes through a proxy the test can cut."""
    redis.Redis.from_url(redis_url).flushdb()
    for url in _postgres_database():
        proxy = TcpProxy(5432)
        through_proxy = url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{proxy.port}/")
        farm = Farm(farm_environment(tmp_path / "home", redis_url, through_proxy))
        farm.direct_database_url = url  # type: ignore[attr-defined]
        yield farm, proxy
        farm.stop_workers()
        proxy.cut()


def test_a_database_outage_mid_job_is_waited_out(
    proxied_postgres: tuple[Farm, TcpProxy],
    mlp: Path,
    tmp_path: Path,
) -> None:
    farm, proxy = proxied_postgres
    worker, job_id, data = slow_job(farm, mlp, tmp_path, shard_rows=20_000)
    farm.settings.database_url = farm.direct_database_url  # the test watches past the proxy
    wait_for_a_shard(farm, job_id, ShardState.DONE)
    proxy.cut()  # every worker query fails meanwhile: connections dropped, new ones refused
    farm.wait_for_log("Retry in")  # until the worker has met the outage and is waiting it out
    proxy.resume()

    done = wait_for_job(farm, job_id, timeout=300)
    assert {s.state for s in done} == {"done"}, [(s.state, s.error) for s in done]
    assert worker.poll() is None  # waited out, not crashed
    assert_every_row_once(farm, job_id, data, tmp_path / "out", tmp_path)
    log = (Path(farm.env["FARM_HOME"]) / "worker-0.log").read_text()
    assert "unavailable" in log and "Retry in" in log  # it did meet the outage, and retried


def test_a_sqlite_database_locked_by_another_writer_is_waited_out(
    sqlite_farm: Farm,
    mlp: Path,
    tmp_path: Path,
) -> None:
    farm = sqlite_farm
    _, job_id, data = slow_job(farm, mlp, tmp_path, shard_rows=20_000)
    wait_for_a_shard(farm, job_id, ShardState.DONE)
    database = farm.settings.database_url.removeprefix("sqlite:///")
    other = sqlite3.connect(database, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another writer holds the whole file
    time.sleep(5)
    other.execute("COMMIT")
    other.close()

    done = wait_for_job(farm, job_id)
    assert {s.state for s in done} == {"done"}, [(s.state, s.error) for s in done]
    assert_every_row_once(farm, job_id, data, tmp_path / "out", tmp_path)


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A Redis run as `farm up` runs it (append-only file on), which the test may restart."""
    port = free_port()
    yield f"redis://127.0.0.1:{port}/0", server_command(port, tmp_path / "redis-data", persistent=True)


def _start_redis(command: list[str], url: str) -> subprocess.Popen:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    wait_for_redis(url, process=process)
    return process


def test_a_broker_restart_mid_job_loses_nothing(
    persistent_redis: tuple[str, list[str]],
    sqlite_url: str,
    mlp: Path,
    tmp_path: Path,
) -> None:
    url, command = persistent_redis
    broker = _start_redis(command, url)
    farm = Farm(farm_environment(tmp_path / "home", url, sqlite_url))
    try:
        worker, job_id, data = slow_job(farm, mlp, tmp_path, shard_rows=20_000)
        wait_for_a_shard(farm, job_id, ShardState.DONE)
        broker.send_signal(signal.SIGTERM)  # Redis writes its append-only file and exits
        broker.wait(15)

        started = time.monotonic()
        status = farm.cli("status", job_id, timeout=60)
        assert time.monotonic() - started < 20, "status hung on the missing broker"
        assert status.returncode == 0, status.stderr
        assert "broker" in status.stdout and "unreachable" in status.stdout, status.stdout
        time.sleep(3)

        broker = _start_redis(command, url)
        done = wait_for_job(farm, job_id, timeout=300)
        assert {s.state for s in done} == {"done"}, [(s.state, s.error) for s in done]
        assert worker.poll() is None  # reconnected by itself
        assert_every_row_once(farm, job_id, data, tmp_path / "out", tmp_path)
    finally:
        farm.stop_workers()
        broker.terminate()
        broker.wait(15)


def test_a_worker_stopped_with_sigterm_finishes_its_shard_and_leaves_the_rest(
    sqlite_farm: Farm,
    mlp: Path,
    tmp_path: Path,
) -> None:
    farm = sqlite_farm
    worker, job_id, data = slow_job(farm, mlp, tmp_path, shard_rows=20_000)
    wait_for_a_shard(farm, job_id, ShardState.RUNNING)
    stopped = time.monotonic()
    worker.send_signal(signal.SIGTERM)  # Celery's warm shutdown: the running task finishes
    worker.wait(120)
    assert worker.returncode == 0
    states = [s.state for s in shards_of(farm, job_id)]
    assert "running" not in states and "done" in states, states  # finished, not abandoned
    assert "pending" in states, f"the worker took more than its shard on the way out: {states}"
    assert time.monotonic() - stopped < 120

    farm.start_worker("cpu")  # the lane it left in the queue carries the job on
    done = wait_for_job(farm, job_id, timeout=300)
    assert {s.state for s in done} == {"done"} and max(s.attempts for s in done) == 1
    assert_every_row_once(farm, job_id, data, tmp_path / "out", tmp_path)


@pytest.mark.parametrize(
    ("setting", "value", "reported"),
    [
        ("FARM_WORKER_MAX_TASKS_PER_CHILD", "1", ("max_tasks_per_child", 1)),
        ("FARM_WORKER_MAX_MEMORY_PER_CHILD_MB", "1", ("max_memory_per_child_kib", 1024)),
    ],
)
def test_pool_processes_are_replaced_to_bound_memory(
    sqlite_farm: Farm, mlp: Path, tmp_path: Path, setting: str, value: str, reported: tuple[str, int]
) -> None:
    farm = sqlite_farm
    farm.env[setting] = value
    worker = farm.start_worker("cpu")
    (answer,) = json.loads(farm.cli("workers", "--json").stdout)["workers"].values()
    assert answer[reported[0]] == reported[1]
    data = write_feature_table(tmp_path / "data.parquet", 30_000, row_group_rows=2_000)
    job_id = score(
        farm, convert(farm, mlp), data, tmp_path / "out", "--keep", "id,label", "--shard-rows", "5000"
    )
    pool_pids: set[int] = set()
    deadline = time.monotonic() + 180
    while any(s.state != "done" for s in shards_of(farm, job_id)):  # six shards, one task each
        assert time.monotonic() < deadline, [s.state for s in shards_of(farm, job_id)]
        pool_pids |= {child.pid for child in psutil.Process(worker.pid).children()}
        time.sleep(0.02)
    assert_every_row_once(farm, job_id, data, tmp_path / "out", tmp_path)
    assert len(pool_pids) >= 4, f"the pool process was not replaced after its tasks: {pool_pids}"


@pytest.mark.parametrize(
    ("soft_limit", "reason"),
    [
        ("0", "FARM_TASK_TIME_LIMIT_S 10, soft 9"),  # soft limit (90% of 10 s): the task stops itself
        ("30", "FARM_TASK_TIME_LIMIT_S 10, soft 30"),  # no soft limit first: the hard one kills it
    ],
)
def test_a_task_past_its_time_limit_is_stopped_and_reported(
    sqlite_farm: Farm, mlp: Path, tmp_path: Path, soft_limit: str, reason: str
) -> None:
    farm = sqlite_farm
    farm.env.update(FARM_TASK_TIME_LIMIT_S="10", FARM_TASK_SOFT_TIME_LIMIT_S=soft_limit)
    worker = farm.start_worker("cpu")
    data = write_feature_table(tmp_path / "data.parquet", 240_000, row_group_rows=4_000)
    extra = ("--keep", "id,label", "--batch-size", "2", "--shard-rows", "240000")  # one shard, past 10 s
    job_id = score(farm, convert(farm, mlp), data, tmp_path / "out", *extra)
    wait_for_a_shard(farm, job_id, ShardState.RUNNING)
    first_pool = live_pool(worker)

    (shard,) = wait_for_job(farm, job_id, timeout=120)
    assert shard.state == "failed" and shard.error is not None, shard
    assert shard.error.startswith("timed out") and reason in shard.error, shard.error
    status = farm.cli("status", job_id)
    assert status.returncode == 0 and "timed out" in status.stdout, status.stdout
    if soft_limit == "0":
        assert live_pool(worker) == first_pool  # the task stopped itself; its process serves on
    else:  # the hard limit: the failure is recorded first, then the pool process is killed and replaced
        deadline = time.monotonic() + 30
        while live_pool(worker) in (first_pool, set()):
            assert time.monotonic() < deadline, f"pool process {first_pool} not replaced"
            time.sleep(0.2)
    assert worker.poll() is None


def live_pool(worker: subprocess.Popen) -> set[int]:
    """The worker's pool processes, not counting one killed and not yet reaped."""
    pids = set()
    for child in psutil.Process(worker.pid).children():
        with contextlib.suppress(psutil.NoSuchProcess):
            if child.status() != psutil.STATUS_ZOMBIE:
                pids.add(child.pid)
    return pids


def test_a_shard_that_kills_its_worker_every_time_fails_after_the_attempt_limit(
    sqlite_farm: Farm, mlp: Path, tmp_path: Path
) -> None:
    farm = sqlite_farm
    worker, job_id, _ = slow_job(farm, mlp, tmp_path, shard_rows=SLOW_JOB_ROWS)  # one shard
    deaths = 0
    deadline = time.monotonic() + 240
    while (shard := shards_of(farm, job_id)[0]).state != "failed":
        assert time.monotonic() < deadline and shard.state != "done", shard
        if shard.state == "running" and shard.attempts > deaths:
            for child in psutil.Process(worker.pid).children():  # as a crashing runtime would
                os.kill(child.pid, signal.SIGKILL)
            deaths += 1
        time.sleep(0.05)
    assert deaths == 3 and shard.attempts == 3  # FARM_MAX_ATTEMPTS, then no more deliveries
    assert shard.error == "gave up after 3 attempts: the worker died each time", shard.error
    assert farm.cli("status", job_id).returncode == 0 and worker.poll() is None


@pytest.mark.serial  # a 1 s soft shutdown against a running shard: run alone, not beside other load
def test_a_worker_stopped_as_containers_and_units_stop_it_hands_its_shard_back(
    sqlite_farm: Farm, mlp: Path, tmp_path: Path
) -> None:
    """SIGTERM remapped to a cold shutdown (REMAP_SIGTERM=SIGQUIT, as the Dockerfile and the
    systemd units run workers): the running shard gets the soft shutdown time, then goes back."""
    farm = sqlite_farm
    farm.env.update(REMAP_SIGTERM="SIGQUIT", FARM_WORKER_SOFT_SHUTDOWN_S="1")
    # One shard of seconds, well past the 1 s soft shutdown.
    worker, job_id, data = slow_job(farm, mlp, tmp_path, shard_rows=120_000, rows=120_000)
    wait_for_a_shard(farm, job_id, ShardState.RUNNING)
    stopped = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    worker.wait(60)
    assert time.monotonic() - stopped < 30  # the soft shutdown, not the whole shard
    assert shards_of(farm, job_id)[0].state == "running"  # interrupted, not finished or failed

    farm.start_worker("cpu")
    (shard,) = wait_for_job(farm, job_id, timeout=120)
    assert shard.state == "done" and shard.attempts == 2
    assert_every_row_once(farm, job_id, data, tmp_path / "out", tmp_path)


# --- the same faults in the middle of a conversion -------------------------------------------------


def _assert_converted_once(farm: Farm, job_id: str) -> None:
    (task,) = wait_for_tasks(farm, [job_id])
    assert task.state == "succeeded", task.error
    with session_scope(farm.settings.database_url) as session:
        variants = store.variants_of(session, job_id)
    keys = [v.cache_key for v in variants]
    assert sorted((v.backend, v.precision) for v in variants) == [
        ("cpu", "fp32"),
        ("cpu", "int8"),
        ("native", "fp32"),
    ]
    assert len(set(keys)) == len(keys)  # each variant exactly once


def test_a_conversion_waits_out_a_database_outage(
    proxied_postgres: tuple[Farm, TcpProxy], sample_models: dict[str, Path]
) -> None:
    farm, proxy = proxied_postgres
    farm.start_worker("cpu")
    job_id = submit(farm, sample_models["frozen_graph"])
    farm.settings.database_url = farm.direct_database_url  # the test watches past the proxy
    wait_until_running(farm, job_id)
    proxy.cut()
    farm.wait_for_log("Retry in")  # the conversion met the outage: it must wait it out, not fail
    proxy.resume()
    _assert_converted_once(farm, job_id)
    assert "unavailable" in farm.worker_log()


def test_a_conversion_goes_on_through_a_broker_restart(
    persistent_redis: tuple[str, list[str]], sqlite_url: str, sample_models: dict[str, Path], tmp_path: Path
) -> None:
    url, command = persistent_redis
    broker = _start_redis(command, url)
    farm = Farm(farm_environment(tmp_path / "home", url, sqlite_url))
    try:
        worker = farm.start_worker("cpu")
        job_id = submit(farm, sample_models["frozen_graph"])
        wait_until_running(farm, job_id)
        broker.send_signal(signal.SIGTERM)
        broker.wait(15)
        time.sleep(3)
        broker = _start_redis(command, url)
        _assert_converted_once(farm, job_id)
        assert worker.poll() is None
    finally:
        farm.stop_workers()
        broker.terminate()
        broker.wait(15)


def test_a_worker_stopped_with_sigterm_finishes_its_conversion(
    sqlite_farm: Farm, sample_models: dict[str, Path]
) -> None:
    worker = sqlite_farm.start_worker("cpu")
    job_id = submit(sqlite_farm, sample_models["frozen_graph"])
    wait_until_running(sqlite_farm, job_id)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(180) == 0
    _assert_converted_once(sqlite_farm, job_id)
