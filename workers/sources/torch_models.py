"""PyTorch models as sources.

- An ExportedProgram (``torch.export.save``, ``.pt2``): run by PyTorch as the baseline, exported to
  ONNX by ``torch.onnx.export(..., dynamo=True)``. Its inputs' shapes come from the program, a
  dimension exported as dynamic being unknown.
- TorchScript (``torch.jit.save``, ``.pt``): deprecated upstream, still read; its inputs' shapes
  come from ``--inputs`` or the sample files, and it is exported by the TorchScript exporter.

Neither unpickles arbitrary objects: torch.export.load reads weights only, and TorchScript
archives hold code that only the TorchScript interpreter runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from farm.core.errors import ConversionError, ModelError, first_line
from farm.core.modelfile import PT2_HOW, ModelFormat, TensorSpec
from workers.sources.base import ONNX_OPSET, SourceModel, SourceRequest

FORMATS = (ModelFormat.TORCH_EXPORT, ModelFormat.TORCHSCRIPT)
TORCHSCRIPT_NOTE = f"TorchScript is deprecated upstream (PyTorch); export the model instead: {PT2_HOW}"
EXAMPLE_BATCH = 2  # the example the exporters trace with; the batch axis stays dynamic


def load(path: Path, fmt: ModelFormat, request: SourceRequest) -> SourceModel:
    import torch

    try:
        if fmt is ModelFormat.TORCH_EXPORT:
            program = torch.export.load(str(path))
            return _exported_source(torch, program, request)
        module = torch.jit.load(str(path), map_location="cpu").eval()
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"{path.name}: PyTorch could not load it ({first_line(exc)})") from exc
    source = _script_source(torch, module, request)
    source.notes.append(TORCHSCRIPT_NOTE)
    return source


def _exported_source(torch: Any, program: Any, request: SourceRequest) -> SourceModel:
    user_inputs = list(program.graph_signature.user_inputs)
    placeholders = {node.name: node for node in program.graph.nodes if node.op == "placeholder"}
    specs = []
    for name in user_inputs:
        value = placeholders[name].meta["val"]
        shape = tuple(dim if isinstance(dim, int) else None for dim in value.shape)
        specs.append(TensorSpec(name, shape, _numpy_dtype(value.dtype)))
    outputs = [f"output_{index}" for index in range(len(program.graph_signature.user_outputs))]
    module = program.module()

    def write_onnx(target: Path) -> None:
        try:
            exported = torch.onnx.export(
                program,
                _examples(torch, source.inputs),
                input_names=user_inputs,
                output_names=outputs,
                opset_version=max(ONNX_OPSET, 18),
                dynamo=True,
                verbose=False,
            )
            exported.save(str(target))
        except Exception as exc:
            raise ConversionError(f"torch.onnx.export (dynamo) failed: {first_line(exc)}") from exc

    source = SourceModel(
        _with_request_shapes(specs, request),
        _selected(outputs, request),
        _runner(torch, module, outputs, request),
        write_onnx,
        f"torch {torch.__version__} (ExportedProgram, CPU)",
        framework="pytorch",
    )
    return source


def _script_source(torch: Any, module: Any, request: SourceRequest) -> SourceModel:
    names = [argument.name for argument in module.forward.schema.arguments[1:]]  # after self
    shapes = {arg.name: arg.shape for arg in request.inputs if arg.shape is not None}
    for name in shapes:
        if name not in names:
            raise ModelError(f"no input named {name} (the model has: {', '.join(names)})")
    specs = [TensorSpec(name, shapes.get(name) or (), "float32") for name in names]
    outputs = request.outputs or ["output_0"]  # a TorchScript signature does not say how many

    def write_onnx(target: Path) -> None:
        dynamic = {spec.name: {0: "batch"} for spec in source.inputs}
        try:
            torch.onnx.export(
                module,
                tuple(_examples(torch, source.inputs)),
                str(target),
                input_names=names,
                output_names=source.output_names,
                dynamic_axes=dynamic,
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
        except Exception as exc:
            raise ConversionError(f"torch.onnx.export (TorchScript) failed: {first_line(exc)}") from exc

    source = SourceModel(
        specs,
        outputs,
        _runner(torch, module, None, request),
        write_onnx,
        f"torch {torch.__version__} (TorchScript, CPU)",
        framework="pytorch",
    )
    source.shapes_unknown = [spec.name for spec in specs if not spec.shape]
    return source


def _runner(torch: Any, module: Any, outputs: list[str] | None, request: SourceRequest) -> Any:
    selected = None if outputs is None else [outputs.index(name) for name in _selected(outputs, request)]

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with torch.inference_mode():
            results = module(*[torch.from_numpy(np.ascontiguousarray(array)) for array in feeds.values()])
        flat = [np.asarray(t.detach().numpy()) for t in torch.utils._pytree.tree_leaves(results)]
        return flat if selected is None else [flat[index] for index in selected]

    return run


def _selected(outputs: list[str], request: SourceRequest) -> list[str]:
    unknown = [name for name in request.outputs if name not in outputs]
    if unknown:
        raise ModelError(f"no output named {', '.join(unknown)} (the model has: {', '.join(outputs)})")
    return request.outputs or outputs


def _with_request_shapes(specs: list[TensorSpec], request: SourceRequest) -> list[TensorSpec]:
    shapes = {arg.name: arg.shape for arg in request.inputs}
    unknown = set(shapes) - {spec.name for spec in specs}
    if unknown:
        have = ", ".join(spec.name for spec in specs)
        raise ModelError(f"no input named {', '.join(sorted(unknown))} (the model has: {have})")
    return [TensorSpec(s.name, shapes.get(s.name) or s.shape, s.dtype) for s in specs]


def _examples(torch: Any, specs: list[TensorSpec]) -> tuple:
    from workers.calibration import random_feeds

    feeds = random_feeds(specs, EXAMPLE_BATCH)
    return tuple(torch.from_numpy(feeds[spec.name]) for spec in specs)


def _numpy_dtype(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")
