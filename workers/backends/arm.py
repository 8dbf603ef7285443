"""ARM CPUs: TensorFlow Lite, run by LiteRT with XNNPACK (TensorFlow's own interpreter where LiteRT
is not installed). FP32, FP16 weights, dynamic-range INT8 weights, and full INT8 calibrated on a
representative dataset. Production arm workers run on aarch64; the variant is the same file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.core.errors import ConversionError, UnsupportedModelError, first_line
from farm.core.targets import TARGETS
from farm.core.toolchains import import_tensorflow, package_versions
from workers.backends.base import TargetBackend, unsupported_precision
from workers.runtime import BuiltVariant, Runner

if TYPE_CHECKING:
    import numpy as np

    from farm.core.settings import FarmSettings
    from workers.calibration import Calibration
    from workers.sources import SourceModel


class ArmBackend(TargetBackend):
    target = TARGETS["arm"]

    def toolchain(self, settings: FarmSettings) -> str:
        return package_versions(["tensorflow-cpu", "tensorflow", "ai-edge-litert"])

    def convert(
        self,
        source: SourceModel,
        precision: str,
        calibration: Calibration,
        workdir: Path,
        settings: FarmSettings,
    ) -> BuiltVariant:
        if source.tf_function is None:
            raise UnsupportedModelError("arm variants are converted from TensorFlow models, not ONNX")
        tf = import_tensorflow()
        converter = tf.lite.TFLiteConverter.from_concrete_functions([source.tf_function()])
        _configure(tf, converter, precision, calibration)
        try:
            flatbuffer = converter.convert()
        except Exception as exc:
            raise ConversionError(f"TFLite {precision} conversion failed: {first_line(exc)}") from exc
        target = workdir / f"model_{precision}.tflite"
        target.write_bytes(flatbuffer)
        return BuiltVariant(target, "tflite", precision, interpreter_name())

    def load(self, variant: BuiltVariant, outputs: list[str]) -> Runner:
        return TfliteRunner(variant.path, outputs)


def _configure(tf: Any, converter: Any, precision: str, calibration: Calibration) -> None:
    if precision == "fp32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        # Integer-only kernels; inputs and outputs stay float so the variant is a drop-in.
        converter.representative_dataset = lambda: (
            list(feed.values()) for feed in calibration.single_samples()
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif precision != "dynamic":
        raise unsupported_precision("arm", precision)


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return import_tensorflow().lite.Interpreter
    return Interpreter


def interpreter_name() -> str:
    versions = package_versions(["ai-edge-litert"])
    return (
        f"LiteRT ({versions})"
        if versions
        else f"TensorFlow Lite ({package_versions(['tensorflow-cpu', 'tensorflow'])})"
    )


class TfliteRunner:
    """Runs a .tflite model on any batch size: inputs are resized when the batch changes.

    Tensors are matched by name, not position: the TFLite converter does not promise to keep a
    model's input or output order. It names a tensor ``x:0`` of the graph ``x`` (and ``x:1``
    stays ``x:1``).
    """

    def __init__(self, path: Path, outputs: list[str]) -> None:
        self.interpreter = _interpreter_class()(model_path=str(path), num_threads=os.cpu_count() or 1)
        self.interpreter.allocate_tensors()
        self.output_indices = _indices_by_name(self.interpreter.get_output_details(), outputs, "output")
        self.input_indices: dict[str, int] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}

    def __call__(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if not self.input_indices:
            indices = _indices_by_name(self.interpreter.get_input_details(), list(feeds), "input")
            self.input_indices = dict(zip(feeds, indices, strict=True))
        shapes = {name: array.shape for name, array in feeds.items()}
        if shapes != self.shapes:
            for name, shape in shapes.items():
                self.interpreter.resize_tensor_input(self.input_indices[name], shape)
            self.interpreter.allocate_tensors()
            self.shapes = shapes
        for name, array in feeds.items():
            self.interpreter.set_tensor(self.input_indices[name], array)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(index) for index in self.output_indices]


def tflite_tensor_name(name: str) -> str:
    """The name the TFLite converter gives a graph tensor: ``x:0`` becomes ``x``."""
    return name.removesuffix(":0")


def _indices_by_name(details: list[dict[str, Any]], names: list[str], role: str) -> list[int]:
    by_name = {detail["name"]: detail["index"] for detail in details}
    missing = [name for name in names if tflite_tensor_name(name) not in by_name]
    if missing:
        raise ConversionError(
            f"the TFLite model has no {role} named {', '.join(map(tflite_tensor_name, missing))} "
            f"(it has {', '.join(by_name)})"
        )
    return [by_name[tflite_tensor_name(name)] for name in names]


BACKEND = ArmBackend()
