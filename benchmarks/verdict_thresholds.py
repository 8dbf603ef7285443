"""Unlabelled verdicts against true accuracy loss: how often the shipped rule errs, either way.

How often the farm's shipped reduced-precision rule passes a variant that lost accuracy, and fails
one that did not:

    .venv/bin/python benchmarks/verdict_thresholds.py [--out results.json] [--quick]

Without labels the farm judges an INT8 (fp16, dynamic) variant by comparing its outputs with the
original's on a few samples (workers/verify.py, the "agreement" gate). This benchmark measures how
well that verdict tracks what matters, the accuracy lost, on the digits CNN of ``farm.samples``
(trained here on scikit-learn's bundled images; 12 epochs, and 3 epochs for a less confident
second model):

- variants: the farm's real ones, built and run by the real backends (cpu INT8 QDQ u8 and s8, fpga
  XINT8 MinMSE and NonOverflow, arm TFLite INT8, fp16 and dynamic) on the calibration the farm builds
  for ``--calib digits_calib.npz``, and deliberately degraded ones: the real backends on synthetic
  or mis-scaled calibration, Gaussian weight noise at several levels and seeds, coarser weights,
  a bias towards one class on the logits, and rescaled logits (temperature: no accuracy lost);
- truth: each variant's accuracy drop, in points, on all 540 labelled held-out images. A variant
  losing 3 points or more must fail; one losing at most 1 point must pass (between: either);
- verdicts: ``workers.verify.verify("int8", ...)`` itself, without labels, on random subsets of
  50 and of 100 of the 540 (the same subsets for every variant of a model), under
  - "shipped": ``thresholds_for("int8", {})``: top-1 agreement, mean error, expected accuracy loss,
    near flips, and every class channel's RMS error against its spread in the original;
  - "shipped, no channel rule": the same without the per-channel error (its share of the verdict);
  - "old": only top-1 agreement >= 0.9 and mean error <= 5 % of scale decide, the rule before
    expected loss, near flips and the channel error (their thresholds overridden out of reach).
  The collapse and order checks apply under every rule (they have no threshold to override).
  Every variant is judged by the int8 rule, fp16 and dynamic included (dynamic's defaults are
  int8's; fp16's are stricter).

It prints, per model, each variant's true drop, the decision measures on all 540 (top-1
agreement, expected loss and near flips from ``decision_measures``, the worst channel error) and
the share of subsets each rule passes it in; then the summary: false-pass rate over the variants
losing >= 3 points and false-fail rate over those losing <= 1 point (mean and worst variant; real
farm variants and rescaled scores apart), pooled over both models and per model.

Seeded and deterministic. The full run (206 variants, 500 subsets of each size) takes about 5
minutes on two CPU cores; ``--quick`` (60 variants, 100 subsets) under a minute.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Before TensorFlow loads: deterministic kernels, so both models train to the same weights each run.
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TQDM_DISABLE", "1")  # Quark's calibration progress bars

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: farm, workers

from farm.core.calibfile import SampleFile
from farm.core.modelfile import ModelFormat
from farm.core.settings import FarmSettings
from farm.samples import write_digits_classifier
from workers.backends import arm, cpu, fpga
from workers.backends.base import Backend
from workers.calibration import Calibration, make_calibration, run_batched, synthetic_calibration
from workers.runtime import Runner, onnxruntime_runner
from workers.sources import SourceModel, load_source
from workers.verify import Thresholds, Verification, judge, thresholds_for, verify

SEED = 20261202
MODELS = (("digits", 12), ("digits_e3", 3))  # (name, training epochs)
SIZES = (50, 100)  # unlabelled samples a verdict is reached on
MUST_FAIL_POINTS = 3.0  # a variant losing this much accuracy or more must fail
MUST_PASS_POINTS = 1.0  # and one losing at most this much must pass
BATCH = 64

SHIPPED = "shipped"
NO_CHANNEL = "shipped, no channel rule"
OLD = "old (top-1, mean error)"
# Out of reach: expected loss and near flips are shares (at most 1), so "> 1.0" never fails.
RULES: dict[str, Thresholds] = {
    SHIPPED: thresholds_for("int8", {}),
    NO_CHANNEL: thresholds_for("int8", {"max_channel_error": 1e9}),
    OLD: thresholds_for("int8", {"max_expected_loss": 1.0, "max_near_flips": 1.0, "max_channel_error": 1e9}),
}

REAL = "real"  # built by the farm's backends on the calibration the farm builds from --calib
SYNTHETIC = "synthetic calibration"
MISCALIBRATED = "mis-scaled calibration"
NOISE = "weight noise"
COARSE = "coarse weights"
BIASED = "biased logits"
RESCALED = "rescaled scores"


@dataclass(frozen=True)
class Plan:
    """Which variants to build and how many subsets to draw."""

    subsets: int
    calib_sizes: tuple[int, ...]  # 32: the farm's default (calib_samples); 200: more
    noise: tuple[tuple[float, int], ...]  # (sigma as a share of each tensor's rms, seeds)
    weight_bits: tuple[int, ...]
    biases: tuple[tuple[int, float], ...]  # (class, added to its logit)
    temperatures: tuple[float, ...]  # logits x T: the top class never changes
    input_scales: tuple[float, ...]  # calibration inputs x s: s < 1 clips the activations


FULL = Plan(
    subsets=500,
    calib_sizes=(32, 200),
    noise=tuple((level, 3) for level in (0.02, 0.06, 0.10, 0.16, 0.20))
    + tuple((level, 5) for level in (0.22, 0.25, 0.28, 0.31, 0.34, 0.37, 0.40, 0.45)),
    weight_bits=(2, 3, 4, 5, 6),
    biases=tuple((c, b) for c in (1, 8, 9) for b in (1.0, 1.5, 2.0, 2.5, 3.0, 4.0)),
    temperatures=(0.6, 0.8, 1.25, 1.6),
    input_scales=(0.3, 0.4, 0.5, 0.6, 0.7, 4.0),
)
QUICK = Plan(
    subsets=100,
    calib_sizes=(32,),
    noise=tuple((level, 2) for level in (0.06, 0.16, 0.25, 0.31, 0.40)),
    weight_bits=(2, 4, 6),
    biases=((9, 1.5), (9, 2.5), (9, 4.0)),
    temperatures=(0.6, 1.6),
    input_scales=(0.5, 4.0),
)


@dataclass(frozen=True)
class Digits:
    """One trained model with what every variant is built from and judged against."""

    source: SourceModel
    images: np.ndarray  # the 540 held-out images
    labels: np.ndarray
    reference: np.ndarray  # the original's softmax on them (TensorFlow, the farm's reference)
    calib_images: np.ndarray
    calib_labels: np.ndarray
    workdir: Path
    settings: FarmSettings = field(default_factory=FarmSettings)

    def run(self, runner: Runner) -> np.ndarray:
        return run_held_out(self.source, self.images, runner)

    def accuracy(self, scores: np.ndarray) -> float:
        return float(np.mean(scores.argmax(axis=1) == self.labels))


@dataclass(frozen=True)
class Variant:
    name: str
    family: str
    scores: np.ndarray  # its softmax on the 540 held-out images


@dataclass
class Row:
    """A variant's truth, its measures on all 540 and how often each rule passes it."""

    model: str
    name: str
    family: str
    accuracy: float
    drop_points: float
    full: dict[str, Any]
    pass_rates: dict[str, dict[int, float]]  # rule -> subset size -> share of subsets passed

    @property
    def must_fail(self) -> bool:
        return round(self.drop_points, 9) >= MUST_FAIL_POINTS

    @property
    def must_pass(self) -> bool:
        return round(self.drop_points, 9) <= MUST_PASS_POINTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="Also write the results as JSON.")
    parser.add_argument("--quick", action="store_true", help="Fewer variants, 100 subsets (under a minute).")
    args = parser.parse_args()
    _quiet()
    plan = QUICK if args.quick else FULL
    started = time.perf_counter()
    rows: list[Row] = []
    references: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="farm-verdicts-") as scratch:
        for name, epochs in MODELS:
            digits = train(Path(scratch) / name, epochs)
            references[name] = digits.accuracy(digits.reference)
            rows += study(name, digits, plan)
    print_variants(rows, references)
    summary = print_summary(rows)
    elapsed = time.perf_counter() - started
    print(f"\n{len(rows)} variants, {plan.subsets} subsets of each size, {elapsed:.0f} s", file=sys.stderr)
    if args.out:
        args.out.write_text(json.dumps(_results(plan, references, rows, summary, elapsed), indent=2))


