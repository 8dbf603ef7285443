"""Each installed backend converts models for real, and the variant is what it claims to be: the
right file, the right number formats, close to TensorFlow's outputs; on a classifier trained on
real images, every correctly calibrated variant passes verification and a broken one fails."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from farm.core.calibfile import read_samples
from farm.core.modelfile import ModelFormat
from farm.core.settings import FarmSettings
from farm.core.toolchains import import_tensorflow
from workers.backends import all_backends
from workers.calibration import Calibration, make_calibration, synthetic_calibration
from workers.convert import search_recipes, verify_variant
from workers.runtime import BuiltVariant
from workers.sources import SourceModel, load_source

LOCAL_BUILDS = [("native", "fp32"), ("cpu", "fp32"), ("cpu", "int8")]
LOCAL_BUILDS += [("arm", p) for p in ("fp32", "fp16", "dynamic", "int8")] + [("fpga", "int8")]


@pytest.fixture(scope="module")
def built(
    source: SourceModel, calibration: Calibration, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], BuiltVariant]:
    return build_all(source, calibration, LOCAL_BUILDS, tmp_path_factory.mktemp("variants"))


def build_all(
    source: SourceModel, calibration: Calibration, builds: list[tuple[str, str]], workdir: Path
) -> dict[tuple[str, str], BuiltVariant]:
    """Each (backend, precision) of ``builds``, converted for real."""
    return {
        (name, precision): all_backends()[name].convert(
            source, precision, calibration, workdir, FarmSettings()
        )
        for name, precision in builds
    }


@pytest.mark.parametrize(("backend", "precision"), LOCAL_BUILDS)
def test_variant_runs_and_matches_tensorflow_within_its_precision_tolerance(
    backend: str,
    precision: str,
    source: SourceModel,
    calibration: Calibration,
    built: dict[tuple[str, str], BuiltVariant],
) -> None:
    variant = built[(backend, precision)]
    assert variant.path.exists() and variant.precision == precision and variant.runtime
    runner = all_backends()[backend].load(variant, source.output_names)
    result = verify_variant(source, calibration, runner, precision)
    assert result.passed, result.summary()
    assert result.top1_agreement is not None and result.samples == 16


def test_cpu_int8_is_qdq_stored_as_the_setting_says(built: dict[tuple[str, str], BuiltVariant]) -> None:
    variant = built[("cpu", "int8")]
    model = onnx.load(str(variant.path))
    quantize = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert quantize and any(n.op_type == "DequantizeLinear" for n in model.graph.node)
    zero_points = _initializers(model, [n.input[2] for n in quantize if len(n.input) > 2])
    assert zero_points and all(z.dtype == np.uint8 for z in zero_points)  # FARM_CPU_INT8_ACTIVATIONS=u8
    assert variant.details == {"int8": "u8s8 QDQ"}


def test_fpga_int8_has_symmetric_power_of_two_scales(built: dict[tuple[str, str], BuiltVariant]) -> None:
    variant = built[("fpga", "int8")]
    model = onnx.load(str(variant.path))
    scales = _initializers(model, _scale_names(model))
    assert scales
    for scale in scales:
        assert scale.size == 1, "per-tensor: one scale per tensor"
        exponent = np.log2(float(scale))
        assert exponent == pytest.approx(round(exponent), abs=1e-6)  # a power of two: the DPU's scheme
    quantize = [n for n in model.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    zero_points = _initializers(model, [n.input[2] for n in quantize])
    assert zero_points
    for zero_point in zero_points:
        midpoint = 128 if zero_point.dtype == np.uint8 else 0
        assert int(zero_point) == midpoint, "symmetric: zero at the middle of the integer range"
    assert any("DPU compile and on-device run not done" in note for note in variant.notes)


def test_tflite_precisions_shrink_the_model(built: dict[tuple[str, str], BuiltVariant]) -> None:
    size = {p: built[("arm", p)].path.stat().st_size for p in ("fp32", "fp16", "dynamic", "int8")}
    assert size["fp16"] < size["fp32"] and size["dynamic"] < size["fp32"] and size["int8"] < size["fp32"]
    assert all(built[("arm", p)].path.suffix == ".tflite" for p in size)


def _scale_names(model: onnx.ModelProto) -> list[str]:
    return [n.input[1] for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]


def _initializers(model: onnx.ModelProto, names: list[str]) -> list[np.ndarray]:
    wanted = set(names)
    return [numpy_helper.to_array(t) for t in model.graph.initializer if t.name in wanted]


# --- a classifier trained on real images: verdicts a user can trust ----------------------------

DIGITS_BUILDS = [("cpu", "fp32"), ("cpu", "int8"), ("arm", "fp16"), ("arm", "dynamic"), ("arm", "int8")]
DIGITS_BUILDS += [("fpga", "int8")]


@pytest.fixture(scope="module")
def digits_source(digits: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> SourceModel:
    return load_source(digits["model"], ModelFormat.KERAS, [], [], tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="module")
def digits_calibration(digits_source: SourceModel, digits: dict[str, Path]) -> Calibration:
    """Calibrated on training images, verified on the 540 labelled held-out ones."""
    calib, evaluation = read_samples(digits["calib"]), read_samples(digits["eval"], "--eval")
    return make_calibration(digits_source.inputs, calib, evaluation, max_samples=32, synthetic_held_out=16)


@pytest.fixture(scope="module")
def digits_built(
    digits_source: SourceModel, digits_calibration: Calibration, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], BuiltVariant]:
    workdir = tmp_path_factory.mktemp("digit-variants")
    return build_all(digits_source, digits_calibration, DIGITS_BUILDS, workdir)


@pytest.mark.parametrize(("backend", "precision"), DIGITS_BUILDS)
def test_every_correctly_calibrated_variant_of_a_trained_classifier_passes(
    backend: str,
    precision: str,
    digits_source: SourceModel,
    digits_calibration: Calibration,
    digits_built: dict[tuple[str, str], BuiltVariant],
) -> None:
    runner = all_backends()[backend].load(digits_built[(backend, precision)], digits_source.output_names)
    by_accuracy = verify_variant(digits_source, digits_calibration, runner, precision)
    assert by_accuracy.passed, by_accuracy.summary()
    assert by_accuracy.samples == 540 and by_accuracy.accuracy is not None
    assert by_accuracy.accuracy.reference > 0.9  # the model really learned the digits
    assert by_accuracy.gate == ("tolerance" if precision == "fp32" else "accuracy")
    # Without labels, the same variant passes on agreement with the original.
    by_agreement = verify_variant(digits_source, replace(digits_calibration, labels=None), runner, precision)
    assert by_agreement.passed, by_agreement.summary()


def test_a_variant_with_wrong_scales_fails_with_its_numbers(
    digits_source: SourceModel,
    digits_calibration: Calibration,
    digits_built: dict[tuple[str, str], BuiltVariant],
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken_int8.onnx"
    model = onnx.load(str(digits_built[("cpu", "int8")].path))
    flipped = _flip_first_weight_scales(model)
    onnx.save(model, str(broken))
    variant = replace(digits_built[("cpu", "int8")], path=broken)
    runner = all_backends()["cpu"].load(variant, digits_source.output_names)

    by_accuracy = verify_variant(digits_source, digits_calibration, runner, "int8")
    assert not by_accuracy.passed and by_accuracy.accuracy is not None, flipped
    *order, failure = by_accuracy.failures  # the accuracy's failure comes last
    assert len(order) == 1 and "lost the original's order" in order[0]
    assert f"accuracy {by_accuracy.accuracy.variant:.2%} is " in failure and "(at most 1)" in failure
    assert by_accuracy.accuracy.drop_points > 10
    by_agreement = verify_variant(digits_source, replace(digits_calibration, labels=None), runner, "int8")
    assert not by_agreement.passed
    assert any(f.startswith("top-1 agreement") for f in by_agreement.failures), by_agreement.failures


def _flip_first_weight_scales(model: onnx.ModelProto) -> str:
    """Negate the per-channel scales of the first convolution's weights: a wrong-scales variant."""
    conv = next(node for node in model.graph.node if node.op_type == "Conv")
    dequantize = next(node for node in model.graph.node if node.output[0] == conv.input[1])
    scale = next(t for t in model.graph.initializer if t.name == dequantize.input[1])
    scale.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(scale), scale.name))
    return scale.name


