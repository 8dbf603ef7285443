"""A model's inputs read on the client, without TensorFlow: enough to refuse ``--inputs`` that name
no input or contradict its shape, and ``--calib``/``--eval`` samples that cannot feed it, before
anything is stored or queued.

Each reader returns the inputs as the worker will name them (``image:0`` for TensorFlow models, the
graph's own names for ONNX). Where a format cannot be read without TensorFlow (an ``.h5`` Keras
file, a Sequential ``.keras`` model, an input inside a frozen graph that is not a Placeholder) the
answer is None and the worker makes the same checks on the model as loaded.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from farm.core.errors import ModelError, UsageError
from farm.core.modelfile import ModelFormat, TensorArg, TensorSpec, node_name, shape_text, tensor_name
from farm.core.tfproto import DATA_TYPES, graph_def_class, saved_model_class, shape_of

SERVING_SIGNATURE = "serving_default"  # the worker serves it, or else the first signature


def model_inputs(path: Path, fmt: ModelFormat, named: list[TensorArg]) -> list[TensorSpec] | None:
    """The inputs the worker will feed, with ``--inputs`` shapes applied; None where unknown here.

    Raises UsageError for an ``--inputs`` name the model does not have, or a shape that
    contradicts the model's own.
    """
    if fmt is ModelFormat.FROZEN_GRAPH:
        return _frozen_graph_inputs(path, named)
    reader = _READERS.get(fmt)
    declared = reader(path) if reader is not None else None  # PyTorch, tabular: read on the worker
    if declared is None:
        return None
    return _applied(declared, named, fmt is not ModelFormat.ONNX)


def model_outputs(path: Path, fmt: ModelFormat) -> list[str] | None:
    """The model's output names where reading them is cheap (ONNX); None elsewhere."""
    if fmt is not ModelFormat.ONNX:
        return None
    import onnx

    return [value.name for value in onnx.load(str(path), load_external_data=False).graph.output]


def onnx_signature(graph: Any, named: list[TensorArg]) -> list[TensorSpec] | None:
    """A loaded ONNX graph's inputs with ``--inputs`` shapes applied (model_inputs, for a worker
    that has the graph loaded already); None where an input has no declared shape."""
    declared = onnx_graph_inputs(graph)
    return None if declared is None else _applied(declared, named, tensorflow=False)


def _applied(declared: list[TensorSpec], named: list[TensorArg], tensorflow: bool) -> list[TensorSpec]:
    by_name = {spec.name: spec for spec in declared}
    shapes = {}
    for arg in named:
        name = tensor_name(arg.name) if tensorflow else arg.name
        if name not in by_name:
            have = ", ".join(by_name)
            raise UsageError(f"--inputs {arg.name}: the model has no such input (it has: {have})")
        if arg.shape is not None:
            shapes[name] = _checked_shape(arg, by_name[name].shape)
    return [replace(spec, shape=shapes.get(spec.name, spec.shape)) for spec in declared]


def _checked_shape(arg: TensorArg, declared: tuple[int | None, ...]) -> tuple[int | None, ...]:
    """The shape --inputs gives, when it agrees with the model's: same rank, and the same size
    wherever both name one."""
    assert arg.shape is not None
    pairs = zip(declared, arg.shape, strict=False)
    if len(arg.shape) != len(declared) or any(a != b for a, b in pairs if a is not None and b is not None):
        given, theirs = shape_text(arg.shape), shape_text(declared)
        raise UsageError(f"--inputs {arg.name}: shape {given} contradicts the model's {theirs}")
    return arg.shape


# --- frozen graph: any node may be named as an input; Placeholders are the default ---------------


def _frozen_graph_inputs(path: Path, named: list[TensorArg]) -> list[TensorSpec] | None:
    graph = graph_def_class()()
    graph.ParseFromString(path.read_bytes())  # detect_format has parsed it once already
    nodes = {node.name: node for node in graph.node}
    wanted = named or [TensorArg(name) for name, node in nodes.items() if node.op == "Placeholder"]
    if not wanted:
        hint = "name its inputs with --inputs NAME[:shape]"
        raise ModelError(f"{path.name}: the graph has no Placeholders; {hint}")
    specs = []
    for arg in wanted:
        node = nodes.get(node_name(arg.name))
        if node is None:
            raise UsageError(f"--inputs {arg.name}: the graph has no node {node_name(arg.name)}")
        placeholder = _placeholder_spec(node)
        if placeholder is None:
            return None  # an inner tensor, or an unusual dtype: its dtype and shape need TensorFlow
        shape = placeholder.shape if arg.shape is None else _checked_shape(arg, placeholder.shape)
        specs.append(TensorSpec(tensor_name(arg.name), shape, placeholder.dtype))
    return specs


