"""Verification: may a variant serve in place of the original? Judged on the same inputs, output by
output, by a rule that fits what the output is (its kind, farm/core/outputkinds.py) and what the
variant's precision gives up.

Gates, by precision:
- ``tolerance`` (fp32): only the order of floating-point operations differs, so every element must
  lie within ``atol + rtol * |expected|`` (numpy's allclose), and decisions (top class, side of a
  threshold) must agree on at least ``min_top1`` of the samples.
- ``agreement`` (fp16, dynamic, int8 without labels): precision is given up on purpose, so one
  borderline sample may move a lot (a max error says little). Each output is judged by its kind:
  - classes: top-1 agreement and the mean |error| relative to the output's scale;
  - binary: decisions agreeing at the threshold (0.5 for probabilities, 0 for logits), mean error;
  - sequence: top-1 agreement per step, mean error;
  - values: every channel's RMS error relative to that channel's own spread (standard deviation)
    in the original, so small-valued channels (a detector's scores beside its pixel boxes) are
    judged on their own scale, never hidden behind a larger neighbour's;
  - embedding: mean cosine similarity per sample.
- ``accuracy`` (fp16, dynamic, int8 with labels): the accuracy on the labelled samples may drop at
  most ``max_accuracy_drop`` points; other outputs are judged by the agreement gate.

Whatever the gate: NaN or Inf where the original is finite, a wrong shape, a channel that varies in
the original but is constant in the variant (collapsed), and a channel whose values lost their
order (more than ``MAX_UNORDERED_PAIRS`` of its clearly ordered pairs reversed or tied) fail. A
verdict reached on fewer than ``THIN_EVIDENCE`` samples says so. Max abs and max rel error are
measured for every variant, but decide only the fp32 rule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from farm.core.errors import ModelError
from farm.core.outputkinds import THIN_EVIDENCE, NamedKind, OutputKind, parse_kind

# Part of every variant's cache key: a change of rules or defaults re-judges (rebuilds) variants
# instead of serving a verdict the new policy would not give.
POLICY_VERSION = "3"
TINY = 1e-6  # floor of the relative error's denominator, so zeros in the reference do not divide
REDUCED_PRECISIONS = ("fp16", "dynamic", "int8")
# A channel in which the variant reverses or ties more than this share of the pairs of values the
# original orders clearly has lost its order (see _unordered_pairs): shuffled values lose half, a
# detector's scores rounded to two levels (0 or 1.04) about a fifth, sound INT8 variants 0 to 5%.
MAX_UNORDERED_PAIRS = 0.10
PAIRS = 4_000  # pairs of values drawn per channel to count reversals
CHANNEL_ROWS = 200_000  # at most this many values per channel go into its spread and error
LARGE_OUTPUT = 10_000_000  # elements: a larger output is measured in float32
SEED = 20261202
COLLAPSED_SPREAD = 0.01  # a variant channel with less than 1% of the original's spread is constant
# In class scores, a channel whose spread is under 5% of the output's scale is not judged on its
# own: an INT8 step of a softmax is 0.4% of it, so such a channel's spread is a few steps.
HOMOGENEOUS_VARIES = 0.05
LISTED_CHANNELS = 8  # failures name at most this many channels


@dataclass(frozen=True)
class Thresholds:
    atol: float
    rtol: float
    min_top1: float  # least share of samples (steps) whose decision agrees: classes, binary, sequence
    max_mean_error: float  # mean |error| / output scale: classes, binary, sequence
    max_accuracy_drop: float  # percentage points below the original, with labels
    max_channel_error: float  # RMS error / the channel's spread in the original: every kind but embeddings
    min_cosine: float  # mean cosine similarity per sample: embeddings
    max_expected_loss: float  # accuracy lost if the original's probabilities were true: deciding outputs
    max_near_flips: float  # share of decisions flipped or with half their margin gone: deciding outputs

    def overridden(self, overrides: dict[str, float | None]) -> Thresholds:
        return replace(self, **{name: value for name, value in overrides.items() if value is not None})


# Reduced precisions, without labels: expected loss 0.015 (about 1.5 points of accuracy) and near
# flips 0.10 were measured on trained digits CNNs against 141 variants each, real and deliberately
# degraded (README, "Verdicts"); top-1 agreement and mean error are looser floors.
DEFAULT_THRESHOLDS = {
    "fp32": Thresholds(
        atol=1e-4,
        rtol=1e-3,
        min_top1=0.99,
        max_mean_error=1e-4,
        max_accuracy_drop=1.0,
        max_channel_error=1e-3,
        min_cosine=0.9999,
        max_expected_loss=0.001,
        max_near_flips=0.02,
    ),
    "fp16": Thresholds(
        atol=1e-2,
        rtol=5e-2,
        min_top1=0.95,
        max_mean_error=0.01,
        max_accuracy_drop=1.0,
        max_channel_error=0.05,
        min_cosine=0.999,
        max_expected_loss=0.015,
        max_near_flips=0.10,
    ),
    "dynamic": Thresholds(
        atol=5e-2,
        rtol=1e-1,
        min_top1=0.9,
        max_mean_error=0.05,
        max_accuracy_drop=1.0,
        max_channel_error=0.25,
        min_cosine=0.98,
        max_expected_loss=0.015,
        max_near_flips=0.10,
    ),
    "int8": Thresholds(
        atol=5e-2,
        rtol=1e-1,
        min_top1=0.9,
        max_mean_error=0.05,
        max_accuracy_drop=1.0,
        max_channel_error=0.25,
        min_cosine=0.98,
        max_expected_loss=0.015,
        max_near_flips=0.10,
    ),
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
    kind: str  # an OutputKind value
    kind_named: bool  # named at submit (--output-kind), not inferred
    shape_matches: bool
    max_abs_error: float
    max_rel_error: float
    mean_error: float  # mean |error|, divided by the output's scale
    scale: float  # the original output's largest magnitude
    within_tolerance: bool  # allclose(atol, rtol): the fp32 rule
    nan_count: int  # NaN/Inf the variant produced where the reference had finite values
    inf_count: int
    top1_agreement: float | None = None  # decisions agreeing: classes, binary, sequence (per step)
    expected_loss: float | None = None  # accuracy lost if the original's probabilities were true
    near_flips: float | None = None  # share of decisions flipped or with half their margin gone
    channel_axis: int | None = None  # the axis whose entries are the channels (values: judged each)
    channels: int = 0
    worst_channel: int | None = None  # values: the channel with the largest relative error
    worst_channel_error: float | None = None  # its RMS error / its spread in the original
    collapsed_channels: list[int] = field(default_factory=list)  # varying in the original, constant here
    disordered_channels: list[int] = field(default_factory=list)  # order lost, see MAX_UNORDERED_PAIRS
    max_unordered_pairs: float | None = None  # the largest share of clearly ordered pairs lost
    moved_constant_channels: list[int] = field(default_factory=list)  # constant there, moved here
    mean_cosine: float | None = None  # embeddings


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
    output_failures: dict[str, list[str]]  # why each output fails; empty lists when it passes

    @property
    def failures(self) -> list[str]:
        """Every reason it fails, each output's prefixed with its name when there are several."""
        several = len(self.outputs) > 1
        return [
            f"{name}: {reason}" if several else reason
            for name, reasons in self.output_failures.items()
            for reason in reasons
        ]

    @property
    def failed_outputs(self) -> list[str]:
        return [name for name, reasons in self.output_failures.items() if reasons]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def thin(self) -> bool:
        return self.samples < THIN_EVIDENCE

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
        channel_errors = [
            c.worst_channel_error
            for c in self.outputs
            if c.kind != OutputKind.EMBEDDING.value and c.worst_channel_error is not None
        ]
        if channel_errors:
            measured += f", worst channel error {max(channel_errors):.2f} of its spread"
        if self.accuracy is not None:
            measured += f", accuracy {self.accuracy.variant:.2%} (original {self.accuracy.reference:.2%})"
        verdict = "; ".join(self.failures) if self.failures else f"passed the {self.gate} rule"
        evidence = f"{self.samples} samples" + (", thin evidence" if self.thin else "")
        return f"{verdict} ({measured}; {evidence})"

    def per_output(self) -> list[dict]:
        """Each output's kind, rule, numbers and failures: what the report shows per output."""
        return [
            _json_safe(
                {**asdict(check), "rule": self.rule_for(check), "failures": self.output_failures[check.name]}
            )
            for check in self.outputs
        ]

    def rule_for(self, check: OutputCheck) -> str:
        return rule_for(self.gate, check, self.accuracy)


