"""INT8 QDQ from ONNX Runtime's quantizer: signed per-channel weights, and activations stored
signed or unsigned as one and the same quantization."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from workers.calibration import Calibration, run_batched
from workers.quantize import prepare_for_quantization, quantize_qdq
from workers.runtime import onnxruntime_runner
from workers.sources import SourceModel

ENCODINGS = ("s8", "u8")


@pytest.fixture(scope="module")
def encodings(
    source: SourceModel, calibration: Calibration, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    workdir = tmp_path_factory.mktemp("quantize")
    exported = source.onnx()
    return {kind: quantize_qdq(exported, calibration, workdir / f"{kind}.onnx", kind) for kind in ENCODINGS}


def activation_qparams(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Scale and zero point of every QuantizeLinear, keyed by the tensor it quantizes."""
    model = onnx.load(str(path))
    initializers = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return {
        node.input[0]: (initializers[node.input[1]], initializers[node.input[2]])
        for node in model.graph.node
        if node.op_type == "QuantizeLinear"
    }


def weight_zero_points(path: Path) -> list[np.ndarray]:
    """Zero points of the DequantizeLinear nodes that read stored (already quantized) constants."""
    model = onnx.load(str(path))
    initializers = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return [
        initializers[node.input[2]]
        for node in model.graph.node
        if node.op_type == "DequantizeLinear" and node.input[0] in initializers and len(node.input) > 2
    ]


@pytest.mark.parametrize(("kind", "dtype"), [("s8", np.int8), ("u8", np.uint8)])
def test_activations_are_stored_as_asked_and_weights_stay_signed_per_channel(
    encodings: dict[str, Path], kind: str, dtype: type
) -> None:
    activations = activation_qparams(encodings[kind])
    assert activations and {zero_point.dtype for _, zero_point in activations.values()} == {np.dtype(dtype)}
    # Per-channel weights carry one zero point per output channel (other constants, one per tensor).
    per_channel = [zero_point for zero_point in weight_zero_points(encodings[kind]) if zero_point.size > 1]
    assert per_channel and all(zero_point.dtype == np.int8 for zero_point in per_channel)


def test_s8_and_u8_activations_are_one_quantization(
    encodings: dict[str, Path], source: SourceModel, calibration: Calibration
) -> None:
    signed, unsigned = activation_qparams(encodings["s8"]), activation_qparams(encodings["u8"])
    assert signed.keys() == unsigned.keys()
    for tensor, (scale, zero_point) in signed.items():
        u8_scale, u8_zero_point = unsigned[tensor]
        np.testing.assert_array_equal(scale, u8_scale, err_msg=tensor)
        np.testing.assert_array_equal(zero_point.astype(int) + 128, u8_zero_point.astype(int), err_msg=tensor)
    outputs = {
        kind: run_batched(
            onnxruntime_runner(path, source.output_names), calibration.held_out, source.inputs, 8
        )
        for kind, path in encodings.items()
    }
    for signed_output, unsigned_output in zip(outputs["s8"], outputs["u8"], strict=True):
        np.testing.assert_allclose(signed_output, unsigned_output, atol=1e-5)


def test_the_prepared_model_is_made_once_beside_the_export(
    encodings: dict[str, Path], source: SourceModel
) -> None:
    prepared = prepare_for_quantization(source.onnx())
    assert prepared.parent == source.onnx().parent and prepared != source.onnx()
    made = prepared.stat().st_mtime_ns  # both encodings above were quantized from it
    assert prepare_for_quantization(source.onnx()) == prepared
    assert prepared.stat().st_mtime_ns == made
    assert not list(prepared.parent.glob(".*.tmp"))
