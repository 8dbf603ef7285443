"""Lower-precision ONNX graphs the backends share: INT8 static quantization into QDQ form with ONNX
Runtime's quantizer, and FP16 graphs that keep float32 inputs and outputs.

The QDQ model is what ONNX Runtime's CPU provider runs fast and what TensorRT 10/11 builds INT8
engines from, so the cpu and gpu backends share it; the FP16 graph is what ONNX Runtime's CUDA
provider runs and TensorRT builds FP16 engines from.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from farm.core.errors import ConversionError, first_line
from workers.runtime import DEFAULT_RECIPE, Recipe

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from workers.calibration import Calibration

log = logging.getLogger(__name__)
Tensor = TypeVar("Tensor")  # how a graph names the values between its nodes
Node = TypeVar("Node")


class CalibrationReader:
    """ONNX Runtime's (and AMD Quark's) CalibrationDataReader: one batch-1 feed per call."""

    def __init__(self, calibration: Calibration) -> None:
        self._samples: Iterator[dict[str, np.ndarray]] = calibration.single_samples()

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._samples, None)


def quantize_qdq(
    source_onnx: Path,
    calibration: Calibration,
    target: Path,
    activations: str,
    recipe: Recipe = DEFAULT_RECIPE,
    excluded: list[str] | None = None,
) -> Path:
    """Per-channel signed INT8 weights and INT8 activations, stored signed ("s8", what TensorRT
    takes) or unsigned ("u8"), by ``recipe`` (CPU_RECIPES); the ``excluded`` nodes stay in float
    (``float_nodes``).

    Both encode one and the same quantization: the calibrated activation scales are equal and the
    u8 zero points are the s8 ones plus 128 (tests/workers/test_quantize.py). What differs is speed:
    ONNX Runtime 1.31 on x86 fuses every u8 Q/DQ pair into integer kernels, but leaves a ResNet50's
    residual Adds and 20 of its 53 convolutions in FP32 when activations are s8 (README, "cpu INT8").
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantizer_options = quantizing_options(source_onnx)
    prepared = prepare_for_quantization(source_onnx)
    options = recipe.options
    activations, weights = qdq_types(activations, recipe)
    try:
        quantize_static(
            str(prepared),
            str(target),
            CalibrationReader(calibration),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8 if activations == "s8" else QuantType.QUInt8,
            weight_type=QuantType.QInt8 if weights == "s8" else QuantType.QUInt8,
            per_channel=True,
            reduce_range=bool(options.get("reduce_range")),
            calibrate_method=getattr(CalibrationMethod, options.get("calibration", "MinMax")),
            nodes_to_exclude=excluded or [],
            **quantizer_options,
        )
    except Exception as exc:
        raise ConversionError(f"INT8 quantization failed: {first_line(exc)}") from exc
    refuse_if_nothing_quantized(target)
    return target


QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger"}
# What ONNX Runtime's quantizers give integer kernels to; a graph without any has nothing to quantize.
QUANTIZABLE_OPS = {"Conv", "ConvTranspose", "MatMul", "Gemm", "Attention", "LSTM", "GRU"}


def quantizing_options(source_onnx: Path) -> dict:
    """Refuses a graph with nothing a quantizer gives integer kernels to: a "reduced-precision"
    variant left all in float is not one, and its verdict says so instead (tree ensembles and the
    other ai.onnx.ml operators have none). Else quantize_static's options for it: for a graph with
    ai.onnx.ml operators (a scikit-learn MLP picks its label with ArrayFeatureExtractor), only the
    weighted layers and what joins them, and no bias-driven weight rescaling, where ONNX Runtime
    1.32's quantizer fails on per-channel MatMul weights ("truth value of an array ... is
    ambiguous"); nothing for every other graph."""
    graph = _graph(source_onnx)
    _refuse_without(graph, QUANTIZABLE_OPS)
    if all(node.domain in ("", "ai.onnx") for node in graph.node):
        return {}
    return {
        "op_types_to_quantize": sorted(QUANTIZABLE_OPS | {"Add", "Relu"}),
        "extra_options": {"QDQDisableWeightAdjustForInt32Bias": True},
    }


