"""The registry of backends.

Every module in this package except ``base`` is a backend and exposes ``BACKEND``; adding a
hardware target is adding one file. Modules must import cheaply, because the CLI imports them to
check `--hw` and `--precision`: toolchains, and numpy too, are imported inside the methods that use
them (tests/farm/test_cli_imports.py holds the CLI to that).

A backend with a ``hardware`` class is a target (its name is a queue); the one without is the
native baseline, run on every hardware class so each speedup is measured on the same machine.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from farm.errors import UsageError
from workers.backends.base import PRECISIONS, Backend

NATIVE = "native"


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
    return backends


def hardware_classes() -> list[str]:
    return sorted(name for name, backend in all_backends().items() if backend.hardware)


def get_backend(name: str) -> Backend:
    """A hardware target by its class name (the native baseline is not one)."""
    if name not in hardware_classes():
        raise UsageError(f"unknown hardware class {name!r} (known: {', '.join(hardware_classes())})")
    return all_backends()[name]


def native_backend() -> Backend:
    return all_backends()[NATIVE]


def parse_hardware_list(text: str) -> list[str]:
    """``cpu,gpu`` -> ["cpu", "gpu"], refusing names no backend knows and empty lists."""
    names = _split(text)
    if not names:
        raise UsageError("no hardware class given (e.g. --hw cpu)")
    for name in names:
        get_backend(name)
    return names


def parse_precisions(text: str, hardware: list[str]) -> list[str]:
    """``fp32,int8`` -> the precisions to build; empty text means every one each backend has.

    Refuses unknown names, and a hardware class that could build none of those asked for.
    """
    names = _split(text)
    unknown = [name for name in names if name not in PRECISIONS]
    if unknown:
        raise UsageError(f"unknown precision {', '.join(unknown)} (known: {', '.join(PRECISIONS)})")
    for hw in hardware:
        backend = get_backend(hw)
        if names and not set(names) & set(backend.precisions):
            raise UsageError(
                f"{hw} builds {', '.join(backend.precisions)}; none of {', '.join(names)} asked for"
            )
    return [name for name in PRECISIONS if name in names]


def _split(text: str) -> list[str]:
    return list(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
