"""What every source framework hands the rest of the worker: a SourceModel, the reference every
variant is verified against. Imports no framework."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from farm.core.calibfile import samples_key
from farm.core.errors import ModelError
from farm.core.modelfile import TensorArg, TensorSpec, shape_text

ONNX_OPSET = 17


@dataclass(frozen=True)
class SourceRequest:
    """What the job says about its model beyond the file: ``--inputs``, ``--outputs``, and whether
    its owner allowed a format that unpickles (it runs code from the file on the worker)."""

    inputs: list[TensorArg] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    allow_pickle: bool = False


class SourceModel:
    """A model's inputs, outputs, a way to run it, and ways to turn it into ONNX or a TF function."""

    def __init__(
        self,
        inputs: list[TensorSpec],
        output_names: list[str],
        run: Callable[[dict[str, np.ndarray]], list[np.ndarray]],
        write_onnx: Callable[[Path], object],
        runtime: str,
        tf_function: Callable[..., Any] | None = None,
        framework: str = "",
    ) -> None:
        self.inputs = inputs
        self.output_names = output_names
        self.run = run
        self.write_onnx = write_onnx
        self.runtime = runtime
        # A TensorFlow concrete function over the frozen graph (for the TFLite converter);
        # None when the source is not a TensorFlow model.
        self.tf_function = tf_function
        # What the submitted model is native to: "tensorflow", "onnx", "pytorch", "scikit-learn"...
        self.framework = framework or ("tensorflow" if tf_function is not None else "onnx")
        self.path = Path()  # the submitted model file or folder; set by load_source
        self.request = SourceRequest()  # what the job said of it; set by load_source
        self.format = ""  # its farm.core.modelfile.ModelFormat value; set by load_source
        self.scratch = Path()  # where files derived from the model go; set by load_source
        self.notes: list[str] = []  # what its native row must say once (a deprecated format...)
        # Rows (a tabular model's) are timed up to FARM_BENCH_MAX_ROWS, not FARM_BENCH_MAX_BATCH.
        self.tabular = False
        # Outputs whose batch is not on axis 0 (a recurrent model's next state): name -> axis.
        self.output_batch_axes: dict[str, int] = {}
        self.shapes_unknown: list[str] = []  # inputs whose rank the model does not declare (TorchScript)
        # Inputs whose unknown dimensions (besides the batch) were taken from the sample files:
        # fixed-shape targets (TFLite, the DPU) are fixed to them and say so.
        self.shapes_from_samples: dict[str, tuple[int | None, ...]] = {}
        self._onnx: Path | None = None

    def onnx(self) -> Path:
        """The model as ONNX, exported once and shared by every backend that starts from ONNX."""
        if self._onnx is None or not self._onnx.exists():
            path = self.scratch / "source.onnx"
            self.write_onnx(path)
            self._onnx = path
        return self._onnx

    def reload_details(self) -> dict[str, Any]:
        """What loading it again elsewhere takes (a scoring worker serving the native model)."""
        return {
            "model_format": self.format,
            "inputs": [TensorArg(spec.name, spec.shape).to_json() for spec in self.inputs],
            "outputs": self.output_names,
            "allow_pickle": self.request.allow_pickle,
        }


def select_outputs(available: list[str], wanted: list[str]) -> list[str]:
    """The outputs ``--outputs`` names (all of them when it names none), refusing one the model
    lacks."""
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise ModelError(f"no output named {', '.join(unknown)} (the model has: {', '.join(available)})")
    return wanted or available


def with_request_shapes(specs: list[TensorSpec], named: list[TensorArg]) -> list[TensorSpec]:
    """The inputs with the shapes ``--inputs`` gives them, refusing a name the model lacks."""
    shapes = {arg.name: arg.shape for arg in named}
    unknown = set(shapes) - {spec.name for spec in specs}
    if unknown:
        have = ", ".join(spec.name for spec in specs)
        raise ModelError(f"no input named {', '.join(sorted(unknown))} (the model has: {have})")
    return [replace(spec, shape=shapes.get(spec.name) or spec.shape) for spec in specs]


def rename_outputs(model: Any, names: dict[str, str]) -> None:
    """Rename the graph outputs of an ONNX ModelProto in place, wherever the graph uses them (a
    converter may use the same name inside, for a pipeline step's output)."""
    outputs = {output.name for output in model.graph.output}
    renamed = {old: new for old, new in names.items() if old in outputs}
    for node in model.graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
        node.output[:] = [renamed.get(name, name) for name in node.output]
    for output in model.graph.output:
        output.name = renamed.get(output.name, output.name)


def fill_from_samples(source: SourceModel, sample_shapes: dict[str, tuple[int, ...]]) -> None:
    """Give the source's inputs the sample files' sizes wherever the model leaves a dimension
    besides the batch unknown (or, for TorchScript, its whole shape). An input the samples do not
    cover keeps its unknowns; one without even a rank is refused."""
    filled = []
    for spec in source.inputs:
        sample = _sample_shape(spec.name, sample_shapes, len(source.inputs))
        unranked = spec.name in source.shapes_unknown
        if unranked and sample is None:
            raise ModelError(
                f"input {spec.name}: the model does not declare its shape; give it with "
                f"--inputs {spec.name}:?,... or give samples with --calib"
            )
        if sample is None or not (unranked or _fillable(spec, sample)):
            filled.append(spec)
            continue
        known = (None, *sample[1:]) if unranked else spec.sample_shape
        filled_dims = (s if d is None else d for d, s in zip(known[1:], sample[1:], strict=True))
        fixed = spec.with_sample_shape((known[0], *filled_dims))
        source.shapes_from_samples[spec.name] = fixed.shape
        filled.append(fixed)
    source.inputs = filled


def _fillable(spec: TensorSpec, sample: tuple[int, ...]) -> bool:
    shape = spec.sample_shape
    return spec.batch_axis is not None and len(shape) == len(sample) and any(d is None for d in shape[1:])


def _sample_shape(name: str, shapes: dict[str, tuple[int, ...]], inputs: int) -> tuple[int, ...] | None:
    key = samples_key(name, shapes, inputs)
    return None if key is None else shapes[key]


def fixed_shape_notes(source: SourceModel) -> list[str]:
    """What a fixed-shape variant says when the samples fixed dimensions the model left open."""
    return [
        f"input {name} fixed to {shape_text(shape)}, the samples' shape (the model leaves it open)"
        for name, shape in source.shapes_from_samples.items()
    ]
