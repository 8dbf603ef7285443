"""INT8 QDQ from ONNX Runtime's quantizer: signed per-channel weights, and activations stored
signed or unsigned as one and the same quantization."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from farm.samples import write_mlp_onnx
from workers.calibration import Calibration, run_batched
from workers.quantize import constants_to_initializers, head_nodes, prepare_for_quantization, quantize_qdq
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


def _with_constant_weights(source: Path, target: Path) -> Path:
    """The model with every initializer moved into a Constant node, as many exporters write them."""
    model = onnx.load(str(source))
    constants = [helper.make_node("Constant", [], [t.name], value=t) for t in model.graph.initializer]
    del model.graph.initializer[:]
    nodes = constants + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.save(model, str(target))
    return target


def _mlp_calibration() -> Calibration:
    rng = np.random.default_rng(2)
    samples = rng.normal(0, 1, (32, 20)).astype(np.float32)
    held_out = rng.normal(0, 1, (16, 20)).astype(np.float32)
    return Calibration(
        {"features": samples}, {"features": held_out}, synthetic=False, verified_on="calibration"
    )


def test_weights_held_by_constant_nodes_are_quantized_like_initializers(tmp_path: Path) -> None:
    mlp = write_mlp_onnx(tmp_path / "mlp.onnx", hidden=256)
    constant = _with_constant_weights(mlp, tmp_path / "constants.onnx")
    moved = constants_to_initializers(onnx.load(str(constant)))
    assert [n.op_type for n in moved.graph.node] == ["Gemm", "Relu", "Gemm", "Softmax"]
    assert sorted(t.name for t in moved.graph.initializer) == ["b1", "b2", "w1", "w2"]
    int8 = quantize_qdq(constant, _mlp_calibration(), tmp_path / "int8.onnx", "u8")
    weights = [t for t in onnx.load(str(int8)).graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert sorted(t.dims[0] * t.dims[1] for t in weights if len(t.dims) == 2) == [256 * 10, 20 * 256]
    assert int8.stat().st_size < constant.stat().st_size / 2  # before: larger than the FP32 file


def test_the_output_head_is_every_node_back_to_the_last_weighted_one(tmp_path: Path) -> None:
    prepared = prepare_for_quantization(write_mlp_onnx(tmp_path / "mlp.onnx"))
    ops = {node.name: node.op_type for node in onnx.load(str(prepared)).graph.node}
    assert all(ops)  # every node named, so a quantizer can exclude it
    assert sorted(ops[name] for name in head_nodes(prepared)) == ["Gemm", "Softmax"]
