from __future__ import annotations

import numpy as np
import pytest

from workers.verify import DEFAULT_TOLERANCES, Tolerance, compare_outputs, tolerance_for, top1_agreement

STRICT = Tolerance(atol=1e-6, rtol=1e-6, min_top1=1.0)
RNG = np.random.default_rng(3)
SCORES = RNG.standard_normal((50, 10))


def test_identical_outputs_pass_with_full_top1_agreement() -> None:
    result = compare_outputs(["y"], [SCORES], [SCORES.copy()], STRICT)
    assert result.passed and result.max_abs_error == 0.0 and result.top1_agreement == 1.0
    assert result.samples == 50


def test_an_offset_beyond_tolerance_fails_with_its_numbers() -> None:
    result = compare_outputs(["y"], [SCORES], [SCORES + 0.01], Tolerance(1e-3, 0, 0.0))
    assert not result.passed
    assert result.max_abs_error == pytest.approx(0.01, rel=1e-3)
    assert "max abs error 0.01" in result.summary() and "top-1 agreement 100.0%" in result.summary()


def test_top1_disagreement_fails_even_within_absolute_tolerance() -> None:
    swapped = SCORES.copy()
    swapped[:10] = -swapped[:10]  # the top class of the first 10 samples changes
    assert top1_agreement(swapped, SCORES) == pytest.approx(0.8)
    loose = Tolerance(atol=100, rtol=0, min_top1=0.9)
    assert not compare_outputs(["y"], [SCORES], [swapped], loose).passed
    assert compare_outputs(["y"], [SCORES], [swapped], Tolerance(100, 0, 0.8)).passed


def test_top1_is_only_measured_for_class_score_outputs() -> None:
    assert top1_agreement(np.ones((4, 1)), np.ones((4, 1))) is None
    assert top1_agreement(np.ones((4, 3, 3)), np.ones((4, 3, 3))) is None


def test_nan_and_inf_in_the_variant_are_counted() -> None:
    broken = np.tanh(SCORES).copy()
    broken[0, 0], broken[0, 1], broken[1, 0] = np.nan, np.inf, -np.inf
    check = compare_outputs(["y"], [np.tanh(SCORES)], [broken], Tolerance(1, 1, 0)).outputs[0]
    assert (check.nan_count, check.inf_count, check.within_tolerance) == (1, 2, False)


def test_shape_mismatch_fails() -> None:
    assert not compare_outputs(["y"], [SCORES], [SCORES[:1]], Tolerance(1, 1, 0)).passed


def test_tolerances_loosen_with_precision_and_can_be_overridden() -> None:
    fp32, fp16, int8 = (DEFAULT_TOLERANCES[p] for p in ("fp32", "fp16", "int8"))
    assert fp32.atol < fp16.atol < int8.atol and fp32.min_top1 > int8.min_top1
    overridden = tolerance_for("int8", {"atol": 0.5, "rtol": None, "min_top1": 0.99})
    assert overridden == Tolerance(atol=0.5, rtol=int8.rtol, min_top1=0.99)
