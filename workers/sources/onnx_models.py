"""ONNX models as sources: already converted; their own unoptimised run is the reference."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from farm.core.modelfile import ModelFormat, TensorSpec
from workers.sources.base import SourceModel, SourceRequest

FORMATS = (ModelFormat.ONNX,)


def load(path: Path, fmt: ModelFormat, request: SourceRequest) -> SourceModel:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    shapes = {arg.name: arg.shape for arg in request.inputs}
    specs = [
        TensorSpec(
            i.name,
            shapes.get(i.name) or tuple(d if isinstance(d, int) else None for d in i.shape),
            onnx_numpy_dtype(i.type),
        )
        for i in session.get_inputs()
    ]
    output_names = [o.name for o in session.get_outputs()]

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return list(session.run(output_names, feeds))

    return SourceModel(
        specs,
        output_names,
        run,
        lambda target: shutil.copyfile(path, target),
        f"onnxruntime {ort.__version__} (CPUExecutionProvider, unoptimised)",
        framework="onnx",
    )


def onnx_numpy_dtype(onnx_type: str) -> str:
    name = onnx_type.removeprefix("tensor(").removesuffix(")")
    return {"float": "float32", "double": "float64", "float16": "float16"}.get(name, name)
