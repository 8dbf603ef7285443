"""TensorFlow models as sources.

Every TensorFlow format (frozen graph, SavedModel, Keras) is reduced to one frozen GraphDef with
named input and output tensors, which is what tf2onnx converts; the reference outputs come from
running the original model itself (the graph, the serving signature, the Keras model).
"""

from __future__ import annotations

import errno
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from farm.core.errors import CorruptModelError, HostResourceError, ModelError, first_line
from farm.core.modelfile import ModelFormat, TensorArg, TensorSpec, node_name, tensor_name
from farm.core.toolchains import import_tensorflow
from workers.sources.base import ONNX_OPSET, SourceModel, SourceRequest, select_outputs, with_request_shapes

# Ops that end a graph without being a model output.
NON_OUTPUT_OPS = {"NoOp", "Const", "Placeholder", "PlaceholderWithDefault", "Assert", "VarHandleOp"}


def load(path: Path, fmt: ModelFormat, request: SourceRequest) -> SourceModel:
    tf = import_tensorflow()
    try:
        return _LOADERS[fmt](tf, path, request.inputs, request.outputs)
    except ModelError:
        raise
    except Exception as exc:
        if _out_of_resources(tf, exc):  # the worker's host, not the model: another may have room
            raise HostResourceError(
                f"{path.name}: this worker ran out of memory or disk loading it ({first_line(exc)})"
            ) from exc
        if _malformed(tf, exc):
            raise CorruptModelError(f"{path.name}: TensorFlow could not load it ({first_line(exc)})") from exc
        raise  # neither the model's fault nor the host's: an internal error, reported as such


RESOURCE_ERRNOS = {errno.ENOMEM, errno.ENOSPC, errno.EDQUOT}


def _out_of_resources(tf: Any, exc: Exception) -> bool:
    if isinstance(exc, (MemoryError, tf.errors.ResourceExhaustedError)):
        return True
    return isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS


def _malformed(tf: Any, exc: Exception) -> bool:
    """Whether loading failed on the file itself: it does not parse (protobuf, zip, JSON, HDF5),
    names ops, layers or files that are not there, or holds values that contradict each other.
    Keras reports a malformed config as ValueError, TypeError or KeyError; h5py and a SavedModel
    missing its parts as OSError."""
    from google.protobuf.message import DecodeError

    format_errors = (
        DecodeError,
        zipfile.BadZipFile,
        ValueError,  # JSON and Unicode decoding errors too
        TypeError,
        KeyError,
        OSError,
        tf.errors.InvalidArgumentError,
        tf.errors.DataLossError,
        tf.errors.NotFoundError,  # an op this TensorFlow does not register, a missing variables file
        tf.errors.FailedPreconditionError,
    )
    return isinstance(exc, format_errors)


# --- frozen graph -----------------------------------------------------------------------------


def _frozen_graph_source(tf: Any, path: Path, inputs: list[TensorArg], outputs: list[str]) -> SourceModel:
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except Exception as exc:  # protobuf raises DecodeError, or RuntimeError from upb
        raise CorruptModelError(f"{path.name}: not a valid TensorFlow GraphDef ({first_line(exc)})") from exc
    nodes = {node.name: node for node in graph_def.node}
    specs = _frozen_graph_inputs(tf, nodes, inputs)
    output_names = [tensor_name(name) for name in outputs] or _graph_sinks(graph_def)
    for name in output_names:
        _require_node(nodes, name, "output")
    pruned = _graph_function(tf, graph_def, [spec.name for spec in specs], output_names)

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        results = pruned(*[tf.constant(feeds[spec.name]) for spec in specs])
        return [np.asarray(result) for result in _as_list(results)]

    return _tf_source(tf, graph_def, specs, output_names, run)


def _graph_function(tf: Any, graph_def: Any, input_names: list[str], output_names: list[str]) -> Any:
    """A concrete function running a frozen GraphDef from the named inputs to the named outputs."""
    imported = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    return imported.prune(input_names, output_names)


def _with_input_shapes(tf: Any, graph_def: Any, specs: list[TensorSpec]) -> Any:
    """A copy of the graph whose input Placeholders have the specs' shapes (None: unknown)."""
    fixed = tf.compat.v1.GraphDef()
    fixed.CopyFrom(graph_def)
    shapes = {node_name(spec.name): spec.shape for spec in specs}
    for node in fixed.node:
        if node.op == "Placeholder" and node.name in shapes:
            node.attr["shape"].shape.CopyFrom(tf.TensorShape(list(shapes[node.name])).as_proto())
    return fixed


def _frozen_graph_inputs(tf: Any, nodes: dict, inputs: list[TensorArg]) -> list[TensorSpec]:
    named = inputs or [TensorArg(name) for name, node in nodes.items() if node.op == "Placeholder"]
    if not named:
        raise ModelError("the graph has no Placeholder inputs; name them with --inputs NAME[:shape]")
    specs = []
    for arg in named:
        node = _require_node(nodes, arg.name, "input")
        dtype = tf.dtypes.as_dtype(node.attr["dtype"].type).as_numpy_dtype if "dtype" in node.attr else None
        shape = arg.shape or _placeholder_shape(node)
        specs.append(TensorSpec(tensor_name(arg.name), shape, np.dtype(dtype or np.float32).name))
    return specs


