"""The one small interface every backend implements, and what backends share."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from farm.core.hosts import target_problems
from farm.core.targets import Target
from workers.runtime import DEFAULT_RECIPE, BuiltVariant, Recipe, Runner

if TYPE_CHECKING:  # numpy and the toolchains stay out of the registry's import (a worker's parent)
    from farm.core.settings import FarmSettings
    from workers.calibration import Calibration
    from workers.sources import SourceModel

__all__ = [
    "DEFAULT_RECIPE",
    "Backend",
    "BuiltVariant",
    "Recipe",
    "Runner",
    "TargetBackend",
    "unsupported_precision",
]


def unsupported_precision(backend: str, precision: str) -> ValueError:
    """What a backend raises when asked for a precision it does not build: a programming error on
    the worker's side (plans ask each backend only for its own precisions, and the client refuses
    the others at submit), so never the user's UsageError. Recorded as that variant's failure."""
    return ValueError(f"{backend} does not build {precision}")


class Backend(Protocol):
    target: Target  # its capabilities, as data (farm/core/targets.py)

    @property
    def name(self) -> str: ...

    @property
    def hardware(self) -> str | None: ...

    @property
    def precisions(self) -> tuple[str, ...]: ...

    def host_problems(self) -> list[str]:
        """Why this host cannot serve this backend; empty when it can. Asked in a worker's
        prefork parent: no CUDA call (farm.core.hosts)."""
        ...

    def toolchain(self, settings: FarmSettings) -> str:
        """Versions of everything that shapes a variant (part of the variant cache key). Asked in
        a worker's prefork parent too (its start-up description, planning): no CUDA call."""
        ...

    def recipes(self, precision: str) -> tuple[Recipe, ...]:
        """The ways this backend builds ``precision``, its default first: what a variant that
        fails verification tries next, in this order."""
        ...

    def convert(
        self,
        source: SourceModel,
        precision: str,
        calibration: Calibration,
        workdir: Path,
        settings: FarmSettings,
        recipe: Recipe = DEFAULT_RECIPE,
    ) -> BuiltVariant:
        """Build one variant of ``source`` at ``precision`` by ``recipe`` inside ``workdir``, in a
        pool process (with ``load``, the only place a backend may touch CUDA)."""
        ...

    def load(self, variant: BuiltVariant, outputs: list[str]) -> Runner:
        """A runner for a variant this backend built, on this host's hardware, returning the
        outputs named ``outputs`` in that order."""
        ...


class TargetBackend:
    """What every backend shares: its capabilities read from its entry in farm/core/targets.py."""

    target: Target

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def hardware(self) -> str | None:
        return self.target.hardware

    @property
    def precisions(self) -> tuple[str, ...]:
        return self.target.precisions

    def host_problems(self) -> list[str]:
        return target_problems(self.target)

    def recipes(self, precision: str) -> tuple[Recipe, ...]:
        return (DEFAULT_RECIPE,)