def _quiet() -> None:
    # The quantizers log every calibration step and draw progress bars; the tables are the output.
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)


def train(folder: Path, epochs: int) -> Digits:
    paths = write_digits_classifier(folder, epochs=epochs)
    scratch = folder / "scratch"
    scratch.mkdir()
    source = load_source(paths["model"], ModelFormat.KERAS, [], [], scratch)
    held_out, calib = np.load(paths["eval"]), np.load(paths["calib"])
    (folder / "variants").mkdir()
    return Digits(
        source=source,
        images=held_out["digit"],
        labels=held_out["labels"],
        reference=run_held_out(source, held_out["digit"], source.run),
        calib_images=calib["digit"],
        calib_labels=calib["labels"],
        workdir=folder / "variants",
    )


def run_held_out(source: SourceModel, images: np.ndarray, runner: Runner) -> np.ndarray:
    """A model's class scores on the held-out images, run as the farm runs a variant's checks."""
    feeds = {source.inputs[0].name: images}
    return run_batched(runner, feeds, source.inputs, BATCH)[0].astype(np.float32)


def study(model: str, digits: Digits, plan: Plan) -> list[Row]:
    subsets = draw_subsets(len(digits.labels), plan.subsets)
    rows = []
    for variant in build_variants(digits, plan):
        rows.append(judge_variant(model, digits, variant, subsets))
        row = rows[-1]
        rates = " ".join(f"n={n} {row.pass_rates[SHIPPED][n]:.0%}" for n in SIZES)
        print(f"{model} {variant.name}: drop {row.drop_points:+.2f}, shipped passes {rates}", file=sys.stderr)
    check_rejudging(digits, subsets)
    return rows


