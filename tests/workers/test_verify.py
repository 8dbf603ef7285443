from __future__ import annotations

import numpy as np
import pytest

from farm.core.errors import ModelError
from workers.verify import DEFAULT_THRESHOLDS, Thresholds, gate_for, thresholds_for, top1_agreement, verify

RNG = np.random.default_rng(3)
SCORES = RNG.standard_normal((200, 10))
PROBABILITIES = np.exp(SCORES) / np.exp(SCORES).sum(axis=1, keepdims=True)
LABELS = np.argmax(SCORES, axis=1)  # the original is right on every sample
INT8 = DEFAULT_THRESHOLDS["int8"]
FP32 = DEFAULT_THRESHOLDS["fp32"]


def judged(precision: str, actual: np.ndarray, labels: np.ndarray | None = None, expected=PROBABILITIES):  # type: ignore[no-untyped-def]
    return verify(precision, ["y"], [expected], [actual], thresholds_for(precision, {}), labels)


def with_wrong_top1(count: int, start: int = 0) -> np.ndarray:
    """The original's probabilities, with the top class of ``count`` samples from ``start`` moved."""
    wrong = PROBABILITIES.copy()
    for row in range(start, start + count):
        top, runner_up = np.argsort(wrong[row])[-1], np.argsort(wrong[row])[-2]
        wrong[row, [top, runner_up]] = wrong[row, [runner_up, top]]
    return wrong


def test_identical_outputs_pass_every_rule_with_their_numbers() -> None:
    for precision, labels in (("fp32", None), ("int8", None), ("int8", LABELS)):
        result = judged(precision, PROBABILITIES.copy(), labels)
        assert result.passed and result.failures == [], result.summary()
        assert result.max_abs_error == 0.0 and result.mean_error == 0.0 and result.top1_agreement == 1.0
        assert result.samples == 200
    assert judged("int8", PROBABILITIES, LABELS).accuracy.variant == 1.0  # type: ignore[union-attr]


def test_the_rule_depends_on_the_precision_and_on_labels() -> None:
    assert gate_for("fp32", labelled=True) == "tolerance"
    assert [gate_for(p, labelled=False) for p in ("fp16", "dynamic", "int8")] == ["agreement"] * 3
    assert gate_for("int8", labelled=True) == "accuracy"


def test_one_borderline_sample_fails_fp32_but_does_not_decide_a_reduced_precision() -> None:
    borderline = PROBABILITIES.copy()
    top = int(np.argmax(borderline[0]))
    borderline[0, top] -= 0.12  # one element off by 0.12, as INT8 softmaxes were on a real model
    fp32 = judged("fp32", borderline)
    assert not fp32.passed and "max abs error 0.12 beyond atol 0.0001" in fp32.failures[0]
    int8 = judged("int8", borderline)
    assert int8.passed, int8.summary()
    assert int8.max_abs_error == pytest.approx(0.12) and int8.mean_error < INT8.max_mean_error


def test_a_variant_off_everywhere_fails_the_agreement_rule_with_its_numbers() -> None:
    off = PROBABILITIES * 1.5  # every score 50% high: the top class holds, the values do not
    result = judged("int8", off)
    assert result.top1_agreement == 1.0 and not result.passed
    [failure] = result.failures
    assert failure.startswith("mean error ") and "of scale > 5.00%" in failure
    assert "mean error" in result.summary() and "top-1 agreement 100.0%" in result.summary()


def test_top1_disagreement_fails_the_agreement_rule() -> None:
    assert top1_agreement(with_wrong_top1(40), PROBABILITIES) == pytest.approx(0.8)
    result = judged("int8", with_wrong_top1(40))
    assert any(f == "top-1 agreement 80.0% < 90%" for f in result.failures), result.failures
    assert judged("int8", with_wrong_top1(10)).passed  # 95% agreement: within int8's 90%


def test_with_labels_the_accuracy_drop_is_the_gate() -> None:
    labels = LABELS.copy()
    labels[:20] = (labels[:20] + 1) % 10  # the original is wrong on 20 of 200: 90% accurate
    # Moving the top class of 10 samples the original got right costs 5 points: fails.
    failed = judged("int8", with_wrong_top1(10, start=20), labels)
    assert failed.accuracy is not None and failed.accuracy.reference == pytest.approx(0.9)
    assert failed.accuracy.variant == pytest.approx(0.85) and failed.accuracy.drop_points == pytest.approx(5)
    assert failed.failures == ["accuracy 85.00% is 5.00 points below the original's 90.00% (at most 1)"]
    # Moving it on 2 samples costs 1 point: at most 1, passes.
    assert judged("int8", with_wrong_top1(2, start=20), labels).passed
    # Where the original was wrong anyway, a moved top class costs nothing: top-1 agreement would
    # fail this variant (85%), the accuracy it is judged on here does not drop.
    wrong_anyway = judged("int8", with_wrong_top1(20, start=0), labels)
    assert wrong_anyway.top1_agreement == pytest.approx(0.9) and wrong_anyway.passed


def test_with_labels_other_outputs_are_judged_by_agreement() -> None:
    value = RNG.standard_normal((200, 1))
    names, expected = ["scores", "value"], [PROBABILITIES, value]
    result = verify("int8", names, expected, [PROBABILITIES, value * 2], INT8, LABELS)
    assert result.accuracy is not None and result.accuracy.output == "scores"
    assert [f.split(" of scale")[0].split(" ")[:3] for f in result.failures] == [["value:", "mean", "error"]]


def test_accuracy_needs_an_output_of_class_scores() -> None:
    with pytest.raises(ModelError, match="no output of the model holds class scores"):
        verify("int8", ["y"], [np.ones((4, 1))], [np.ones((4, 1))], INT8, np.array([0, 1, 0, 1]))
    with pytest.raises(ModelError, match="for classes up to 12"):
        judged("int8", PROBABILITIES, np.full(200, 12))


def test_nan_and_inf_fail_every_rule() -> None:
    broken = PROBABILITIES.copy()
    broken[0, 0], broken[0, 1], broken[1, 0] = np.nan, np.inf, -np.inf
    for precision, labels in (("fp32", None), ("int8", None), ("int8", LABELS)):
        result = judged(precision, broken, labels)
        assert not result.passed and "1 NaN and 2 Inf where the original is finite" in result.failures
        check = result.outputs[0]
        assert (check.nan_count, check.inf_count) == (1, 2)


def test_a_wrong_shape_fails() -> None:
    result = judged("int8", PROBABILITIES[:1])
    assert not result.passed and result.failures == ["output shape differs from the original's"]


def test_each_output_is_named_when_there_are_several() -> None:
    value = RNG.standard_normal((200, 1))
    result = verify("fp32", ["scores", "value"], [PROBABILITIES, value], [PROBABILITIES, value + 1], FP32)
    assert [f.split(":")[0] for f in result.failures] == ["value"]
    assert result.outputs[1].top1_agreement is None  # one column: not class scores


def test_defaults_loosen_with_precision_and_can_be_overridden() -> None:
    fp32, fp16, int8 = (DEFAULT_THRESHOLDS[p] for p in ("fp32", "fp16", "int8"))
    assert fp32.atol < fp16.atol < int8.atol and fp32.min_top1 > int8.min_top1
    assert fp16.max_mean_error < int8.max_mean_error
    overridden = thresholds_for("int8", {"atol": 0.5, "rtol": None, "min_top1": 0.99, "max_accuracy_drop": 2})
    assert overridden == Thresholds(
        atol=0.5, rtol=int8.rtol, min_top1=0.99, max_mean_error=int8.max_mean_error, max_accuracy_drop=2
    )
