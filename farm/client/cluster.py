"""The local farm that ``farm up`` starts: a Redis server and one worker per hardware class.

Each process runs in its own session, with a pid file in ``<home>/run`` and a log in
``<home>/logs``; ``farm down`` stops only the processes those pid files name.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import redis

from farm.core.errors import ServiceUnavailableError
from farm.core.redisserver import answers, server_command
from farm.core.settings import FarmSettings, redacted
from farm.core.waiting import TimedOut, wait_until

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
KILL_WAIT_S = 5.0  # how long `farm down` waits for a SIGKILLed process to be gone


@dataclass(frozen=True)
class Component:
    name: str  # "redis" or "worker-<hw>"
    pid: int | None
    log: Path

    @property
    def running(self) -> bool:
        return self.pid is not None


def broker_is_local(settings: FarmSettings) -> bool:
    return (redis.connection.parse_url(settings.broker_url).get("host") or "127.0.0.1") in LOCAL_HOSTS


def broker_port(settings: FarmSettings) -> int:
    return int(redis.connection.parse_url(settings.broker_url).get("port") or 6379)


def ping_broker(settings: FarmSettings, timeout_s: float = 1.0) -> bool:
    return answers(settings.broker_url, timeout_s)


def require_broker(settings: FarmSettings) -> None:
    if not ping_broker(settings):
        raise ServiceUnavailableError(
            f"cannot reach the broker at {redacted(settings.broker_url)}: start the local farm with "
            "`farm up` or point FARM_BROKER_URL at a running Redis",
            service="broker",
        )


def redis_command(settings: FarmSettings) -> list[str]:
    # Persistent: queued work survives a restart, and no queued message is ever evicted.
    return server_command(broker_port(settings), settings.home / "redis", persistent=True)


def port_is_free(address: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def worker_command(hardware: str, concurrency: int | None = None, name: str | None = None) -> list[str]:
    """The worker's own program (``python -m workers``): the client never imports worker code."""
    command = [sys.executable, "-m", "workers", "--hw", hardware]
    command += ["--concurrency", str(concurrency)] if concurrency else []
    return command + (["--name", name] if name else [])


class LocalFarm:
    def __init__(self, settings: FarmSettings) -> None:
        self.settings = settings
        self.run_dir = settings.home / "run"
        self.log_dir = settings.home / "logs"

    def component(self, name: str) -> Component:
        return Component(name, self._live_pid(name), self.log_dir / f"{name}.log")

    def components(self) -> list[Component]:
        names = sorted(path.stem for path in self.run_dir.glob("*.pid")) if self.run_dir.is_dir() else []
        return [self.component(name) for name in names]

    def start(
        self, name: str, command: list[str], env: dict[str, str] | None = None
    ) -> tuple[Component, bool]:
        """Start ``command`` as ``name`` (``env`` added to this environment) unless it runs already;
        returns it and whether it started."""
        current = self.component(name)
        if current.running:
            return current, False
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with current.log.open("ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        self._pid_file(name).write_text(f"{process.pid} {_start_time(process.pid)}\n")
        return Component(name, process.pid, current.log), True

    def start_redis(self, wait_s: float = 15.0) -> tuple[Component, bool]:
        if not self.component("redis").running and ping_broker(self.settings, timeout_s=0.5):
            # Another farm's Redis (or a system one) on our port: sharing it would let that farm's
            # workers take this farm's messages, and answer them from another job store.
            raise ServiceUnavailableError(
                f"a Redis this farm did not start already answers on {redacted(self.settings.broker_url)} "
                "(another FARM_HOME's farm?): stop it, or point FARM_BROKER_URL at another port",
                service="broker",
            )
        component, started = self.start("redis", redis_command(self.settings))
        try:
            wait_until(
                lambda: ping_broker(self.settings, timeout_s=0.5),
                wait_s,
                f"redis did not start on {redacted(self.settings.broker_url)}",
                give_up=lambda: None if self.component("redis").running else "it exited",
            )
        except TimedOut as exc:
            raise ServiceUnavailableError(f"{exc}: see {component.log}", service="broker") from exc
        return component, started

    def stop(self, name: str, grace_s: float = 30.0) -> bool:
        """SIGTERM, then SIGKILL after ``grace_s``; True when a running process was stopped (or
        ended on its own meanwhile)."""
        pid = self._live_pid(name)
        self._pid_file(name).unlink(missing_ok=True)
        if pid is None:
            return False
        try:
            process = psutil.Process(pid)
            process.terminate()  # a worker's warm shutdown finishes or requeues its task
            if not _ended(process, grace_s):
                process.kill()
                _ended(process, KILL_WAIT_S)
        except psutil.NoSuchProcess:
            pass  # it ended between the check and the signal: stopped all the same
        return True

    def stop_all(self) -> list[str]:
        names = [c.name for c in self.components()]
        # Workers first, so they can hand unfinished messages back to the broker.
        ordered = sorted(names, key=lambda name: name == "redis")
        return [name for name in ordered if self.stop(name)]

    def _pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def _live_pid(self, name: str) -> int | None:
        """The pid in the pid file, if that very process still runs.

        The file also holds the process's start time: after a reboot the same pid may belong to
        an unrelated process, which `farm down` must never signal.
        """
        try:
            pid_text, started = self._pid_file(name).read_text().split()
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) and _start_time(pid) == started else None


def _start_time(pid: int) -> str:
    """When the process started (seconds since the epoch, as the kernel counts it); "?" when it
    has ended already."""
    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except psutil.Error:
        return "?"


def _alive(pid: int) -> bool:
    try:
        return _running(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return False


def _running(process: psutil.Process) -> bool:
    """A zombie counts as gone: it has exited and only waits to be reaped."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def _ended(process: psutil.Process, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for the process to end (reaping it when it is this process's
    child); whether it did."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            process.wait(0.1)
            return True
        except psutil.TimeoutExpired:
            pass
        if not _running(process):
            return True
        if time.monotonic() > deadline:
            return False