def draw_subsets(count: int, subsets: int) -> dict[int, np.ndarray]:
    """Without replacement within a subset; the same subsets for every variant of a model, so
    variants differ by what they are, not by the luck of their draws."""
    rng = np.random.default_rng(SEED)
    return {n: np.stack([rng.choice(count, n, replace=False) for _ in range(subsets)]) for n in SIZES}


# --- variants ----------------------------------------------------------------------------------


def build_variants(digits: Digits, plan: Plan) -> Iterator[Variant]:
    yield from real_variants(digits, plan)
    yield from calibration_variants(digits, plan)
    onnx_path = digits.source.onnx()
    yield from noise_variants(digits, onnx_path, plan)
    yield from coarse_variants(digits, onnx_path, plan)
    yield from logit_variants(digits, onnx_path, plan)


def real_variants(digits: Digits, plan: Plan) -> Iterator[Variant]:
    """What the farm builds for ``--calib digits_calib.npz`` (every recipe's default)."""
    for size in plan.calib_sizes:
        calibration = farm_calibration(digits, size)
        for activations in ("u8", "s8"):
            yield built(digits, f"cpu_int8_{activations}_c{size}", REAL, cpu.BACKEND, "int8", calibration,
                        cpu_int8_activations=activations)  # fmt: skip
        for method in ("minmse", "nonoverflow"):
            yield built(digits, f"fpga_xint8_{method}_c{size}", REAL, fpga.BACKEND, "int8", calibration,
                        fpga_calibration=method)  # fmt: skip
        yield built(digits, f"arm_int8_c{size}", REAL, arm.BACKEND, "int8", calibration)
    calibration = farm_calibration(digits, plan.calib_sizes[0])  # not calibrated: any will do
    for precision in ("fp16", "dynamic"):
        yield built(digits, f"arm_{precision}", REAL, arm.BACKEND, precision, calibration)


def calibration_variants(digits: Digits, plan: Plan) -> Iterator[Variant]:
    """Real backends fed a calibration that does not fit the inputs: the farm's synthetic one (no
    --calib: standard normal noise) and the real images scaled (s < 1 clips activations)."""
    settings = digits.settings
    synthetic = synthetic_calibration(digits.source.inputs, settings.calib_samples, settings.verify_samples)
    for backend in (cpu.BACKEND, fpga.BACKEND, arm.BACKEND):
        yield built(digits, f"{backend.name}_int8_synthetic", SYNTHETIC, backend, "int8", synthetic)
    images = digits.calib_images[: settings.calib_samples]
    for scale in plan.input_scales:
        scaled = Calibration({digits.source.inputs[0].name: images * scale}, {}, False, "eval")
        yield built(digits, f"cpu_int8_calib_x{scale:g}", MISCALIBRATED, cpu.BACKEND, "int8", scaled)


