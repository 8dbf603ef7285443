"""Numerical verification: a variant's outputs against its source model's, on the same inputs."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

TINY = 1e-6  # floor of the relative error's denominator, so zeros in the reference do not divide


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float
    min_top1: float  # least share of samples whose top class must agree, for classifier outputs

    def overridden(self, atol: float | None, rtol: float | None, min_top1: float | None) -> Tolerance:
        return Tolerance(
            atol=self.atol if atol is None else atol,
            rtol=self.rtol if rtol is None else rtol,
            min_top1=self.min_top1 if min_top1 is None else min_top1,
        )


# Tight for FP32 (only reassociation differs), looser where precision is given up on purpose.
DEFAULT_TOLERANCES = {
    "fp32": Tolerance(atol=1e-4, rtol=1e-3, min_top1=0.99),
    "fp16": Tolerance(atol=1e-2, rtol=5e-2, min_top1=0.95),
    "dynamic": Tolerance(atol=5e-2, rtol=1e-1, min_top1=0.9),
    "int8": Tolerance(atol=5e-2, rtol=1e-1, min_top1=0.9),
}


def tolerance_for(precision: str, overrides: dict[str, float | None]) -> Tolerance:
    return DEFAULT_TOLERANCES[precision].overridden(
        overrides.get("atol"), overrides.get("rtol"), overrides.get("min_top1")
    )


@dataclass(frozen=True)
class OutputCheck:
    name: str
    max_abs_error: float
    max_rel_error: float
    nan_count: int  # NaN/Inf the variant produced where the reference had finite values
    inf_count: int
    top1_agreement: float | None  # None unless the output looks like class scores (batch, classes)
    within_tolerance: bool


@dataclass(frozen=True)
class Verification:
    outputs: list[OutputCheck]
    tolerance: Tolerance
    samples: int

    @property
    def passed(self) -> bool:
        return all(check.within_tolerance for check in self.outputs)

    @property
    def max_abs_error(self) -> float:
        return max((c.max_abs_error for c in self.outputs), default=0.0)

    @property
    def max_rel_error(self) -> float:
        return max((c.max_rel_error for c in self.outputs), default=0.0)

    @property
    def top1_agreement(self) -> float | None:
        agreements = [c.top1_agreement for c in self.outputs if c.top1_agreement is not None]
        return min(agreements) if agreements else None

    def summary(self) -> str:
        top1 = "" if self.top1_agreement is None else f", top-1 agreement {self.top1_agreement:.1%}"
        t = self.tolerance
        return (
            f"max abs error {self.max_abs_error:.3g}, max rel error {self.max_rel_error:.3g}{top1} "
            f"(tolerance atol {t.atol:g}, rtol {t.rtol:g}, min top-1 {t.min_top1:.0%})"
        )

    def per_output(self) -> list[dict]:
        return [asdict(check) for check in self.outputs]


def compare_outputs(
    names: list[str], expected: list[np.ndarray], actual: list[np.ndarray], tolerance: Tolerance
) -> Verification:
    checks = [
        _compare(name, np.asarray(got), np.asarray(want), tolerance)
        for name, got, want in zip(names, actual, expected, strict=True)
    ]
    return Verification(checks, tolerance, samples=len(expected[0]) if expected else 0)


def _compare(name: str, actual: np.ndarray, expected: np.ndarray, tolerance: Tolerance) -> OutputCheck:
    if actual.shape != expected.shape:
        return OutputCheck(name, float("inf"), float("inf"), 0, 0, None, within_tolerance=False)
    actual = actual.astype(np.float64)
    expected = expected.astype(np.float64)
    reference_finite = np.isfinite(expected)
    nan_count = int(np.count_nonzero(np.isnan(actual) & reference_finite))
    inf_count = int(np.count_nonzero(np.isinf(actual) & reference_finite))
    both_finite = reference_finite & np.isfinite(actual)
    error = np.abs(actual - expected)[both_finite]
    relative = error / np.maximum(np.abs(expected[both_finite]), TINY)
    close = np.allclose(actual[both_finite], expected[both_finite], atol=tolerance.atol, rtol=tolerance.rtol)
    top1 = top1_agreement(actual, expected)
    return OutputCheck(
        name=name,
        max_abs_error=float(error.max(initial=0.0)),
        max_rel_error=float(relative.max(initial=0.0)),
        nan_count=nan_count,
        inf_count=inf_count,
        top1_agreement=top1,
        within_tolerance=bool(
            close and nan_count == 0 and inf_count == 0 and (top1 is None or top1 >= tolerance.min_top1)
        ),
    )


def top1_agreement(actual: np.ndarray, expected: np.ndarray) -> float | None:
    """Share of samples whose highest-scoring class is the same; None for non-classifier outputs."""
    if expected.ndim != 2 or expected.shape[1] < 2:
        return None
    return float(np.mean(np.argmax(actual, axis=1) == np.argmax(expected, axis=1)))
