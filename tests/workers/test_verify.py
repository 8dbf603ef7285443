from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from farm.core.errors import ModelError
from workers.verify import (
    DEFAULT_THRESHOLDS,
    OutputKind,
    channel_axis_for,
    check_named_kinds,
    decision_measures,
    gate_for,
    infer_kind,
    thresholds_for,
    verify,
)

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
    channels, failure = result.failures  # every class's scores off by half, and the mean with them
    assert channels.startswith("channel ") and "of its spread > 0.25" in channels
    assert failure.startswith("mean error ") and "of scale > 5.00%" in failure
    assert "mean error" in result.summary() and "top-1 agreement 100.0%" in result.summary()


def test_top1_disagreement_fails_the_agreement_rule() -> None:
    agreement = decision_measures(OutputKind.CLASSES, with_wrong_top1(40), PROBABILITIES)["top1_agreement"]
    assert agreement == pytest.approx(0.8)
    result = judged("int8", with_wrong_top1(40))
    assert any(f == "top-1 agreement 80.0% < 90%" for f in result.failures), result.failures


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
    assert [check.kind for check in result.outputs] == ["classes", "values"]
    assert result.failures == ["value: error 1.01 of its spread > 0.25"]
    assert result.failed_outputs == ["value"]


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
    assert result.outputs[1].top1_agreement is None  # values decide nothing


def test_defaults_loosen_with_precision_and_can_be_overridden() -> None:
    fp32, fp16, int8 = (DEFAULT_THRESHOLDS[p] for p in ("fp32", "fp16", "int8"))
    assert fp32.atol < fp16.atol < int8.atol and fp32.min_top1 > int8.min_top1
    assert fp16.max_mean_error < int8.max_mean_error
    assert fp16.max_channel_error < int8.max_channel_error and fp16.min_cosine > int8.min_cosine
    overridden = thresholds_for("int8", {"atol": 0.5, "rtol": None, "min_top1": 0.99, "max_accuracy_drop": 2})
    assert overridden == replace(int8, atol=0.5, min_top1=0.99, max_accuracy_drop=2)


# Outputs of the kinds real models have, with the original's values and a variant's.
DETECTOR_RNG = np.random.default_rng(11)


def detections(samples: int = 50, anchors: int = 64) -> np.ndarray:
    """A YOLO-style head: boxes in pixels (0-320) and sigmoid scores, concatenated on the last axis."""
    boxes = DETECTOR_RNG.uniform(0, 320, (samples, anchors, 4))
    scores = 1 / (1 + np.exp(-DETECTOR_RNG.normal(-3, 2, (samples, anchors, 4))))
    return np.concatenate([boxes, scores], axis=-1)


def test_a_detector_whose_scores_died_fails_though_its_mean_error_is_small() -> None:
    original = detections()
    dead = original.copy()
    dead[..., 4:] = 0.0  # every class score exactly 0, as a real INT8 detector's came out
    result = verify("int8", ["detections"], [original], [dead], INT8)
    check = result.outputs[0]
    assert check.kind == "values" and check.channel_axis == 2 and check.channels == 8
    assert check.mean_error < 0.01  # what a scale-relative rule saw, and passed
    assert not result.passed
    assert "channels 4, 5, 6, 7 (axis 2) constant in the variant, varying in the original" in result.failures
    assert check.worst_channel in (4, 5, 6, 7) and (check.worst_channel_error or 0) > 1


def test_scores_rounded_to_two_levels_lose_their_order() -> None:
    """An INT8 detector whose one output scale leaves its scores two levels, 0 or about 1: no
    channel is constant, and the noise is small against the scores' spread, but detections can
    no longer be ranked by their score."""
    original = detections()
    rounded = original.copy()
    rounded[..., 4:] = np.where(original[..., 4:] > 0.5, 1.04, 0.0)
    result = verify("int8", ["detections"], [original], [rounded], INT8)
    assert result.outputs[0].collapsed_channels == [] and result.outputs[0].disordered_channels == [
        4,
        5,
        6,
        7,
    ]
    assert "channels 4, 5, 6, 7 (axis 2) lost the original's order" in result.failures[0]


def test_a_detector_with_noise_small_against_each_channel_passes() -> None:
    original = detections()
    noise = np.concatenate(
        [
            DETECTOR_RNG.normal(0, 3, original[..., :4].shape),
            DETECTOR_RNG.normal(0, 0.005, original[..., 4:].shape),
        ],
        axis=-1,
    )
    result = verify("int8", ["detections"], [original], [original + noise], INT8)
    assert result.passed, result.summary()
    assert (result.outputs[0].worst_channel_error or 1) < 0.1


def test_score_channels_too_noisy_for_their_own_scale_fail_beside_wide_boxes() -> None:
    original = detections()
    noisy = original.copy()
    noisy[..., 4:] += DETECTOR_RNG.normal(0, 0.1, noisy[..., 4:].shape)  # half of the scores' spread
    result = verify("int8", ["detections"], [original], [noisy], INT8)
    assert not result.passed and any("of its spread > 0.25" in f for f in result.failures)