def farm_calibration(digits: Digits, size: int) -> Calibration:
    """As the farm makes it for ``--calib digits_calib.npz --eval digits_eval.npz``."""
    calib = SampleFile({"digit": digits.calib_images}, digits.calib_labels)
    held_out = SampleFile({"digit": digits.images}, digits.labels)
    return make_calibration(digits.source.inputs, calib, held_out, size, digits.settings.verify_samples)


def built(
    digits: Digits,
    name: str,
    family: str,
    backend: Backend,
    precision: str,
    calibration: Calibration,
    **settings: str,
) -> Variant:
    workdir = digits.workdir / name
    workdir.mkdir()
    variant = backend.convert(
        digits.source, precision, calibration, workdir, digits.settings.model_copy(update=settings)
    )
    return Variant(name, family, digits.run(backend.load(variant, digits.source.output_names)))


def noise_variants(digits: Digits, onnx_path: Path, plan: Plan) -> Iterator[Variant]:
    """Gaussian noise on every weight and bias, sigma = level x the tensor's rms: losses from none to
    tens of points, and at one level, seeds that lose very different amounts."""
    for level, seeds in plan.noise:
        for seed in range(seeds):
            model = with_weights(onnx_path, weight_noise(level, [SEED, seed, round(level * 1000)]))
            yield edited(digits, f"noise_{level:.2f}_s{seed}", NOISE, model)


def weight_noise(level: float, seed: list[int]) -> Callable[[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)

    def noisy(weights: np.ndarray) -> np.ndarray:
        return weights + rng.normal(0, level * np.sqrt(np.mean(weights**2)), weights.shape)

    return noisy


def coarse_variants(digits: Digits, onnx_path: Path, plan: Plan) -> Iterator[Variant]:
    """k-bit symmetric per-tensor rounding of every weight (biases kept): coarser than INT8's 8 bits
    per channel, as a bad quantizer would be."""
    for bits in plan.weight_bits:

        def rounded(weights: np.ndarray, bits: int = bits) -> np.ndarray | None:
            if weights.ndim < 2:
                return None
            step = np.abs(weights).max() / (2 ** (bits - 1) - 1)
            return np.round(weights / step) * step

        yield edited(digits, f"wquant_{bits}bit", COARSE, with_weights(onnx_path, rounded))


def logit_variants(digits: Digits, onnx_path: Path, plan: Plan) -> Iterator[Variant]:
    """Edits of the logits: +b on one class's (systematic flips towards it), and logits x T
    (probabilities rescaled, decisions untouched: must pass, 0 points lost)."""
    classes = digits.reference.shape[1]
    for cls, added in plan.biases:
        shift = added * (np.arange(classes) == cls)
        yield edited(digits, f"bias_c{cls}_{added:.1f}", BIASED, with_logits(onnx_path, 1.0, shift))
    for temperature in plan.temperatures:
        unshifted = np.zeros(classes)
        yield edited(
            digits, f"temp_{temperature:g}", RESCALED, with_logits(onnx_path, temperature, unshifted)
        )


def with_weights(onnx_path: Path, edit: Callable[[np.ndarray], np.ndarray | None]) -> Any:
    """The ONNX export with ``edit`` applied to every float initializer: in this CNN its weights and
    biases (shapes are integers), found by type, not by name, which changes with tf2onnx versions.
    ``edit`` returns None to keep a tensor as it is."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    for tensor in model.graph.initializer:
        if tensor.data_type != onnx.TensorProto.FLOAT:
            continue
        values = edit(numpy_helper.to_array(tensor).astype(np.float64))
        if values is not None:
            tensor.CopyFrom(numpy_helper.from_array(values.astype(np.float32), tensor.name))
    return model


def with_logits(onnx_path: Path, scale: float, shift: np.ndarray) -> Any:
    """The ONNX export with the final Softmax fed ``logits x scale + shift``: a Mul and an Add
    inserted before it, whatever layer computes the logits (Gemm, or MatMul and Add)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(onnx_path))
    nodes = model.graph.node
    at, softmax = next((i, node) for i, node in enumerate(nodes) if node.op_type == "Softmax")
    constants = {"bench_scale": np.array(scale), "bench_shift": shift}
    model.graph.initializer.extend(
        numpy_helper.from_array(value.astype(np.float32), name) for name, value in constants.items()
    )
    nodes.insert(at, helper.make_node("Add", ["bench_scaled", "bench_shift"], ["bench_logits"]))
    nodes.insert(at, helper.make_node("Mul", [softmax.input[0], "bench_scale"], ["bench_scaled"]))
    softmax.input[0] = "bench_logits"
    onnx.checker.check_model(model)
    return model