def _json_safe(record: dict) -> dict:
    """NaN and Inf as null: JSON has no such numbers, and PostgreSQL's json columns refuse them."""
    return {
        key: None if isinstance(value, float) and not np.isfinite(value) else value
        for key, value in record.items()
    }


def verify(
    precision: str,
    names: list[str],
    expected: list[np.ndarray],
    actual: list[np.ndarray],
    thresholds: Thresholds,
    labels: np.ndarray | None = None,
    named_kinds: dict[str, str] | None = None,
) -> Verification:
    """Compare a variant's outputs with the original's on the same samples and judge them."""
    named_kinds = named_kinds or {}
    accuracy = None if labels is None else measure_accuracy(names, expected, actual, labels, named_kinds)
    checks = []
    for name, got, want in zip(names, actual, expected, strict=True):
        want = np.asarray(want)
        named = parse_kind(named_kinds[name], name) if name in named_kinds else None
        if named is None and accuracy is not None and accuracy.output == name:
            named = NamedKind(OutputKind.CLASSES)  # labels say what it is
        checks.append(measure_output(name, np.asarray(got), want, thresholds, named, name in named_kinds))
    gate = gate_for(precision, labels is not None)
    failures = judge(gate, checks, thresholds, accuracy)
    return Verification(checks, thresholds, gate, len(expected[0]) if expected else 0, accuracy, failures)