def refuse_if_nothing_quantized(path: Path) -> None:
    """The same refusal after quantizing, when the quantizer left every operator in float."""
    _refuse_without(_graph(path), QUANTIZED_OPS)


def _refuse_without(graph: onnx.GraphProto, ops: set[str]) -> None:
    if not any(node.op_type in ops for node in graph.node):
        kinds = sorted({node.op_type for node in graph.node})[:6]
        raise ConversionError(
            f"nothing to quantize: none of its operators ({', '.join(kinds)}) has an integer kernel"
        )


def _graph(path: Path) -> onnx.GraphProto:
    import onnx

    return onnx.load(str(path), load_external_data=False).graph


def qdq_types(activations: str, recipe: Recipe) -> tuple[str, str]:
    """How a recipe stores activations and weights: ``activations`` (FARM_CPU_INT8_ACTIVATIONS)
    and s8 weights, or u8 both ways for a U8U8 recipe (ONNX Runtime takes no s8 x u8 pair)."""
    return ("u8", "u8") if recipe.options.get("weights") == "u8" else (activations, "s8")


# The cpu backend's INT8 recipes, in the order a failing variant tries them (workers/convert.py).
CPU_RECIPES = (
    Recipe("MinMax calibration"),  # the default
    # A detector's head mixes pixel boxes and 0-1 scores in one tensor, and a softmax over many
    # classes spans a fixed 0-1 range: one INT8 scale rounds their small values away. Its last
    # weighted layers and what follows them stay FP32.
    Recipe("output head in FP32", {"float_head": True}),
    # x86 CPUs without VNNI multiply u8 activations by s8 weights into saturating 16-bit sums
    # (VPMADDUBSW): a trained face-detector stage's box offsets came out 0.38 of their spread off
    # that way, 0.12 with u8 weights, whose kernels widen before they add (same speed measured).
    Recipe("u8 weights (U8U8)", {"weights": "u8"}),
    Recipe("output head in FP32, u8 weights", {"float_head": True, "weights": "u8"}),
    Recipe("7-bit weights (reduce_range)", {"reduce_range": True}),  # ONNX Runtime's advice there
    Recipe("percentile calibration", {"calibration": "Percentile"}),
    Recipe("entropy calibration", {"calibration": "Entropy"}),
)


def float_nodes(source_onnx: Path, recipe: Recipe) -> list[str]:
    """The nodes ``recipe`` keeps in float (mixed precision): the output head of the graph the
    quantizers take, or none."""
    return head_nodes(prepare_for_quantization(source_onnx)) if recipe.options.get("float_head") else []


def float_notes(details: dict) -> list[str]:
    nodes = details.get("fp32_nodes")
    if not nodes:
        return []
    listed = ", ".join(nodes[:6]) + (f" and {len(nodes) - 6} more" if len(nodes) > 6 else "")
    return [f"int8 with {len(nodes)} nodes kept in FP32 (mixed precision): {listed}"]


WEIGHTED_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
MAX_HEAD_NODES = 64


def head_nodes(model_path: Path) -> list[str]:
    """The output head of an ONNX graph (output_head), by node name: what a quantizer's
    nodes_to_exclude takes, so the head stays in float, as a detector's boxes-and-scores output
    needs."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    producer = {output: node for node in graph.node for output in node.output}
    head = output_head(
        [output.name for output in graph.output],
        producer,
        identity=lambda node: node.name,
        weighted=lambda node: node.op_type in WEIGHTED_OPS,
        inputs=lambda node: node.input,
    )
    return [node.name for node in head if node.name]


def output_head(
    outputs: Iterable[Tensor],
    producer: Mapping[Tensor, Node],
    identity: Callable[[Node], Hashable],
    weighted: Callable[[Node], bool],
    inputs: Callable[[Node], Iterable[Tensor]],
) -> list[Node]:
    """Walking back from the outputs, breadth first (nearest the outputs first), every node up to
    and including the first weighted one on each way; at most MAX_HEAD_NODES. One walk for every
    graph format: ONNX here, TFLite's ops in workers/backends/arm.py."""
    head: dict[Hashable, Node] = {}
    waiting = deque(outputs)
    while waiting and len(head) < MAX_HEAD_NODES:
        node = producer.get(waiting.popleft())
        if node is None or identity(node) in head:
            continue
        head[identity(node)] = node
        if not weighted(node):
            waiting.extend(inputs(node))
    if waiting and len(head) == MAX_HEAD_NODES:
        log.warning("output head cut at %d nodes, the nearest the outputs", MAX_HEAD_NODES)
    return list(head.values())