def test_a_box_regression_is_judged_by_its_channels_not_by_top1() -> None:
    """A face detector's 4 box offsets: before, judged as if the offsets were classes."""
    offsets = RNG.normal(0, 0.1, (60, 4))
    variant = offsets + RNG.normal(0, 0.01, offsets.shape)  # a tenth of the spread: sound
    result = verify("int8", ["box_offsets"], [offsets], [variant], INT8)
    assert result.outputs[0].kind == "values" and result.outputs[0].top1_agreement is None
    assert result.passed, result.summary()


def test_a_shuffled_channel_loses_its_order() -> None:
    offsets = RNG.normal(0, 1.0, (200, 4))
    shuffled = offsets.copy()
    shuffled[:, 2] = RNG.permutation(shuffled[:, 2])
    result = verify("fp16", ["box"], [offsets], [shuffled], thresholds_for("fp16", {}))
    assert [f for f in result.failures if "order" in f] == [
        f"channel 2 (axis 1) lost the original's order ({result.outputs[0].max_unordered_pairs:.0%} "
        "of clearly ordered pairs reversed or tied > 10%)"
    ]
    assert 0.4 < (result.outputs[0].max_unordered_pairs or 0) < 0.6


def test_softmax_rounded_to_int8_steps_keeps_rare_classes_and_passes() -> None:
    """A uint8 softmax rounds a class that never scores above 1/510 to exactly 0: not a collapse."""
    confident = np.exp(3 * SCORES) / np.exp(3 * SCORES).sum(axis=1, keepdims=True)
    rounded = np.round(confident * 255) / 255
    result = judged("int8", rounded, expected=confident)
    assert result.outputs[0].kind == "classes" and result.outputs[0].collapsed_channels == []
    assert result.passed, result.summary()


def test_kinds_are_inferred_from_shape_and_values() -> None:
    sequence = np.exp(RNG.normal(0, 2, (20, 16, 12)))
    embedding = RNG.normal(0, 1, (20, 32))
    assert infer_kind(PROBABILITIES) is OutputKind.CLASSES
    assert infer_kind(sequence / sequence.sum(axis=-1, keepdims=True)) is OutputKind.SEQUENCE
    assert infer_kind(embedding / np.linalg.norm(embedding, axis=1, keepdims=True)) is OutputKind.EMBEDDING
    assert infer_kind(RNG.uniform(0, 1, (20, 1))) is OutputKind.BINARY
    assert infer_kind(RNG.uniform(0, 1, 20)) is OutputKind.BINARY
    assert infer_kind(RNG.normal(0, 1, (20, 1))) is OutputKind.VALUES  # a regression
    assert infer_kind(SCORES) is OutputKind.VALUES  # logits: name them classes to judge by top-1
    assert infer_kind(detections()) is OutputKind.VALUES


def test_a_sequence_is_judged_per_step() -> None:
    steps = np.exp(RNG.normal(0, 2, (50, 16, 12)))
    steps /= steps.sum(axis=-1, keepdims=True)
    moved = steps.copy()
    moved[:5, :8] = moved[:5, :8, ::-1]  # 5 samples of 50, half their steps: 5% of the steps move
    result = verify("int8", ["chars"], [steps], [moved], INT8)
    check = result.outputs[0]
    assert check.kind == "sequence" and check.top1_agreement == pytest.approx(1 - 40 / 800, abs=0.01)
    assert result.failures[-1] == (
        f"expected accuracy loss {check.expected_loss:.1%} > 1.5% (under the original's probabilities)"
    )


def test_a_binary_decision_fails_when_it_flips_at_its_threshold() -> None:
    probability = RNG.uniform(0, 1, (100, 1))
    flipped = probability.copy()
    flipped[:5] = 1 - flipped[:5]  # 5 decisions of 100 change side (and their values)
    nudged = np.clip(probability + RNG.normal(0, 0.003, probability.shape), 0, 1)
    failed = verify("int8", ["is_positive"], [probability], [flipped], INT8)
    assert failed.outputs[0].kind == "binary"
    check = failed.outputs[0]
    assert check.top1_agreement == pytest.approx(0.95, abs=0.02) and (check.expected_loss or 0) > 0.015
    assert any(f.startswith("expected accuracy loss") for f in failed.failures), failed.failures
    assert verify("int8", ["is_positive"], [probability], [nudged], INT8).passed


def test_an_embedding_is_judged_by_cosine_similarity() -> None:
    vectors = RNG.normal(0, 1, (60, 64))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    close = vectors + RNG.normal(0, 0.01, vectors.shape)
    far = vectors + RNG.normal(0, 0.1, vectors.shape)
    assert verify("int8", ["emb"], [vectors], [close], INT8).passed
    failed = verify("int8", ["emb"], [vectors], [far], INT8)
    assert failed.outputs[0].kind == "embedding" and (failed.outputs[0].mean_cosine or 1) < 0.98
    assert any(f.startswith("mean cosine similarity") for f in failed.failures)