def _placeholder_spec(node: Any) -> TensorSpec | None:
    """A Placeholder node (a NodeDef of farm.core.tfproto) as an input; None for any other node."""
    dtype = node.attr["dtype"].type
    shape = shape_of(node.attr["shape"].shape)
    if node.op != "Placeholder" or dtype not in DATA_TYPES or shape is None:
        return None
    return TensorSpec(f"{node.name}:0", shape, DATA_TYPES[dtype])


# --- formats with a declared signature -------------------------------------------------------


def _onnx_inputs(path: Path) -> list[TensorSpec] | None:
    import onnx

    return onnx_graph_inputs(onnx.load(str(path), load_external_data=False).graph)


def onnx_graph_inputs(graph: Any) -> list[TensorSpec] | None:
    """A loaded ONNX graph's inputs (initializers left out), each batched where its dimensions say
    (onnx_batch_axis); None when one has no declared shape."""
    from onnx.helper import tensor_dtype_to_np_dtype

    inputs = _graph_inputs(graph)
    if any(not value.type.tensor_type.HasField("shape") for value in inputs):
        return None
    batch = _batch_symbol(graph)
    specs = []
    for value in inputs:
        dims = onnx_dims(value)
        shape = tuple(dim if isinstance(dim, int) else None for dim in dims)
        dtype = tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name
        specs.append(TensorSpec(value.name, shape, dtype, onnx_batch_axis(dims, batch)))
    return specs


def onnx_dims(value: Any) -> list[int | str | None]:
    """An ONNX value's dimensions: a size, a symbol (``"batch"``), or None (unnamed and unknown)."""
    return [
        dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or None)
        for dim in value.type.tensor_type.shape.dim
    ]


def onnx_output_batch_axes(graph: Any) -> dict[str, int]:
    """A loaded ONNX graph's outputs batched on another axis than the first (a recurrent model's
    next state), by name."""
    batch = _batch_symbol(graph)
    axes = {value.name: onnx_batch_axis(onnx_dims(value), batch) for value in graph.output}
    return {name: axis for name, axis in axes.items() if axis}  # not 0, nor None (a scalar output)


def _graph_inputs(graph: Any) -> list[Any]:
    constants = {initializer.name for initializer in graph.initializer}
    return [value for value in graph.input if value.name not in constants]


def _batch_symbol(graph: Any) -> str | None:
    """The symbol the model's batch goes by: the first input's first dimension, when a symbol."""
    first = next((dims for dims in map(onnx_dims, _graph_inputs(graph)) if dims), None)
    return first[0] if first and isinstance(first[0], str) else None


def onnx_batch_axis(dims: list[int | str | None], batch: str | None) -> int | None:
    """Where a tensor's batch is: the axis named like the model's batch (a recurrent state
    ``(2, batch, 64)``: 1), else the first; None for a scalar."""
    if not dims:
        return None
    return dims.index(batch) if batch is not None and batch in dims else 0


def _saved_model_inputs(path: Path) -> list[TensorSpec] | None:
    proto = path / "saved_model.pb"
    if not proto.is_file():
        return None  # saved_model.pbtxt: rare, and text format needs TensorFlow's own parser
    saved = saved_model_class()()
    try:
        saved.ParseFromString(proto.read_bytes())
    except Exception:  # protobuf raises DecodeError, or RuntimeError from upb: TensorFlow will say
        return None
    signatures = {
        name: signature
        for meta_graph in saved.meta_graphs
        for name, signature in meta_graph.signature_def.items()
        if not name.startswith("__")  # __saved_model_init_op: not served
    }
    if not signatures:
        return None
    signature = signatures.get(SERVING_SIGNATURE) or next(iter(signatures.values()))
    specs = []
    for name, info in sorted(signature.inputs.items()):
        shape = shape_of(info.tensor_shape)
        if shape is None or info.dtype not in DATA_TYPES:
            return None
        specs.append(TensorSpec(f"{name}:0", shape, DATA_TYPES[info.dtype]))
    return specs


def _keras_inputs(path: Path) -> list[TensorSpec] | None:
    """A functional ``.keras`` model's InputLayers, from its config.json."""
    if path.suffix.lower() != ".keras":
        return None  # .h5 holds its config in HDF5 attributes: h5py is not a client dependency
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    if config.get("class_name") != "Functional":
        return None
    specs = []
    for layer in config.get("config", {}).get("layers", []):
        if layer.get("class_name") != "InputLayer":
            continue
        settings = layer.get("config", {})
        shape = settings.get("batch_shape") or settings.get("batch_input_shape")
        dtype = settings.get("dtype")
        if shape is None or not isinstance(dtype, str) or "name" not in settings:
            return None
        specs.append(TensorSpec(f"{settings['name']}:0", tuple(shape), dtype))
    return specs or None


_READERS: dict[ModelFormat, Callable[[Path], list[TensorSpec] | None]] = {
    ModelFormat.ONNX: _onnx_inputs,
    ModelFormat.SAVED_MODEL: _saved_model_inputs,
    ModelFormat.KERAS: _keras_inputs,
}