def prepare_for_quantization(source_onnx: Path) -> Path:
    """The graph as quantizers need it: weights held by Constant nodes moved into initializers,
    every node named, then ONNX Runtime's shape inference and clean-up (skipped, with a warning,
    when it cannot handle the model: it still quantizes, less well).

    Kept beside the source export, so the cpu and fpga quantizers of one job prepare it once.
    """
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    target = source_onnx.with_name(f"{source_onnx.stem}.prepared.onnx")
    if target.exists():
        return target
    normalised = target.with_name(f".{target.stem}.{os.getpid()}.normalised.onnx")
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        onnx.save(named_nodes(constants_to_initializers(onnx.load(str(source_onnx)))), str(normalised))
    except Exception as exc:  # over protobuf's 2 GB, or a graph onnx cannot read back: as it came
        log.warning("quantization normalisation skipped: %s", first_line(exc))
        return source_onnx
    try:
        # When its symbolic shape inference is incomplete, ONNX Runtime saves a debugging copy,
        # sym_shape_infer_temp.onnx, into the working directory: keep it beside the export
        # instead of in the worker's (or a user's) current folder.
        with working_directory(source_onnx.parent):
            quant_pre_process(str(normalised.absolute()), str(partial.absolute()), skip_symbolic_shape=False)
    except Exception as exc:
        log.warning("quantization pre-processing skipped: %s", first_line(exc))
        partial.unlink(missing_ok=True)
        os.replace(normalised, partial)
    normalised.unlink(missing_ok=True)
    os.replace(partial, target)  # never a half-written file under the name that is reused
    return target


def constants_to_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """Float tensors held by Constant nodes (how many exporters store weights) become
    initializers: quantizers look for weights among initializers only, and left the others in
    FP32 (an INT8 file came out larger than its FP32 source)."""
    from onnx import numpy_helper

    graph = model.graph
    kept = []
    for node in graph.node:
        tensor = _constant_tensor(node)
        if tensor is None:
            kept.append(node)
            continue
        initializer = numpy_helper.from_array(numpy_helper.to_array(tensor), node.output[0])
        graph.initializer.append(initializer)
    del graph.node[:]
    graph.node.extend(kept)
    return model


def _constant_tensor(node: onnx.NodeProto) -> onnx.TensorProto | None:
    """The float tensor a Constant node holds in its ``value`` attribute (its one output), if any."""
    from onnx import TensorProto

    if node.op_type != "Constant" or node.domain not in ("", "ai.onnx") or len(node.output) != 1:
        return None
    floats = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE)
    for attribute in node.attribute:
        if attribute.name == "value" and attribute.t.data_type in floats:
            return attribute.t
    return None


def named_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every node named (some exporters leave names empty): quantizers exclude nodes by name."""
    taken = {node.name for node in model.graph.node}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)
    return model


@contextmanager
def working_directory(folder: Path) -> Iterator[None]:
    """``contextlib.chdir`` for Python 3.10: a task runs alone in its worker process."""
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def to_fp16(source_onnx: Path, target: Path) -> Path:
    """FP16 weights and compute, FP32 inputs and outputs (callers keep feeding float32)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save(convert_float_to_float16(onnx.load(str(source_onnx)), keep_io_types=True), str(target))
    return target


def with_fixed_inputs(model_path: Path, shapes: dict[str, tuple[int | None, ...]]) -> Path:
    """The model with these inputs' dimensions fixed (None stays open: the batch); the same file
    when there are none to fix."""
    import onnx

    if not shapes:
        return model_path
    model = onnx.load(str(model_path))
    for value in model.graph.input:
        for dim, size in zip(value.type.tensor_type.shape.dim, shapes.get(value.name, ()), strict=False):
            if size is not None:
                dim.dim_value = size
    fixed = model_path.with_name(f"{model_path.stem}.fixed.onnx")
    onnx.save(onnx.shape_inference.infer_shapes(model), str(fixed))
    return fixed