def check_named_kinds(names: list[str], expected: list[np.ndarray], named_kinds: dict[str, str]) -> None:
    """Refuse a kind named at submit that the output's shape cannot be: the user's error, said
    before any variant is built."""
    for name, output in zip(names, expected, strict=True):
        if name not in named_kinds:
            continue
        named, shape = parse_kind(named_kinds[name], name), output.shape
        problem = _shape_problem(named, shape)
        if problem:
            raise ModelError(f"--output-kind {name}={named_kinds[name]}: {problem} (its shape is {shape})")


def _shape_problem(named: NamedKind, shape: tuple[int, ...]) -> str:
    kind, rank = named.kind, len(shape)
    if kind in (OutputKind.CLASSES, OutputKind.SEQUENCE) and (rank < 2 or shape[-1] < 2):
        return "class scores need a last axis of two classes or more"
    if kind is OutputKind.BINARY and not (rank == 1 or (rank == 2 and shape[1] == 1)):
        return "a binary output is one value per sample, (batch,) or (batch, 1)"
    if kind is OutputKind.EMBEDDING and rank != 2:
        return "an embedding is one vector per sample, (batch, dims)"
    axis = named.channel_axis
    if axis is not None and not (-rank <= axis < rank and axis % rank != 0):
        return f"it has no channel axis {axis} besides the batch"
    return ""


def infer_kind(expected: np.ndarray) -> OutputKind:
    """What an output is, from the original's values on the judging samples."""
    finite = expected[np.isfinite(expected)]
    if expected.ndim == 1 or (expected.ndim == 2 and expected.shape[1] == 1):
        probabilities = finite.size > 0 and _are_probabilities(finite.reshape(-1, 1))
        return OutputKind.BINARY if probabilities else OutputKind.VALUES
    if expected.ndim >= 2 and expected.shape[-1] >= 2 and _rows_sum_to_one(expected):
        return OutputKind.CLASSES if expected.ndim == 2 else OutputKind.SEQUENCE
    if expected.ndim == 2 and expected.shape[1] >= 8 and _unit_rows(expected):
        return OutputKind.EMBEDDING
    return OutputKind.VALUES


def _rows_sum_to_one(expected: np.ndarray) -> bool:
    """Non-negative and summing to 1 along the last axis: probabilities from a softmax."""
    with np.errstate(invalid="ignore"):
        return _are_probabilities(expected.reshape(-1, expected.shape[-1]))


def _unit_rows(expected: np.ndarray) -> bool:
    """Rows of length 1: L2-normalised vectors, compared by direction."""
    return bool(np.allclose(np.linalg.norm(expected, axis=-1), 1.0, atol=1e-2))


