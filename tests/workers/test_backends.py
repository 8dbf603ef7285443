"""Each installed backend converts the sample classifier for real, and the variant is what it
claims to be: the right file, the right number formats, close to TensorFlow's outputs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from workers.backends import all_backends
from workers.backends.base import BuiltVariant
from workers.calibration import Calibration, run_batched
from workers.sources import SourceModel
from workers.verify import compare_outputs, tolerance_for

LOCAL_BUILDS = [("native", "fp32"), ("cpu", "fp32"), ("cpu", "int8")]
LOCAL_BUILDS += [("arm", p) for p in ("fp32", "fp16", "dynamic", "int8")] + [("fpga", "int8")]


@pytest.fixture(scope="module")
def built(
    source: SourceModel, calibration: Calibration, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], BuiltVariant]:
    workdir = tmp_path_factory.mktemp("variants")
    return {
        (name, precision): all_backends()[name].convert(source, precision, calibration, workdir)
        for name, precision in LOCAL_BUILDS
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
    runner = all_backends()[backend].load(variant)
    expected = run_batched(source.run, calibration.held_out, source.inputs, 8)
    actual = run_batched(runner, calibration.held_out, source.inputs, 8)
    result = compare_outputs(source.output_names, expected, actual, tolerance_for(precision, {}))
    assert result.passed, result.summary()
    assert result.top1_agreement is not None and result.samples == 16
    if precision in ("int8",):
        assert any("synthetic" in note for note in variant.notes)


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