def edited(digits: Digits, name: str, family: str, model: Any) -> Variant:
    """An edited ONNX model, run on ONNX Runtime's CPU provider."""
    import onnx

    path = digits.workdir / f"{name}.onnx"
    onnx.save(model, str(path))
    return Variant(name, family, digits.run(onnxruntime_runner(path, digits.source.output_names)))


# --- verdicts ----------------------------------------------------------------------------------


def judge_variant(model: str, digits: Digits, variant: Variant, subsets: dict[int, np.ndarray]) -> Row:
    accuracy = digits.accuracy(variant.scores)
    return Row(
        model=model,
        name=variant.name,
        family=variant.family,
        accuracy=accuracy,
        drop_points=100 * (digits.accuracy(digits.reference) - accuracy),
        full=full_measures(digits, variant),
        pass_rates=pass_rates(digits, variant, subsets),
    )


def shipped_verdict(digits: Digits, variant: Variant, samples: np.ndarray | slice) -> Verification:
    """The farm's own verdict on these samples, without labels: the agreement gate."""
    names = digits.source.output_names
    return verify("int8", names, [digits.reference[samples]], [variant.scores[samples]], RULES[SHIPPED])


def full_measures(digits: Digits, variant: Variant) -> dict[str, Any]:
    """On all 540: the decision measures (``decision_measures``, carried by the output's check),
    the worst channel error, and the shipped rule's verdict with its reasons."""
    verdict = shipped_verdict(digits, variant, slice(None))
    check = verdict.outputs[0]
    return {
        "top1_agreement": check.top1_agreement,
        "expected_loss": check.expected_loss,
        "near_flips": check.near_flips,
        "worst_channel_error": check.worst_channel_error,
        "mean_error": check.mean_error,
        "passed": verdict.passed,
        "failures": verdict.failures,
    }


def pass_rates(
    digits: Digits, variant: Variant, subsets: dict[int, np.ndarray]
) -> dict[str, dict[int, float]]:
    passed = {rule: dict.fromkeys(SIZES, 0) for rule in RULES}
    for n, draws in subsets.items():
        for samples in draws:
            verdict = shipped_verdict(digits, variant, samples)
            passed[SHIPPED][n] += verdict.passed
            for rule in (NO_CHANNEL, OLD):
                passed[rule][n] += rejudged(verdict, RULES[rule])
    return {
        rule: {n: count / len(subsets[n]) for n, count in by_size.items()} for rule, by_size in passed.items()
    }


def rejudged(verdict: Verification, thresholds: Thresholds) -> bool:
    """Whether the same measurements pass under other thresholds, by the farm's own ``judge``:
    measuring depends on the thresholds only through atol and rtol, which no rule here changes, so
    this is what ``verify`` with those thresholds says, at half the cost (check_rejudging)."""
    return not any(judge(verdict.gate, verdict.outputs, thresholds, verdict.accuracy).values())


def check_rejudging(digits: Digits, subsets: dict[int, np.ndarray]) -> None:
    """Re-judging must agree with calling ``verify`` with each rule's thresholds outright: checked on
    a heavily degraded variant, which the rules judge differently."""
    onnx_path = digits.source.onnx()
    noisy = edited(digits, "rejudging_check", NOISE, with_weights(onnx_path, weight_noise(0.3, [SEED])))
    names = digits.source.output_names
    for samples in subsets[SIZES[0]][:20]:
        verdict = shipped_verdict(digits, noisy, samples)
        for thresholds in RULES.values():
            outright = verify("int8", names, [digits.reference[samples]], [noisy.scores[samples]], thresholds)
            if outright.passed != rejudged(verdict, thresholds):
                raise AssertionError("re-judging differs from verify(); rates would not be the farm's")


# --- tables ------------------------------------------------------------------------------------