def channel_axis_for(kind: OutputKind, shape: tuple[int, ...], named: NamedKind | None) -> int | None:
    """The axis whose entries are judged one by one. Values: the one named; else, up to three
    axes, the smallest non-batch one (a detector's (batch, anchors, 4 + classes) and
    (batch, 84, anchors) heads both put their boxes and scores there; ties go to the last); from
    four axes, axis 1 when the last two are a square image (NCHW feature maps), else the last
    (NHWC, and YOLO's raw (batch, 3, h, w, 85) heads). Every other kind: its last axis."""
    if len(shape) < 2:
        return None
    if named is not None and named.channel_axis is not None:  # checked by check_named_kinds
        return named.channel_axis % len(shape)
    if kind is not OutputKind.VALUES:
        return len(shape) - 1
    if len(shape) >= 4:  # feature maps: NCHW when the last two axes are a square image, else NHWC
        return 1 if shape[-1] == shape[-2] else len(shape) - 1
    sizes = list(shape[1:])
    return len(sizes) - sizes[::-1].index(min(sizes))  # the last of the smallest, as an axis of shape


def measure_output(
    name: str,
    actual: np.ndarray,
    expected: np.ndarray,
    thresholds: Thresholds,
    named: NamedKind | None = None,
    kind_named: bool = False,
) -> OutputCheck:
    kind = named.kind if named is not None else infer_kind(expected)
    if actual.shape != expected.shape:
        inf = float("inf")
        return OutputCheck(name, kind.value, kind_named, False, inf, inf, inf, 0.0, False, 0, 0)
    # Float64 for exact small numbers; a large output (a detector's 60 x 25,200 x 85) in float32,
    # half the memory: its statistics do not need the extra digits.
    precise = np.float64 if expected.size <= LARGE_OUTPUT else np.float32
    actual = actual.astype(precise)
    expected = expected.astype(precise)
    reference_finite = np.isfinite(expected)
    both_finite = reference_finite & np.isfinite(actual)
    error = np.abs(actual - expected)[both_finite]
    reference = np.abs(expected[both_finite])
    scale = float(reference.max(initial=0.0))
    axis = channel_axis_for(kind, expected.shape, named)
    homogeneous = kind is not OutputKind.VALUES
    channels = _channel_measures(
        np.where(both_finite, expected, 0.0),
        np.where(both_finite, actual, 0.0),
        axis,
        homogeneous,
        thresholds,
    )
    return OutputCheck(
        name=name,
        kind=kind.value,
        kind_named=kind_named,
        shape_matches=True,
        max_abs_error=float(error.max(initial=0.0)),
        max_rel_error=float((error / np.maximum(reference, TINY)).max(initial=0.0)),
        mean_error=float(error.mean()) / max(scale, TINY) if error.size else 0.0,
        scale=scale,
        within_tolerance=bool(
            np.allclose(
                actual[both_finite], expected[both_finite], atol=thresholds.atol, rtol=thresholds.rtol
            )
        ),
        nan_count=int(np.count_nonzero(np.isnan(actual) & reference_finite)),
        inf_count=int(np.count_nonzero(np.isinf(actual) & reference_finite)),
        channel_axis=axis,
        mean_cosine=_mean_cosine(actual, expected) if kind is OutputKind.EMBEDDING else None,
        **channels,
        **decision_measures(kind, actual, expected),
    )


def decision_measures(kind: OutputKind, actual: np.ndarray, expected: np.ndarray) -> dict:
    """How a variant's decisions compare, for outputs that decide (classes, sequences per step, a
    binary output's side of its threshold); nothing for values and embeddings.

    - ``top1_agreement``: share of samples (steps) whose decision is the same;
    - ``expected_loss``: the accuracy the variant would lose if the original's probabilities were
      the truth, the mean of p(original's choice) - p(variant's choice) under the original. Zero
      where decisions agree, so a variant that only rescales its scores never fails it;
    - ``near_flips``: share of samples that flipped or lost more than half their margin (the
      original's top probability over the runner-up): the sign of a degraded variant even in a
      sample where nothing flipped yet.
    On trained digits CNNs these two told variants losing 3+ points of accuracy from those losing
    at most 1 better than agreement or mean error did (README, "Verdicts"). Rows where either
    side is not finite are left out (NaN and Inf fail on their own)."""
    rows, actual_rows = _decision_rows(kind, expected), _decision_rows(kind, actual)
    if rows is None or actual_rows is None:
        return {}
    finite = np.isfinite(rows).all(axis=1) & np.isfinite(actual_rows).all(axis=1)
    rows, actual_rows = rows[finite], actual_rows[finite]
    if not len(rows):
        return {}
    # Both read as the original's are: a variant's rounded probabilities need not sum to exactly 1.
    probabilities = _are_probabilities(rows)
    want = _two_sided(rows) if probabilities else _softmax(rows)
    got = _two_sided(actual_rows) if probabilities else _softmax(actual_rows)
    index = np.arange(len(want))
    chosen, picked = want.argmax(axis=1), got.argmax(axis=1)
    margin_before = want[index, chosen] - _best_other(want, chosen)
    margin_after = got[index, chosen] - _best_other(got, chosen)
    near = (picked != chosen) | (margin_after < 0.5 * margin_before)
    return {
        "top1_agreement": float(np.mean(picked == chosen)),
        "expected_loss": float(np.mean(want[index, chosen] - want[index, picked])),
        "near_flips": float(np.mean(near)),
    }


