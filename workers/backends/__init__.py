"""The registry of backends.

Every module in this package except ``base`` is a backend and exposes ``BACKEND``; its
capabilities are its entry in farm/targets.py, which the client reads without importing any of
this. Adding a hardware target is one entry there and one file here. Modules must import cheaply:
toolchains, and numpy too, are imported inside the methods that use them
(tests/farm/test_cli_imports.py holds them to that).

A backend with a ``hardware`` class is a target (its name is a queue); the one without is the
native baseline, run on every hardware class so each speedup is measured on the same machine.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from farm.targets import NATIVE, TARGETS, get_target
from workers.backends.base import Backend

__all__ = ["NATIVE", "all_backends", "get_backend", "native_backend"]


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
        raise RuntimeError(f"backends {sorted(backends)} and farm.targets {sorted(TARGETS)} differ")
    return backends


def get_backend(name: str) -> Backend:
    """A hardware target's backend by its class name (the native baseline is not one)."""
    return all_backends()[get_target(name).name]


def native_backend() -> Backend:
    return all_backends()[NATIVE]