# --- tensors are matched by name -----------------------------------------------------------------


@pytest.fixture(scope="module")
def two_in_two_out(tmp_path_factory: pytest.TempPathFactory) -> SourceModel:
    """Inputs and outputs of different shapes, named so that sorting by name reverses their order."""
    import_tensorflow()
    import keras

    keras.utils.set_random_seed(1)
    zeta, alpha = keras.Input((6,), name="zeta"), keras.Input((3,), name="alpha")
    joined = keras.layers.Concatenate()([keras.layers.Dense(5, activation="relu")(zeta), alpha])
    scores = keras.layers.Dense(4, activation="softmax", name="zz_scores")(joined)
    value = keras.layers.Dense(1, name="aa_value")(joined)
    folder = tmp_path_factory.mktemp("two")
    keras.Model([zeta, alpha], [scores, value]).save(folder / "two.keras")
    return load_source(folder / "two.keras", ModelFormat.KERAS, [], [], folder)


@pytest.mark.parametrize(("backend", "precision"), [b for b in LOCAL_BUILDS if b[0] != "native"])
def test_two_inputs_and_two_outputs_reach_the_right_tensors(
    backend: str, precision: str, two_in_two_out: SourceModel, tmp_path: Path
) -> None:
    source, chosen = two_in_two_out, all_backends()[backend]
    calibration = synthetic_calibration(source.inputs, samples=32, held_out=64)
    found = search_recipes(
        chosen.recipes(precision),
        lambda recipe, folder: chosen.convert(source, precision, calibration, folder, FarmSettings(), recipe),
        lambda built: chosen.load(built, source.output_names),
        lambda runner: verify_variant(source, calibration, runner, precision),
        tmp_path,
        budget_s=60,
    )
    runner = found.runner
    outputs = runner({name: array[:3] for name, array in calibration.held_out.items()})
    assert [output.shape for output in outputs] == [(3, 4), (3, 1)]
    # Inputs in the reverse order of the model's: still fed to the right tensors.
    reversed_feeds = dict(reversed(list(calibration.held_out.items())))
    assert [a.shape for a in runner(reversed_feeds)] == [(64, 4), (64, 1)]
    assert found.verification.passed, (found.verification.summary(), found.search_notes)
    # Its shape inference is incomplete, and ONNX Runtime's debugging copy stays out of the cwd.
    assert not (Path.cwd() / "sym_shape_infer_temp.onnx").exists()
