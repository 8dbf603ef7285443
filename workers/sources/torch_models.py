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
from workers.sources.base import ONNX_OPSET, SourceModel, SourceRequest, select_outputs, with_request_shapes

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
        with_request_shapes(specs, request.inputs),
        select_outputs(outputs, request.outputs),
        _runner(torch, module, user_inputs, outputs, request),
        write_onnx,
        f"torch {torch.__version__} (ExportedProgram, CPU)",
        framework="pytorch",
    )
    return source


def _script_source(torch: Any, module: Any, request: SourceRequest) -> SourceModel:
    names = [argument.name for argument in module.forward.schema.arguments[1:]]  # after self
    # The signature declares no shapes: () until --inputs or the samples give them.
    specs = with_request_shapes([TensorSpec(name, (), "float32") for name in names], request.inputs)
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
        _runner(torch, module, names, None, request),
        write_onnx,
        f"torch {torch.__version__} (TorchScript, CPU)",
        framework="pytorch",
    )
    source.shapes_unknown = [spec.name for spec in specs if not spec.shape]
    return source


def _runner(
    torch: Any, module: Any, inputs: list[str], outputs: list[str] | None, request: SourceRequest
) -> Any:
    """The module on named feeds, positionally in its inputs' order; its outputs flattened, and
    those ``--outputs`` names picked when the program says how many there are."""
    selected = None
    if outputs is not None:
        selected = [outputs.index(name) for name in select_outputs(outputs, request.outputs)]

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        arguments = [torch.from_numpy(np.ascontiguousarray(feeds[name])) for name in inputs]
        with torch.inference_mode():
            results = module(*arguments)
        flat = [np.asarray(t.detach().numpy()) for t in torch.utils._pytree.tree_leaves(results)]
        return flat if selected is None else [flat[index] for index in selected]

    return run


def _examples(torch: Any, specs: list[TensorSpec]) -> tuple:
    from workers.calibration import random_feeds

    feeds = random_feeds(specs, EXAMPLE_BATCH)
    return tuple(torch.from_numpy(feeds[spec.name]) for spec in specs)


def _numpy_dtype(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")
