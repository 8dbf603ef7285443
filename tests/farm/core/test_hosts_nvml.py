"""GPU facts from NVML where nvidia-ml-py is installed, nvidia-smi otherwise. No GPU here: the
NVML library is replaced by a stand-in module at the hardware boundary (its three calls), which is
the only part that needs a GPU."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest

from farm.core import hosts


class NVMLError(Exception):
    pass


def fake_pynvml(*, answers: bool) -> types.ModuleType:
    module = types.ModuleType("pynvml")
    calls: list[str] = []

    def init() -> None:
        calls.append("init")
        if not answers:
            raise NVMLError("NVML Shared Library Not Found")

    module.NVMLError = NVMLError  # type: ignore[attr-defined]
    module.nvmlInit = init  # type: ignore[attr-defined]
    module.nvmlShutdown = lambda: calls.append("shutdown")  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = lambda index: ("gpu", index)  # type: ignore[attr-defined]
    module.nvmlDeviceGetName = lambda handle: b"NVIDIA H200"  # type: ignore[attr-defined]
    module.nvmlDeviceGetCudaComputeCapability = lambda handle: (9, 0)  # type: ignore[attr-defined]
    module.calls = calls  # type: ignore[attr-defined]
    return module


@pytest.fixture(autouse=True)
def fresh_host_facts() -> Iterator[None]:
    hosts.nvidia_gpu.cache_clear()
    yield
    hosts.nvidia_gpu.cache_clear()


def test_the_gpu_is_read_from_nvml_when_it_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = fake_pynvml(answers=True)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    assert hosts.nvidia_gpu() == {"gpu_name": "NVIDIA H200", "compute_capability": "9.0"}
    assert hosts.gpu_label() == "NVIDIA H200 sm9.0"
    # Each answer releases NVML again: nothing is held open across the worker's fork.
    assert nvml.calls and nvml.calls == ["init", "shutdown"] * (len(nvml.calls) // 2)


def test_nvidia_smi_answers_when_nvml_cannot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(answers=False))
    monkeypatch.setenv("PATH", "/nonexistent")  # and no nvidia-smi either: said, not raised
    assert hosts.nvidia_gpu() == {"gpu_name": "no GPU found (no nvidia-smi)", "compute_capability": "?"}
