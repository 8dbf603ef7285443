"""ARM CPUs: TensorFlow Lite, run by LiteRT with XNNPACK (TensorFlow's own interpreter where LiteRT
is not installed). FP32, FP16 weights, dynamic-range INT8 weights, and full INT8 calibrated on a
representative dataset. Production arm workers run on aarch64; the variant is the same file."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.core.errors import ConversionError, UnsupportedModelError, first_line
from farm.core.targets import TARGETS
from farm.core.toolchains import import_tensorflow, package_versions
from workers.backends.base import DEFAULT_RECIPE, Recipe, TargetBackend, unsupported_precision
from workers.quantize import float_notes, output_head
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
        recipe: Recipe = DEFAULT_RECIPE,
    ) -> BuiltVariant:
        from workers.sources.base import fixed_shape_notes

        if source.tf_function is None:
            raise UnsupportedModelError("arm variants are converted from TensorFlow models, not ONNX")
        tf = import_tensorflow()
        # TFLite and XNNPACK plan for fixed shapes: dimensions the model leaves open are fixed to
        # the samples' (the batch stays resizable).
        function = source.tf_function(source.inputs if source.shapes_from_samples else None)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([function])
        _configure(tf, converter, precision, calibration, recipe)
        details: dict = {}
        try:
            if recipe.options.get("float_head"):
                details["fp32_nodes"] = tflite_head(tf, function)
                flatbuffer = _with_float_nodes(tf, converter, calibration, details["fp32_nodes"])
            else:
                flatbuffer = converter.convert()
        except Exception as exc:
            raise ConversionError(f"TFLite {precision} conversion failed: {first_line(exc)}") from exc
        target = workdir / f"model_{precision}.tflite"
        target.write_bytes(flatbuffer)
        if recipe.options.get("int16_activations"):
            details["int8"] = "int8 weights, int16 activations"
        notes = float_notes(details) + fixed_shape_notes(source)
        return BuiltVariant(target, "tflite", precision, interpreter_name(), notes, details)

    def recipes(self, precision: str) -> tuple[Recipe, ...]:
        return ARM_RECIPES if precision == "int8" else (DEFAULT_RECIPE,)

    def load(self, variant: BuiltVariant, outputs: list[str]) -> Runner:
        return TfliteRunner(variant.path, outputs)


# The arm backend's INT8 recipes, in the order a failing variant tries them (workers/convert.py).
# TFLite's INT8 weights are per-channel already.
ARM_RECIPES = (
    Recipe("full INT8"),  # the default
    # 16-bit activations: TFLite's own answer to activations that 8 bits cannot hold; XNNPACK
    # runs fewer of these kernels, so it is slower than full INT8.
    Recipe("int16 activations (16x8)", {"int16_activations": True}),
    # A detector's head (its last weighted layers and what follows) kept in float.
    Recipe("output head in FP32", {"float_head": True}),
)
TFLITE_WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL"}


def _configure(tf: Any, converter: Any, precision: str, calibration: Calibration, recipe: Recipe) -> None:
    if precision == "fp32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        # Integer-only kernels; inputs and outputs stay float so the variant is a drop-in.
        converter.representative_dataset = _representative(calibration)
        int16 = tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ops = int16 if recipe.options.get("int16_activations") else tf.lite.OpsSet.TFLITE_BUILTINS_INT8
        converter.target_spec.supported_ops = [ops]
    elif precision != "dynamic":
        raise unsupported_precision("arm", precision)


def _representative(calibration: Calibration) -> Callable[[], Iterator[list[np.ndarray]]]:
    return lambda: (list(feed.values()) for feed in calibration.single_samples())


def tflite_head(tf: Any, function: Any) -> list[str]:
    """The output head of the model as TFLite converts it: the tensors of the ops between each
    output and the last weighted op on its way (that op included), what TFLite's quantization
    debugger keeps in float when they are denylisted. ``function``: the model's concrete function."""
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function])
    interpreter = tf.lite.Interpreter(model_content=converter.convert())
    names = {tensor["index"]: tensor["name"] for tensor in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()  # the only listing of a model's ops TFLite offers
    producer = {output: op for op in ops for output in op["outputs"]}
    head = output_head(
        [detail["index"] for detail in interpreter.get_output_details()],
        producer,
        identity=lambda op: op["index"],
        weighted=lambda op: op["op_name"] in TFLITE_WEIGHTED,
        inputs=lambda op: [index for index in op["inputs"] if index >= 0],
    )
    return list(dict.fromkeys(names[index] for op in head for index in op["outputs"]))


def _with_float_nodes(tf: Any, converter: Any, calibration: Calibration, nodes: list[str]) -> bytes:
    """Full INT8 except ``nodes``, left in float by TFLite's quantization debugger."""
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes)
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=_representative(calibration), debug_options=options
    )
    return bytes(debugger.get_nondebug_quantized_model())


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
