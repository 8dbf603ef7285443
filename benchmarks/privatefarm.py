"""A farm of the benchmarks' own: Redis on a free port, SQLite and artifacts in a temporary home,
and one worker process serving the hardware classes asked for."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any


class PrivateFarm:
    def __init__(self, home: Path, hardware: str, env: dict[str, str]) -> None:
        self.hardware = hardware
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
        self.env.update(
            FARM_HOME=str(home),
            FARM_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0",
            FARM_CONFIG=str(home / "absent.toml"),
            TF_CPP_MIN_LOG_LEVEL="2",
            **env,
        )
        self.worker: subprocess.Popen | None = None

    def __enter__(self) -> PrivateFarm:
        self.cli("up", "--no-workers")
        self.start_worker()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_worker()
        self.cli("down", check=False)

    def start_worker(self) -> None:
        log = (Path(self.env["FARM_HOME"]) / "bench-worker.log").open("ab")
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "farm", "worker", "--hw", self.hardware, "--name", "bench@%h"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.terminate()
            self.worker.wait(60)
            self.worker = None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "farm", *args], env=self.env, capture_output=True, text=True, timeout=3600
        )
        if check and result.returncode != 0:
            raise SystemExit(f"farm {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def view(self, job_id: str) -> Any:
        from farm.client.jobs import load_job
        from farm.core.settings import FarmSettings

        return load_job(FarmSettings(home=Path(self.env["FARM_HOME"])), job_id)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