def _decision_rows(kind: OutputKind, values: np.ndarray) -> np.ndarray | None:
    """(decisions, choices): a row of scores per sample, per step of a sequence, or a binary
    output as (1 - p, p), or as (0, x) for a logit x, whose softmax is (1 - sigmoid(x),
    sigmoid(x)). Whether a binary output holds probabilities is decided on the original's
    values (``_binary_rows``), never on a variant's, which may stray just outside 0..1."""
    if kind in (OutputKind.CLASSES, OutputKind.SEQUENCE) and values.ndim >= 2:
        return values.reshape(-1, values.shape[-1])
    if kind is OutputKind.BINARY:
        return values.reshape(len(values), -1)[:, :1]
    return None


def _are_probabilities(rows: np.ndarray) -> bool:
    """Rows of probabilities: non-negative and summing to 1 (a softmax), or one column in 0..1."""
    if rows.shape[1] == 1:
        return bool(rows.min(initial=0.0) >= 0 and rows.max(initial=0.0) <= 1)
    return bool(rows.min(initial=0.0) >= 0 and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3))


def _two_sided(rows: np.ndarray) -> np.ndarray:
    """A binary probability p as (1 - p, p); rows of several classes as they are."""
    return np.concatenate([1 - rows, rows], axis=1) if rows.shape[1] == 1 else rows


