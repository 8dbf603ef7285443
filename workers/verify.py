"""Verification: may a variant serve in place of the original? Judged on the same inputs, by the
rule that fits what its precision gives up.

- ``tolerance`` (fp32): only the order of floating-point operations differs, so every output
  element must lie within ``atol + rtol * |expected|`` (numpy's allclose) and, for class-score
  outputs, the top class must agree on at least ``min_top1`` of the samples.
- ``agreement`` (fp16, dynamic, int8 without labels): precision is given up on purpose, so one
  borderline sample may move by a lot (a max error says little); judged as a user judges the
  variant: top-1 agreement with the original (class-score outputs) and the mean absolute error
  relative to the output's scale (its largest magnitude in the original), at most
  ``max_mean_error``. A mean, unlike a max or a 99th percentile of a few hundred values, is not
  decided by one sample, whatever the number of samples.
- ``accuracy`` (fp16, dynamic, int8 with labels): the accuracy on the labelled samples may drop at
  most ``max_accuracy_drop`` points below the original's accuracy on the same samples.

Every rule fails NaN or Inf where the original is finite, and a wrong output shape. Max abs and
max rel error are measured and recorded for every variant, but decide only the fp32 rule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from farm.core.errors import ModelError

# Part of every variant's cache key: a change of rules or defaults re-judges (rebuilds) variants
# instead of serving a verdict the new policy would not give.
POLICY_VERSION = "2"
TINY = 1e-6  # floor of the relative error's denominator, so zeros in the reference do not divide
REDUCED_PRECISIONS = ("fp16", "dynamic", "int8")


@dataclass(frozen=True)
class Thresholds:
    atol: float
    rtol: float
    min_top1: float  # least share of samples whose top class agrees, for class-score outputs
    max_mean_error: float  # mean |error| / output scale, for reduced precisions without labels
    max_accuracy_drop: float  # percentage points below the original, for reduced precisions with labels

    def overridden(self, overrides: dict[str, float | None]) -> Thresholds:
        return replace(self, **{name: value for name, value in overrides.items() if value is not None})


DEFAULT_THRESHOLDS = {
    "fp32": Thresholds(atol=1e-4, rtol=1e-3, min_top1=0.99, max_mean_error=1e-4, max_accuracy_drop=1.0),
    "fp16": Thresholds(atol=1e-2, rtol=5e-2, min_top1=0.95, max_mean_error=0.01, max_accuracy_drop=1.0),
    "dynamic": Thresholds(atol=5e-2, rtol=1e-1, min_top1=0.9, max_mean_error=0.05, max_accuracy_drop=1.0),
    "int8": Thresholds(atol=5e-2, rtol=1e-1, min_top1=0.9, max_mean_error=0.05, max_accuracy_drop=1.0),
}


def thresholds_for(precision: str, overrides: dict[str, float | None]) -> Thresholds:
    return DEFAULT_THRESHOLDS[precision].overridden(overrides)


def gate_for(precision: str, labelled: bool) -> str:
    if precision not in REDUCED_PRECISIONS:
        return "tolerance"
    return "accuracy" if labelled else "agreement"


@dataclass(frozen=True)
class OutputCheck:
    name: str
    shape_matches: bool
    max_abs_error: float
    max_rel_error: float
    mean_error: float  # mean |error|, divided by the output's scale
    scale: float  # the original output's largest magnitude
    within_tolerance: bool  # allclose(atol, rtol): the fp32 rule
    nan_count: int  # NaN/Inf the variant produced where the reference had finite values
    inf_count: int
    top1_agreement: float | None  # None unless the output looks like class scores (batch, classes)


@dataclass(frozen=True)
class Accuracy:
    output: str  # the class-score output it was measured on
    variant: float
    reference: float  # the original model's, on the same samples

    @property
    def drop_points(self) -> float:
        return 100 * (self.reference - self.variant)


@dataclass(frozen=True)
class Verification:
    outputs: list[OutputCheck]
    thresholds: Thresholds
    gate: str
    samples: int
    accuracy: Accuracy | None
    failures: list[str]  # why it fails; empty when it passes

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def max_abs_error(self) -> float:
        return max((c.max_abs_error for c in self.outputs), default=0.0)

    @property
    def max_rel_error(self) -> float:
        return max((c.max_rel_error for c in self.outputs), default=0.0)

    @property
    def mean_error(self) -> float:
        return max((c.mean_error for c in self.outputs), default=0.0)

    @property
    def top1_agreement(self) -> float | None:
        agreements = [c.top1_agreement for c in self.outputs if c.top1_agreement is not None]
        return min(agreements) if agreements else None

    def summary(self) -> str:
        measured = f"max abs error {self.max_abs_error:.3g}, mean error {self.mean_error:.2%} of scale"
        if self.top1_agreement is not None:
            measured += f", top-1 agreement {self.top1_agreement:.1%}"
        if self.accuracy is not None:
            measured += f", accuracy {self.accuracy.variant:.2%} (original {self.accuracy.reference:.2%})"
        verdict = "; ".join(self.failures) if self.failures else f"passed the {self.gate} rule"
        return f"{verdict} ({measured}; {self.samples} samples)"

    def per_output(self) -> list[dict]:
        return [asdict(check) for check in self.outputs]


def verify(
    precision: str,
    names: list[str],
    expected: list[np.ndarray],
    actual: list[np.ndarray],
    thresholds: Thresholds,
    labels: np.ndarray | None = None,
) -> Verification:
    """Compare a variant's outputs with the original's on the same samples and judge them."""
    checks = [
        measure_output(name, np.asarray(got), np.asarray(want), thresholds)
        for name, got, want in zip(names, actual, expected, strict=True)
    ]
    accuracy = None if labels is None else measure_accuracy(names, expected, actual, labels)
    gate = gate_for(precision, labels is not None)
    failures = judge(gate, checks, thresholds, accuracy)
    return Verification(checks, thresholds, gate, len(expected[0]) if expected else 0, accuracy, failures)


def measure_output(
    name: str, actual: np.ndarray, expected: np.ndarray, thresholds: Thresholds
) -> OutputCheck:
    if actual.shape != expected.shape:
        inf = float("inf")
        return OutputCheck(name, False, inf, inf, inf, 0.0, False, 0, 0, None)
    actual = actual.astype(np.float64)
    expected = expected.astype(np.float64)
    reference_finite = np.isfinite(expected)
    both_finite = reference_finite & np.isfinite(actual)
    error = np.abs(actual - expected)[both_finite]
    reference = np.abs(expected[both_finite])
    scale = float(reference.max(initial=0.0))
    close = np.allclose(
        actual[both_finite], expected[both_finite], atol=thresholds.atol, rtol=thresholds.rtol
    )
    return OutputCheck(
        name=name,
        shape_matches=True,
        max_abs_error=float(error.max(initial=0.0)),
        max_rel_error=float((error / np.maximum(reference, TINY)).max(initial=0.0)),
        mean_error=float(error.mean()) / max(scale, TINY) if error.size else 0.0,
        scale=scale,
        within_tolerance=bool(close),
        nan_count=int(np.count_nonzero(np.isnan(actual) & reference_finite)),
        inf_count=int(np.count_nonzero(np.isinf(actual) & reference_finite)),
        top1_agreement=top1_agreement(actual, expected),
    )


def judge(
    gate: str, checks: list[OutputCheck], thresholds: Thresholds, accuracy: Accuracy | None
) -> list[str]:
    """Why the variant fails under ``gate``; empty when it passes. Under the accuracy rule, the
    output the accuracy is measured on is judged by it; any other output by the agreement rule."""
    failures = []
    for check in checks:
        rule = "agreement" if gate == "accuracy" and accuracy and check.name != accuracy.output else gate
        failures += _output_failures(rule, check, thresholds, len(checks))
    # Rounded: 100 * (0.90 - 0.89) is 1.0000000000000009, and "at most 1 point" must admit it.
    if (
        accuracy is not None
        and gate == "accuracy"
        and round(accuracy.drop_points, 9) > thresholds.max_accuracy_drop
    ):
        failures.append(
            f"accuracy {accuracy.variant:.2%} is {accuracy.drop_points:.2f} points below the original's "
            f"{accuracy.reference:.2%} (at most {thresholds.max_accuracy_drop:g})"
        )
    return failures


def _output_failures(rule: str, check: OutputCheck, t: Thresholds, outputs: int) -> list[str]:
    label = f"{check.name}: " if outputs > 1 else ""
    if not check.shape_matches:
        return [f"{label}output shape differs from the original's"]
    failures = []
    if check.nan_count or check.inf_count:
        failures.append(
            f"{label}{check.nan_count} NaN and {check.inf_count} Inf where the original is finite"
        )
    if rule == "tolerance" and not check.within_tolerance:
        failures.append(
            f"{label}max abs error {check.max_abs_error:.3g} beyond atol {t.atol:g} + rtol {t.rtol:g}"
        )
    if rule == "agreement" and check.mean_error > t.max_mean_error:
        failures.append(f"{label}mean error {check.mean_error:.2%} of scale > {t.max_mean_error:.2%}")
    if rule != "accuracy" and check.top1_agreement is not None and check.top1_agreement < t.min_top1:
        failures.append(f"{label}top-1 agreement {check.top1_agreement:.1%} < {t.min_top1:.0%}")
    return failures


def measure_accuracy(
    names: list[str], expected: list[np.ndarray], actual: list[np.ndarray], labels: np.ndarray
) -> Accuracy:
    """Accuracy of the variant and of the original on the first output holding class scores."""
    highest = int(labels.max(initial=0))
    for name, want, got in zip(names, expected, actual, strict=True):
        if is_class_scores(want) and want.shape[1] > highest:
            reference = _accuracy(want, labels)
            return Accuracy(name, _accuracy(got, labels) if got.shape == want.shape else 0.0, reference)
    raise ModelError(
        f"labels were given, but no output of the model holds class scores (batch, classes) for "
        f"classes up to {highest}: outputs {', '.join(names)}"
    )


def _accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(scores, axis=1) == labels))


def is_class_scores(output: np.ndarray) -> bool:
    return output.ndim == 2 and output.shape[1] >= 2


def top1_agreement(actual: np.ndarray, expected: np.ndarray) -> float | None:
    """Share of samples whose highest-scoring class is the same; None for non-classifier outputs."""
    if not is_class_scores(expected):
        return None
    return float(np.mean(np.argmax(actual, axis=1) == np.argmax(expected, axis=1)))
