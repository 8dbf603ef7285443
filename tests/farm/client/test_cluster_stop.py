"""`farm down` on processes that are not there any more: it stops what runs, and a process that
ended on its own (between the liveness check and the signal, or long before) is no error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from farm.client.cluster import LocalFarm
from farm.core.settings import FarmSettings

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
IGNORES_SIGTERM = [
    sys.executable,
    "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
    "time.sleep(120)",
]


@pytest.fixture
def settings(tmp_path: Path) -> FarmSettings:
    return FarmSettings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'farm.db'}")


class VanishingFarm(LocalFarm):
    """A local farm whose process ends (killed and reaped, as a crash or an OOM kill would end
    it) just after `farm down` has found it running, and before it signals it."""

    def _live_pid(self, name: str) -> int | None:
        pid = super()._live_pid(name)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)  # started by this test process: reaped, so the pid is gone
        return pid


def test_down_stops_a_process_that_vanished_between_the_check_and_the_signal(settings: FarmSettings) -> None:
    component, started = LocalFarm(settings).start("worker-cpu", SLEEPER)
    assert started and component.pid is not None
    farm = VanishingFarm(settings)
    farm.stop("worker-cpu", grace_s=5)  # no ProcessLookupError
    assert _gone(component.pid)
    assert not LocalFarm(settings).component("worker-cpu").running
    assert LocalFarm(settings).components() == []


def test_down_stops_every_process_even_when_one_vanished(settings: FarmSettings) -> None:
    first, _ = LocalFarm(settings).start("worker-arm", SLEEPER)
    second, _ = LocalFarm(settings).start("worker-cpu", SLEEPER)
    assert first.pid and second.pid
    os.kill(first.pid, signal.SIGKILL)
    os.waitpid(first.pid, 0)
    assert LocalFarm(settings).stop_all() == ["worker-cpu"]
    assert _gone(second.pid)


def test_down_kills_a_process_that_ignores_sigterm_after_the_grace(settings: FarmSettings) -> None:
    farm = LocalFarm(settings)
    component, _ = farm.start("worker-fpga", IGNORES_SIGTERM)
    assert component.pid is not None
    deadline = time.monotonic() + 30
    while "ready" not in component.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert farm.stop("worker-fpga", grace_s=0.5)
    assert _gone(component.pid)


def test_down_never_signals_a_process_that_took_over_a_recorded_pid(settings: FarmSettings) -> None:
    # After a reboot the pid in a pid file may belong to an unrelated process: this very one here.
    farm = LocalFarm(settings)
    farm.run_dir.mkdir(parents=True)
    (farm.run_dir / "worker-cpu.pid").write_text(f"{os.getpid()} 12345\n")
    assert not farm.component("worker-cpu").running
    assert farm.stop("worker-cpu") is False  # and this test process is still here to say so
    assert not (farm.run_dir / "worker-cpu.pid").exists()


def test_a_process_that_exited_at_once_is_not_running(settings: FarmSettings) -> None:
    farm = LocalFarm(settings)
    component, _ = farm.start("redis", [sys.executable, "-c", "pass"])
    assert component.pid is not None
    subprocess.run(["true"])  # let it exit
    os.waitpid(component.pid, 0)
    assert not farm.component("redis").running
    assert farm.stop("redis") is False


def _gone(pid: int) -> bool:
    """Exited: reaped, or a zombie its parent (this test process) has not waited for."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
