"""ansible/: the playbook parses, lints clean, and the worker role runs for real on this machine
into a throw-away root (connection local; units written, not started: no systemd here)."""

from __future__ import annotations

import getpass
import grp
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from farm.core.settings import FarmSettings

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = ROOT / "ansible"
BIN = Path(sys.executable).parent
SECRETS = {
    "vault_redis_password": "redis-secret-1",
    "vault_postgres_password": "pg-secret-2",
    "vault_objectstore_password": "s3-secret-3",
}


def ansible(tool: str, *args: str, cwd: Path = ANSIBLE) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "0", "NO_COLOR": "1"}
    env["ANSIBLE_ROLES_PATH"] = str(ANSIBLE / "roles")
    return subprocess.run(
        [str(BIN / tool), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_playbook_parses() -> None:
    result = ansible("ansible-playbook", "--syntax-check", "-i", "inventory.example.yml", "site.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_roles_lint_clean_at_the_production_profile() -> None:
    result = ansible("ansible-lint", "--profile", "production", "--offline")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The worker role applied to localhost as a gpu and cpu host, under a scratch root."""
    root = tmp_path_factory.mktemp("fleet-root")
    user = getpass.getuser()
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "farm_root": str(root),
                "farm_manage_user": False,
                "farm_user": user,
                "farm_group": grp.getgrgid(os.getgid()).gr_name,
                "farm_start_services": False,
                "farm_python": sys.executable,
                "farm_package": str(_source_copy(root)),  # this checkout; its dependencies are the test's
                "farm_pip_extra_args": "--no-deps",
                "farm_control_host": "control.test",
                "farm_cuda_visible_devices": "0",
                "farm_worker_concurrency": 2,
                **SECRETS,
            },
            "children": {"cpu": {"hosts": {"localhost": {}}}, "gpu": {"hosts": {"localhost": {}}}},
        }
    }
    (root / "inventory.json").write_text(json.dumps(inventory))
    playbook = root / "workers.yml"
    playbook.write_text("- name: Workers\n  hosts: cpu:gpu\n  gather_facts: false\n  roles: [farm_worker]\n")
    result = ansible("ansible-playbook", "-i", str(root / "inventory.json"), str(playbook), cwd=root)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return root


def _source_copy(root: Path) -> Path:
    """This checkout without its environments and caches: pip builds a source folder in place (its
    build/ folder), and a stale or concurrent build there breaks the next one."""
    skipped = shutil.ignore_patterns(
        ".git", ".venv", ".farm", "build", "*.egg-info", "__pycache__", ".*_cache"
    )
    return Path(shutil.copytree(ROOT, root / "source", ignore=skipped))


def _unit(root: Path, hardware: str) -> dict[str, list[str]]:
    lines = (root / "etc/systemd/system" / f"farm-worker-{hardware}.service").read_text().splitlines()
    settings: dict[str, list[str]] = {}
    for line in lines:
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_one_unit_per_hardware_class_runs_that_classs_worker(installed: Path) -> None:
    for hardware in ["cpu", "gpu"]:
        unit = _unit(installed, hardware)
        command = shlex.split(unit["ExecStart"][0])
        assert command[:4] == [str(installed / "opt/farm/venv/bin/farm"), "worker", "--hw", hardware]
        assert Path(command[0]).is_file()  # the role installed farm's entry point there
        assert command[4:] == ["--concurrency", "2", "--name", f"{hardware}@%%h"]
        check = subprocess.run(
            [sys.executable, "-m", "farm", *command[1:4], "--help"], capture_output=True, text=True
        )
        assert check.returncode == 0 and "--concurrency" in check.stdout and "--name" in check.stdout
        assert f"FARM_HOME={installed}/var/lib/farm/{hardware}" in unit["Environment"]
        assert unit["ReadWritePaths"] == [f"{installed}/var/lib/farm/{hardware}"]  # only its own home
        assert unit["ProtectSystem"] == ["strict"] and unit["NoNewPrivileges"] == ["yes"]
        assert "REMAP_SIGTERM=SIGQUIT" in unit["Environment"]
        assert int(unit["TimeoutStopSec"][0]) > FarmSettings().worker_soft_shutdown_s
        assert (installed / "var/lib/farm" / hardware).stat().st_mode & 0o777 == 0o700
    assert "CUDA_VISIBLE_DEVICES=0" in _unit(installed, "gpu")["Environment"]
    assert not any(e.startswith("CUDA") for e in _unit(installed, "cpu")["Environment"])


def test_secrets_live_only_in_the_environment_file(installed: Path) -> None:
    env_file = installed / "etc/farm/farm.env"
    assert env_file.stat().st_mode & 0o777 == 0o640
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    assert values["FARM_BROKER_URL"] == "redis://:redis-secret-1@control.test:6379/0"
    assert values["FARM_DATABASE_URL"] == "postgresql+psycopg://farm:pg-secret-2@control.test:5432/farm"
    assert values["AWS_SECRET_ACCESS_KEY"] == "s3-secret-3" and values["FARM_ARTIFACT_ROOT"].startswith(
        "s3://"
    )
    units = "".join(p.read_text() for p in (installed / "etc/systemd/system").iterdir())
    assert not any(secret in units for secret in SECRETS.values())
