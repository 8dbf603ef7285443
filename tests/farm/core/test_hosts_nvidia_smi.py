"""nvidia-smi that hangs (a wedged driver does) is a host problem the worker names, not a crash."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from farm.core import hosts


@pytest.fixture
def hanging_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real `nvidia-smi` first on PATH that never answers."""
    script = tmp_path / "bin" / "nvidia-smi"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\nexec sleep 60\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{script.parent}:{Path('/usr/bin')}:{Path('/bin')}")
    hosts.nvidia_gpu_problems.cache_clear()
    hosts.nvidia_gpu.cache_clear()
    yield script
    hosts.nvidia_gpu_problems.cache_clear()
    hosts.nvidia_gpu.cache_clear()


def test_a_hanging_nvidia_smi_is_a_host_problem(hanging_nvidia_smi: Path) -> None:
    started = time.monotonic()
    problems = hosts.nvidia_gpu_problems(timeout_s=0.5)
    assert time.monotonic() - started < 10
    assert len(problems) == 1 and "nvidia-smi did not answer within 0.5 s" in problems[0]


def test_a_hanging_nvidia_smi_names_no_gpu(hanging_nvidia_smi: Path) -> None:
    gpu = hosts.nvidia_gpu(timeout_s=0.5)
    assert gpu["compute_capability"] == "?" and "did not answer" in gpu["gpu_name"]
    assert "did not answer" in hosts.gpu_label(timeout_s=0.5)