def _placeholder_shape(node: Any) -> tuple[int | None, ...]:
    shape = node.attr["shape"].shape
    return tuple(None if dim.size < 0 else dim.size for dim in shape.dim)


def _graph_sinks(graph_def: Any) -> list[str]:
    consumed = {node_name(name) for node in graph_def.node for name in node.input}
    sinks = [
        f"{node.name}:0"
        for node in graph_def.node
        if node.name not in consumed and node.op not in NON_OUTPUT_OPS
    ]
    if not sinks:
        raise ModelError("no output tensors found in the graph; name them with --outputs NAME")
    return sinks


def _require_node(nodes: dict, tensor: str, role: str) -> Any:
    node = nodes.get(node_name(tensor))
    if node is None:
        raise ModelError(f"{role} {tensor!r} is not a node of the graph")
    return node


# --- SavedModel and Keras: both become a concrete function, then a frozen graph ----------------


def _saved_model_source(tf: Any, path: Path, inputs: list[TensorArg], outputs: list[str]) -> SourceModel:
    loaded = tf.saved_model.load(str(path))
    signatures = dict(loaded.signatures)
    if not signatures:
        raise ModelError(f"{path.name}: the SavedModel has no signatures to serve")
    signature = signatures.get("serving_default") or next(iter(signatures.values()))
    keyword_specs = signature.structured_input_signature[1]

    def call(arrays: list[np.ndarray]) -> Any:
        # The signature takes keyword arguments; the frozen inputs follow their sorted order.
        return signature(**dict(zip(sorted(keyword_specs), arrays, strict=True)))

    return _function_source(tf, signature, call, inputs, outputs, keep=loaded)


def _keras_source(tf: Any, path: Path, inputs: list[TensorArg], outputs: list[str]) -> SourceModel:
    import keras

    model = keras.models.load_model(str(path), compile=False)
    specs = [tf.TensorSpec(tensor.shape, tensor.dtype, name=tensor.name) for tensor in model.inputs]

    function = tf.function(
        lambda *args: model(list(args) if len(args) > 1 else args[0], training=False)
    ).get_concrete_function(*specs)

    def call(arrays: list[np.ndarray]) -> Any:
        return function(*[tf.constant(array) for array in arrays])  # graph mode, as served

    return _function_source(tf, function, call, inputs, outputs, keep=model)


def _function_source(
    tf: Any, function: Any, call: Callable, inputs: list[TensorArg], outputs: list[str], keep: Any
) -> SourceModel:
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(function)
    all_outputs = [tensor.name for tensor in frozen.outputs]
    selected = select_outputs(all_outputs, [tensor_name(name) for name in outputs])
    specs = _function_inputs(frozen, inputs)

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        _ = keep  # the loaded model must outlive its functions
        results = [np.asarray(r) for r in tf.nest.flatten(call([feeds[s.name] for s in specs]))]
        return [results[all_outputs.index(name)] for name in selected]

    return _tf_source(tf, frozen.graph.as_graph_def(), specs, selected, run)


def _function_inputs(frozen: Any, inputs: list[TensorArg]) -> list[TensorSpec]:
    declared = [
        TensorSpec(tensor.name, tuple(tensor.shape.as_list()), tensor.dtype.as_numpy_dtype().dtype.name)
        for tensor in frozen.inputs
    ]
    return with_request_shapes(declared, [TensorArg(tensor_name(arg.name), arg.shape) for arg in inputs])


def _tf_source(
    tf: Any, graph_def: Any, specs: list[TensorSpec], output_names: list[str], run: Callable
) -> SourceModel:
    def write_onnx(target: Path) -> None:
        import tf2onnx

        tf2onnx.convert.from_graph_def(
            graph_def,
            input_names=[spec.name for spec in specs],
            output_names=output_names,
            opset=ONNX_OPSET,
            output_path=str(target),
        )

    def tf_function(fixed: list[TensorSpec] | None = None) -> Any:
        """The graph as a function; ``fixed`` gives its inputs these shapes (a fixed-shape target)."""
        graph = graph_def if fixed is None else _with_input_shapes(tf, graph_def, fixed)
        return _graph_function(tf, graph, [spec.name for spec in specs], output_names)

    # The report names what the baseline ran on: TensorFlow uses a GPU only where its CUDA build is installed.
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    runtime = f"tensorflow {tf.__version__} ({device})"
    return SourceModel(
        specs, output_names, run, write_onnx, runtime=runtime, tf_function=tf_function, framework="tensorflow"
    )


FORMATS = (ModelFormat.FROZEN_GRAPH, ModelFormat.SAVED_MODEL, ModelFormat.KERAS)
_LOADERS = {
    ModelFormat.FROZEN_GRAPH: _frozen_graph_source,
    ModelFormat.SAVED_MODEL: _saved_model_source,
    ModelFormat.KERAS: _keras_source,
}


def _as_list(results: Any) -> list:
    return list(results) if isinstance(results, (list, tuple)) else [results]