def print_variants(rows: list[Row], references: dict[str, float]) -> None:
    for model, reference in references.items():
        epochs = dict(MODELS)[model]
        print(f"\n### {model} ({epochs} epochs): original {reference:.2%} on 540 held-out images\n")
        print("| variant | family | accuracy | drop (points) | verdict due | top-1 agree | expected loss "
              "| near flips | worst channel error | shipped, all 540 | shipped pass n=50 / n=100 "
              "| old pass n=50 / n=100 |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for row in sorted((r for r in rows if r.model == model), key=lambda r: (r.drop_points, r.name)):
            print(_variant_line(row))


def _variant_line(row: Row) -> str:
    due = "fail" if row.must_fail else ("pass" if row.must_pass else "either")
    full = row.full
    rates = {rule: " / ".join(_pct(row.pass_rates[rule][n]) for n in SIZES) for rule in (SHIPPED, OLD)}
    return (
        f"| {row.name} | {row.family} | {row.accuracy:.2%} | {row.drop_points:+.2f} | {due} "
        f"| {full['top1_agreement']:.3f} | {full['expected_loss']:.4f} | {full['near_flips']:.3f} "
        f"| {full['worst_channel_error']:.2f} | {'pass' if full['passed'] else 'FAIL'} "
        f"| {rates[SHIPPED]} | {rates[OLD]} |"
    )


def print_summary(rows: list[Row]) -> dict[str, Any]:
    """False pass over must-fail variants, false fail over must-pass ones, per rule and size."""
    scopes = {"both models": rows, **{model: [r for r in rows if r.model == model] for model, _ in MODELS}}
    summary: dict[str, Any] = {}
    for scope, scoped in scopes.items():
        fail, good = [r for r in scoped if r.must_fail], [r for r in scoped if r.must_pass]
        real, rescaled = [r for r in good if r.family == REAL], [r for r in good if r.family == RESCALED]
        print(f"\n### Summary, {scope}: {len(fail)} variants losing >= 3 points, {len(good)} losing <= 1 "
              f"({len(real)} real farm variants, {len(rescaled)} rescaled scores)\n")  # fmt: skip
        print("| rule | n | false pass, mean | worst variant | false fail, mean | worst variant "
              "| real farm variants: mean / worst | rescaled scores: mean |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        summary[scope] = {}
        for rule in RULES:
            for n in SIZES:
                rates = _error_rates(rule, n, fail, good, real, rescaled)
                summary[scope][f"{rule}, n={n}"] = rates
                print(_summary_line(rule, n, rates))
    return summary


def _error_rates(
    rule: str, n: int, fail: list[Row], good: list[Row], real: list[Row], rescaled: list[Row]
) -> dict:
    def passes(row: Row) -> float:
        return row.pass_rates[rule][n]

    def fails(row: Row) -> float:
        return 1 - row.pass_rates[rule][n]

    worst_pass, worst_fail = max(fail, key=passes), max(good, key=fails)
    return {
        "false_pass_mean": float(np.mean([passes(r) for r in fail])),
        "false_pass_worst": (worst_pass.model, worst_pass.name, passes(worst_pass)),
        "false_fail_mean": float(np.mean([fails(r) for r in good])),
        "false_fail_worst": (worst_fail.model, worst_fail.name, fails(worst_fail)),
        "real_false_fail_mean": float(np.mean([fails(r) for r in real])) if real else None,
        "real_false_fail_worst": max((fails(r) for r in real), default=None),
        "rescaled_false_fail_mean": float(np.mean([fails(r) for r in rescaled])) if rescaled else None,
    }


def _summary_line(rule: str, n: int, rates: dict) -> str:
    real = f"{_pct(rates['real_false_fail_mean'])} / {_pct(rates['real_false_fail_worst'])}"
    return (
        f"| {rule} | {n} | {_pct(rates['false_pass_mean'])} | {_worst(rates['false_pass_worst'])} "
        f"| {_pct(rates['false_fail_mean'])} | {_worst(rates['false_fail_worst'])} | {real} "
        f"| {_pct(rates['rescaled_false_fail_mean'])} |"
    )


def _worst(worst: tuple[str, str, float]) -> str:
    """The worst variant's rate, named unless no variant erred at all."""
    model, name, rate = worst
    return f"{_pct(rate)} ({model} {name})" if rate > 0 else _pct(rate)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _results(
    plan: Plan, references: dict[str, float], rows: list[Row], summary: dict, elapsed: float
) -> dict:
    from farm.core.hosts import describe_cpu

    return {
        "machine": describe_cpu(),
        "seconds": round(elapsed, 1),
        "subsets": plan.subsets,
        "sizes": list(SIZES),
        "seed": SEED,
        "rules": {rule: asdict(thresholds) for rule, thresholds in RULES.items()},
        "reference_accuracy": references,
        "variants": [asdict(row) for row in rows],  # subset sizes become string keys
        "summary": summary,
    }


if __name__ == "__main__":
    main()