def _softmax(rows: np.ndarray) -> np.ndarray:
    """Logits as probabilities; a binary logit's one column x becomes (1 - sigmoid(x), sigmoid(x))."""
    if rows.shape[1] == 1:
        rows = np.concatenate([np.zeros_like(rows), rows], axis=1)
    shifted = np.exp(rows - rows.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _best_other(probabilities: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    others = probabilities.copy()
    others[np.arange(len(others)), chosen] = -np.inf
    return others.max(axis=1)


def _channel_measures(
    expected: np.ndarray, actual: np.ndarray, axis: int | None, homogeneous: bool, t: Thresholds
) -> dict:
    """Per channel: the RMS error relative to the channel's spread in the original, channels that
    collapsed (constant here, varying there), channels whose order the variant lost, and channels
    constant in the original (a fixed prior, padding) that the variant moved by more than the
    precision's atol + rtol x their value: their own spread is zero, so no share of it can judge them.

    A channel "varies" when its spread counts: in a homogeneous output (class scores, an
    embedding) against the output's scale (HOMOGENEOUS_VARIES), so a class no sample scores may
    round to zero; in values, against the channel's own magnitude, since a mixed tensor's
    small-valued channels (scores beside pixel boxes) matter as much as its large ones."""
    want, got = _by_channel(expected, axis), _by_channel(actual, axis)
    if len(want) > CHANNEL_ROWS:  # a detector's 25,200 anchors x 60 samples: an even subsample
        step = -(-len(want) // CHANNEL_ROWS)
        want, got = want[::step], got[::step]
    spread = want.std(axis=0)
    magnitude = np.abs(want).max(axis=0, initial=0.0)
    floor = HOMOGENEOUS_VARIES * magnitude.max(initial=0.0) if homogeneous else 1e-4 * magnitude
    varies = spread > np.maximum(floor, TINY)
    rms_error = np.sqrt(np.mean((got - want) ** 2, axis=0))
    relative = rms_error / np.maximum(spread, TINY)
    collapsed = varies & (got.std(axis=0) < COLLAPSED_SPREAD * spread)
    unordered = _unordered_pairs(want, got, spread)
    judged = varies & ~collapsed
    disordered = judged & (unordered > MAX_UNORDERED_PAIRS)
    # Values: a channel that never varies is judged by the tolerance below; in class scores it is
    # not judged at all (a class no sample scores may round to the nearest INT8 step, no harm).
    moved = ~varies & (rms_error > t.atol + t.rtol * np.abs(want.mean(axis=0)))
    if homogeneous:
        moved[:] = False
    candidates = np.flatnonzero(varies)
    worst = int(candidates[np.argmax(relative[candidates])]) if candidates.size else None
    return {
        "channels": int(want.shape[1]),
        "worst_channel": worst,
        "worst_channel_error": float(relative[worst]) if worst is not None else None,
        "collapsed_channels": [int(c) for c in np.flatnonzero(collapsed)],
        "disordered_channels": [int(c) for c in np.flatnonzero(disordered)],
        "max_unordered_pairs": float(unordered[judged].max(initial=0.0)),
        "moved_constant_channels": [int(c) for c in np.flatnonzero(moved)],
    }


def _by_channel(values: np.ndarray, axis: int | None) -> np.ndarray:
    """(values, channels): every other axis, the batch included, flattened into rows."""
    if axis is None:
        return values.reshape(-1, 1)
    moved = np.moveaxis(values, axis, -1)
    return moved.reshape(-1, moved.shape[-1])


def _unordered_pairs(want: np.ndarray, got: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Per channel, the share of pairs of values clearly ordered in the original (apart by a tenth
    of the channel's spread or more) that the variant reverses or ties: values that were told apart
    and no longer are. Pairs closer than that may round to one INT8 level and are not counted."""
    first, second = np.random.default_rng(SEED).integers(0, len(want), size=(2, PAIRS))
    apart = want[first] - want[second]
    moved = got[first] - got[second]
    clear = np.abs(apart) >= 0.1 * spread
    lost = clear & (apart * moved <= 0)
    return lost.sum(axis=0) / np.maximum(clear.sum(axis=0), 1)


def _mean_cosine(actual: np.ndarray, expected: np.ndarray) -> float:
    want, got = expected.reshape(len(expected), -1), actual.reshape(len(actual), -1)
    norms = np.maximum(np.linalg.norm(want, axis=1) * np.linalg.norm(got, axis=1), TINY)
    return float(np.mean(np.sum(want * got, axis=1) / norms))


def rule_for(gate: str, check: OutputCheck, accuracy: Accuracy | None) -> str:
    """Under the accuracy gate only the output the accuracy is measured on is judged by it; any
    other output by the agreement rule."""
    if gate == "accuracy" and (accuracy is None or check.name != accuracy.output):
        return "agreement"
    return gate


def judge(
    gate: str, checks: list[OutputCheck], thresholds: Thresholds, accuracy: Accuracy | None
) -> dict[str, list[str]]:
    """Why each output fails under ``gate`` (empty lists when the variant passes); an accuracy
    drop, when it fails, is the labelled output's."""
    failures = {
        check.name: _output_failures(rule_for(gate, check, accuracy), check, thresholds) for check in checks
    }
    # Rounded: 100 * (0.90 - 0.89) is 1.0000000000000009, and "at most 1 point" must admit it.
    if (
        accuracy is not None
        and gate == "accuracy"
        and round(accuracy.drop_points, 9) > thresholds.max_accuracy_drop
    ):
        failures[accuracy.output].append(
            f"accuracy {accuracy.variant:.2%} is {accuracy.drop_points:.2f} points below the original's "
            f"{accuracy.reference:.2%} (at most {thresholds.max_accuracy_drop:g})"
        )
    return failures


def _output_failures(rule: str, check: OutputCheck, t: Thresholds) -> list[str]:
    if not check.shape_matches:
        return ["output shape differs from the original's"]
    failures = []
    if check.nan_count or check.inf_count:
        failures.append(f"{check.nan_count} NaN and {check.inf_count} Inf where the original is finite")
    if check.collapsed_channels:
        failures.append(
            f"{_channels(check.collapsed_channels, check)} constant in the variant, varying in the original"
        )
    if check.moved_constant_channels:
        failures.append(
            f"{_channels(check.moved_constant_channels, check)} constant in the original, moved in the "
            f"variant by more than atol {t.atol:g} + rtol {t.rtol:g} x their value"
        )
    if check.disordered_channels:
        failures.append(
            f"{_channels(check.disordered_channels, check)} lost the original's order "
            f"({check.max_unordered_pairs:.0%} of clearly ordered pairs reversed or tied "
            f"> {MAX_UNORDERED_PAIRS:.0%})"
        )
    if rule == "tolerance" and not check.within_tolerance:
        failures.append(f"max abs error {check.max_abs_error:.3g} beyond atol {t.atol:g} + rtol {t.rtol:g}")
    if rule == "agreement":
        failures += _agreement_failures(check, t)
    decides = check.top1_agreement is not None and rule != "accuracy"
    if decides and check.top1_agreement is not None and check.top1_agreement < t.min_top1:
        what = "decision agreement" if check.kind == OutputKind.BINARY.value else "top-1 agreement"
        failures.append(f"{what} {check.top1_agreement:.1%} < {t.min_top1:.0%}")
    return failures


def _agreement_failures(check: OutputCheck, t: Thresholds) -> list[str]:
    """Every kind but embeddings: each channel's noise within its share of the channel's spread
    (for values, the rule itself; for deciding outputs, beside their decision rules: a variant
    that keeps its top classes but blurs a class's scores does not stay close to the original)."""
    kind = OutputKind(check.kind)
    if kind is OutputKind.EMBEDDING:
        if check.mean_cosine is not None and check.mean_cosine < t.min_cosine:
            return [f"mean cosine similarity {check.mean_cosine:.4f} < {t.min_cosine:g}"]
        return []
    failures = []
    if check.worst_channel_error is not None and check.worst_channel_error > t.max_channel_error:
        which = f"{_channels([check.worst_channel or 0], check)} " if check.channels > 1 else ""
        failures.append(
            f"{which}error {check.worst_channel_error:.2f} of its spread > {t.max_channel_error:g}"
        )
    if kind is OutputKind.VALUES:
        return failures
    if check.mean_error > t.max_mean_error:
        failures.append(f"mean error {check.mean_error:.2%} of scale > {t.max_mean_error:.2%}")
    if check.expected_loss is not None and check.expected_loss > t.max_expected_loss:
        failures.append(
            f"expected accuracy loss {check.expected_loss:.1%} > {t.max_expected_loss:.1%} "
            "(under the original's probabilities)"
        )
    if check.near_flips is not None and check.near_flips > t.max_near_flips:
        failures.append(f"{check.near_flips:.0%} of decisions flipped or near it > {t.max_near_flips:.0%}")
    return failures


def _channels(indices: list[int], check: OutputCheck) -> str:
    where = "" if check.channel_axis is None else f" (axis {check.channel_axis})"
    listed = ", ".join(str(i) for i in indices[:LISTED_CHANNELS])
    more = f" and {len(indices) - LISTED_CHANNELS} more" if len(indices) > LISTED_CHANNELS else ""
    noun = "channel" if len(indices) == 1 else "channels"
    return f"{noun} {listed}{more}{where}"


def measure_accuracy(
    names: list[str],
    expected: list[np.ndarray],
    actual: list[np.ndarray],
    labels: np.ndarray,
    named_kinds: dict[str, str] | None = None,
) -> Accuracy:
    """Accuracy of the variant and of the original on the first output holding class scores: named
    classes at submit, else inferred as classes (a softmax), else any (batch, classes) output with
    a column for every label (logits)."""
    highest = int(labels.max(initial=0))
    named_kinds = named_kinds or {}
    unnamed = [name for name in names if name not in named_kinds]
    inferred = [name for name in unnamed if infer_kind(expected[names.index(name)]) is OutputKind.CLASSES]
    candidates = [name for name in names if named_kinds.get(name) == OutputKind.CLASSES.value]
    candidates += inferred + [name for name in unnamed if name not in inferred]  # softmaxes first
    for name in candidates:
        index = names.index(name)
        want, got = expected[index], actual[index]
        if want.ndim == 2 and want.shape[1] > max(highest, 1):
            reference = _accuracy(want, labels)
            return Accuracy(name, _accuracy(got, labels) if got.shape == want.shape else 0.0, reference)
    raise ModelError(
        f"labels were given, but no output of the model holds class scores (batch, classes) for "
        f"classes up to {highest}: outputs {', '.join(names)}"
    )


def _accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(scores, axis=1) == labels))
