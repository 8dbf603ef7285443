"""Numerical verification: a variant against its source model, on the same inputs."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from farm.errors import ModelError
from workers.backends.base import Runner
from workers.sources import SourceModel, TensorSpec

SEED = 20261121
TINY = 1e-6  # floor of the relative error's denominator, so zeros in the reference do not divide


@dataclass(frozen=True)
class OutputCheck:
    name: str
    max_abs_error: float
    max_rel_error: float
    nan_count: int  # NaN/Inf the variant produced where the reference had finite values
    inf_count: int
    within_tolerance: bool


@dataclass(frozen=True)
class Verification:
    outputs: list[OutputCheck]
    atol: float
    rtol: float

    @property
    def passed(self) -> bool:
        return all(check.within_tolerance for check in self.outputs)

    @property
    def max_abs_error(self) -> float:
        return max((c.max_abs_error for c in self.outputs), default=0.0)

    @property
    def max_rel_error(self) -> float:
        return max((c.max_rel_error for c in self.outputs), default=0.0)

    def summary(self) -> str:
        return (
            f"max abs error {self.max_abs_error:.3g}, max rel error {self.max_rel_error:.3g} "
            f"(tolerance atol {self.atol:g}, rtol {self.rtol:g})"
        )

    def per_output(self) -> list[dict]:
        return [asdict(check) for check in self.outputs]


def sample_inputs(specs: list[TensorSpec], batch: int, seed: int = SEED) -> dict[str, np.ndarray]:
    """Deterministic random inputs; the first unknown dimension is the batch."""
    rng = np.random.default_rng(seed)
    return {spec.name: _random_array(rng, spec.dtype, concrete_shape(spec, batch)) for spec in specs}


def concrete_shape(spec: TensorSpec, batch: int) -> tuple[int, ...]:
    shape = [batch if index == 0 and dim is None else dim for index, dim in enumerate(spec.shape)]
    if None in shape:
        raise ModelError(
            f"input {spec.name} has an unknown dimension besides the batch {tuple(spec.shape)}; "
            f"give its shape with --inputs {spec.name}:1,..."
        )
    return tuple(int(dim) for dim in shape)  # type: ignore[arg-type]


def _random_array(rng: np.random.Generator, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    kind = np.dtype(dtype).kind
    if kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if kind in "iu":
        return rng.integers(0, 10, shape).astype(dtype)
    if kind == "b":
        return rng.random(shape) < 0.5
    raise ModelError(f"cannot make sample inputs of type {dtype}")


def verify(source: SourceModel, variant: Runner, batch: int, atol: float, rtol: float) -> Verification:
    feeds = sample_inputs(source.inputs, batch)
    expected = source.run(feeds)
    actual = variant(feeds)
    checks = [
        _compare(name, np.asarray(got), np.asarray(want), atol, rtol)
        for name, got, want in zip(source.output_names, actual, expected, strict=True)
    ]
    return Verification(checks, atol, rtol)


def _compare(name: str, actual: np.ndarray, expected: np.ndarray, atol: float, rtol: float) -> OutputCheck:
    if actual.shape != expected.shape:
        return OutputCheck(name, float("inf"), float("inf"), 0, 0, within_tolerance=False)
    actual = actual.astype(np.float64)
    expected = expected.astype(np.float64)
    reference_finite = np.isfinite(expected)
    nan_count = int(np.count_nonzero(np.isnan(actual) & reference_finite))
    inf_count = int(np.count_nonzero(np.isinf(actual) & reference_finite))
    both_finite = reference_finite & np.isfinite(actual)
    error = np.abs(actual - expected)[both_finite]
    relative = error / np.maximum(np.abs(expected[both_finite]), TINY)
    close = np.allclose(actual[both_finite], expected[both_finite], atol=atol, rtol=rtol)
    return OutputCheck(
        name=name,
        max_abs_error=float(error.max(initial=0.0)),
        max_rel_error=float(relative.max(initial=0.0)),
        nan_count=nan_count,
        inf_count=inf_count,
        within_tolerance=bool(close and nan_count == 0 and inf_count == 0),
    )
