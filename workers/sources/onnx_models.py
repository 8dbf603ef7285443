"""ONNX models as sources: already converted; their own unoptimised run is the reference.

Inputs and outputs keep where the model puts its batch (farm.core.signature reads it from the
dimensions' symbols): a recurrent state ``(2, batch, 64)`` is batched on axis 1, a rank-0 input
is a scalar."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from farm.core.errors import ModelError
from farm.core.modelfile import ModelFormat, TensorSpec
from farm.core.signature import onnx_output_batch_axes, onnx_signature
from workers.sources.base import SourceModel, SourceRequest

FORMATS = (ModelFormat.ONNX,)


def load(path: Path, fmt: ModelFormat, request: SourceRequest) -> SourceModel:
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    graph = onnx.load(str(path), load_external_data=False).graph  # read once for inputs and outputs
    specs = onnx_signature(graph, request.inputs) or _session_inputs(session, request)
    output_names = [o.name for o in session.get_outputs()]

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return list(session.run(output_names, feeds))

    source = SourceModel(
        specs,
        output_names,
        run,
        lambda target: shutil.copyfile(path, target),
        f"onnxruntime {ort.__version__} (CPUExecutionProvider, unoptimised)",
        framework="onnx",
    )
    source.output_batch_axes = onnx_output_batch_axes(graph)
    return source


def _session_inputs(session: object, request: SourceRequest) -> list[TensorSpec]:
    """An input without a declared shape: what ONNX Runtime makes of it, batched on axis 0."""
    shapes = {arg.name: arg.shape for arg in request.inputs}
    specs = []
    for item in session.get_inputs():  # type: ignore[attr-defined]
        shape = shapes.get(item.name) or tuple(d if isinstance(d, int) else None for d in item.shape)
        specs.append(TensorSpec(item.name, shape, onnx_numpy_dtype(item.type)))
    if not specs:
        raise ModelError("the ONNX model has no inputs")
    return specs


def onnx_numpy_dtype(onnx_type: str) -> str:
    name = onnx_type.removeprefix("tensor(").removesuffix(")")
    return {"float": "float32", "double": "float64", "float16": "float16"}.get(name, name)
