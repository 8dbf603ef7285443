"""The one small interface every hardware backend implements."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from workers.sources import SourceModel

# Runs a variant: named input arrays in, output arrays out (in the source model's output order).
Runner = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


@dataclass(frozen=True)
class BuiltVariant:
    path: Path
    format: str
    precision: str
    runtime: str  # what runs it, with version: "onnxruntime 1.31.1"
    notes: list[str] = field(default_factory=list)


class Backend(Protocol):
    hardware: str  # the hardware class, which is also its queue's name
    summary: str
    requires: tuple[str, ...]  # modules a worker of this class must be able to import
    extra: str  # the pip extra that installs them

    def host_problems(self) -> list[str]:
        """Why this host cannot serve this hardware class; empty when it can."""
        ...

    def convert(self, source: SourceModel, workdir: Path) -> list[BuiltVariant]:
        """Build this hardware's variants of ``source`` inside ``workdir``."""
        ...

    def load(self, variant: BuiltVariant) -> Runner:
        """A runner for a variant this backend built, on this host's hardware."""
        ...


def missing_modules(modules: tuple[str, ...]) -> list[str]:
    return [name for name in modules if importlib.util.find_spec(name) is None]


def toolchain_problem(backend: Backend) -> list[str]:
    missing = missing_modules(backend.requires)
    if not missing:
        return []
    return [f"{', '.join(missing)} not installed: pip install 'farm[{backend.extra}]'"]
