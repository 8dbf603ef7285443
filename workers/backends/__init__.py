"""The registry of hardware backends.

Every module in this package except ``base`` is a backend and exposes ``BACKEND``; adding a
hardware target is adding one file. Modules must import cheaply: heavy toolchains are imported
inside the backend's methods, so the client can list backends without TensorFlow.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from farm.errors import UsageError
from workers.backends.base import Backend


@lru_cache(maxsize=1)
def all_backends() -> dict[str, Backend]:
    backends: dict[str, Backend] = {}
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name == "base":
            continue
        backend: Backend = importlib.import_module(f"{__name__}.{module_info.name}").BACKEND
        if backend.hardware in backends:
            raise RuntimeError(f"two backends claim hardware class {backend.hardware!r}")
        backends[backend.hardware] = backend
    return backends


def get_backend(hardware: str) -> Backend:
    backends = all_backends()
    if hardware not in backends:
        known = ", ".join(sorted(backends))
        raise UsageError(f"unknown hardware class {hardware!r} (known: {known})")
    return backends[hardware]


def parse_hardware_list(text: str) -> list[str]:
    """``cpu,gpu`` -> ["cpu", "gpu"], refusing names no backend knows and empty lists."""
    names = list(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    if not names:
        raise UsageError("no hardware class given (e.g. --hw cpu)")
    for name in names:
        get_backend(name)
    return names
