"""The registry of backends.

Every module in this package except ``base`` is a backend and exposes ``BACKEND``; its
capabilities are its entry in farm/core/targets.py, which the client reads without importing any of
this. Adding a hardware target is one entry there and one file here. Modules must import cheaply:
toolchains, and numpy too, are imported inside the methods that use them
(tests/farm/cli/test_imports.py holds them to that).

A backend with a ``hardware`` class is a target serving that class's queue; a class may have more
than one (gpu: ONNX Runtime's CUDA provider and TensorRT), and a worker builds with each one its
host can run. The backend without a class is the native baseline, run on every hardware class so
each speedup is measured on the same machine.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from farm.core.hosts import class_problems
from farm.core.targets import NATIVE, TARGETS, targets_for
from workers.backends.base import Backend

__all__ = ["NATIVE", "all_backends", "backends_for", "class_problems", "native_backend", "usable_backends"]


@lru_cache(maxsize=1)
def all_backends() -> dict[str, Backend]:
    backends: dict[str, Backend] = {}
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name == "base":
            continue
        backend: Backend = importlib.import_module(f"{__name__}.{module_info.name}").BACKEND
        if backend.name in backends:
            raise RuntimeError(f"two backends are named {backend.name!r}")
        backends[backend.name] = backend
    if set(backends) != set(TARGETS):
        raise RuntimeError(f"backends {sorted(backends)} and farm.core.targets {sorted(TARGETS)} differ")
    return backends


def backends_for(hardware: str) -> list[Backend]:
    """Every backend of a hardware class, in order of preference (the native baseline is none)."""
    return [all_backends()[target.name] for target in targets_for(hardware)]


def usable_backends(hardware: str) -> list[Backend]:
    """The backends of a hardware class that this host can run."""
    return [backend for backend in backends_for(hardware) if not backend.host_problems()]


def native_backend() -> Backend:
    return all_backends()[NATIVE]