def test_a_named_kind_overrides_the_inferred_one() -> None:
    logits = SCORES
    moved = logits.copy()
    moved[:30] = moved[:30, ::-1]  # 30 of 200 top classes move: 85% agreement
    as_values = verify("int8", ["logits"], [logits], [moved], INT8)
    as_classes = verify("int8", ["logits"], [logits], [moved], INT8, named_kinds={"logits": "classes"})
    assert as_values.outputs[0].kind == "values" and not as_values.outputs[0].kind_named
    assert as_classes.outputs[0].kind == "classes" and as_classes.outputs[0].kind_named
    assert "top-1 agreement 85.0% < 90%" in as_classes.failures
    along_last = verify("int8", ["d"], [detections()], [detections()], INT8, named_kinds={"d": "values:1"})
    assert along_last.outputs[0].channel_axis == 1 and along_last.outputs[0].channels == 64


def test_a_verdict_on_few_samples_says_its_evidence_is_thin() -> None:
    few = judged("int8", PROBABILITIES[:16].copy(), expected=PROBABILITIES[:16])
    assert few.passed and few.thin and few.summary().endswith("16 samples, thin evidence)")
    assert not judged("int8", PROBABILITIES.copy()).thin


def test_per_output_records_kind_rule_numbers_and_failures() -> None:
    value = np.random.default_rng(21).standard_normal((200, 1))  # its own: RNG's state depends on test order
    result = verify(
        "int8", ["scores", "value"], [PROBABILITIES, value], [PROBABILITIES, value * 2], INT8, LABELS
    )
    scores, values = result.per_output()
    assert (scores["kind"], scores["rule"], scores["failures"]) == ("classes", "accuracy", [])
    assert (values["kind"], values["rule"]) == ("values", "agreement")
    assert values["failures"] == ["error 1.00 of its spread > 0.25"]


def test_rescaled_scores_pass_and_lost_margins_fail_without_labels() -> None:
    """What told INT8 variants losing 3+ points of accuracy from those losing at most 1 on a trained
    digits CNN: the accuracy lost under the original's probabilities, and decisions near a flip."""
    confident = np.exp(3 * SCORES) / np.exp(3 * SCORES).sum(axis=1, keepdims=True)
    tempered = confident**0.8 / (confident**0.8).sum(axis=1, keepdims=True)  # same decisions, softer
    assert judged("int8", tempered, expected=confident).passed
    squeezed = PROBABILITIES.copy()
    top = np.argmax(squeezed, axis=1)
    rows = np.arange(30)
    second = np.argsort(squeezed[rows], axis=1)[:, -2]
    middle = (squeezed[rows, top[rows]] + squeezed[rows, second]) / 2
    squeezed[rows, top[rows]], squeezed[rows, second] = middle + 1e-4, middle - 1e-4  # margins gone
    near = judged("int8", squeezed)
    assert near.outputs[0].top1_agreement == 1.0 and near.outputs[0].near_flips == pytest.approx(0.15)
    assert "15% of decisions flipped or near it > 10%" in near.failures


def test_a_named_kind_the_output_cannot_be_is_refused() -> None:
    outputs = [np.zeros((4, 10)), np.zeros(4), np.zeros((4, 3, 8))]
    names = ["scores", "flag", "grid"]
    check_named_kinds(names, outputs, {"scores": "classes", "flag": "binary", "grid": "values:-1"})
    for kinds, fragment in (
        ({"flag": "classes"}, "class scores need a last axis of two classes or more"),
        ({"scores": "binary"}, "a binary output is one value per sample"),
        ({"grid": "embedding"}, "an embedding is one vector per sample"),
        ({"grid": "values:3"}, "it has no channel axis 3 besides the batch"),
        ({"grid": "values:-3"}, "it has no channel axis -3 besides the batch"),
    ):
        with pytest.raises(ModelError, match=fragment):
            check_named_kinds(names, outputs, kinds)


def test_a_binary_variant_straying_just_outside_zero_to_one_is_read_as_probabilities() -> None:
    probability = np.random.default_rng(22).uniform(0, 1, (100, 1))
    strayed = probability.copy()
    top = int(np.argmax(probability))
    strayed[top] = 1.002  # one value past 1, same side: before, the variant was read as a logit at 0
    result = verify("int8", ["is_positive"], [probability], [strayed], INT8)
    assert result.passed and result.outputs[0].top1_agreement == 1.0, result.summary()


def test_a_constant_output_is_judged_by_tolerance_not_by_its_zero_spread() -> None:
    priors = np.tile(np.linspace(0.1, 0.9, 8), (50, 1))  # fixed anchor priors: the same every sample
    assert verify("fp16", ["priors"], [priors], [priors + 1e-4], thresholds_for("fp16", {})).passed
    moved = verify("int8", ["priors"], [priors], [priors + 0.2], INT8)
    assert "constant in the original, moved in the variant by more than atol 0.05" in moved.failures[0]


def test_feature_maps_are_judged_per_feature_channel() -> None:
    nchw, nhwc, raw_yolo = np.zeros((2, 64, 7, 7)), np.zeros((2, 7, 7, 64)), np.zeros((2, 3, 20, 20, 85))
    axes = [channel_axis_for(OutputKind.VALUES, a.shape, None) for a in (nchw, nhwc, raw_yolo)]
    assert axes == [1, 3, 4]
