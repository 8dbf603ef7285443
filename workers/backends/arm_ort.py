"""ARM CPUs through ONNX Runtime: the arm class's second runtime beside TFLite, so that every
submitted format reaches arm (ONNX, PyTorch, scikit-learn, XGBoost, LightGBM). FP32 with the
graph optimisations saved in, dynamically quantized MatMul/Gemm, and INT8 static QDQ by the same
recipes as the x86 cpu class (ARM's int8 dot products do not saturate as pre-VNNI x86 does).

On an x86 host (a farm without ARM machines testing the path) it runs on that CPU, standing in:
the variant's note says so, and its timing is not an ARM CPU's."""

from __future__ import annotations

import platform
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from farm.core.targets import TARGETS
from farm.core.toolchains import ONNXRUNTIME, package_versions
from workers.backends.base import DEFAULT_RECIPE, Recipe, TargetBackend, unsupported_precision
from workers.backends.cpu import int8_qdq_variant, optimise
from workers.quantize import CPU_RECIPES
from workers.runtime import BuiltVariant, Runner, onnxruntime_runner

if TYPE_CHECKING:
    from farm.core.settings import FarmSettings
    from workers.calibration import Calibration
    from workers.sources import SourceModel

ARM_MACHINES = ("aarch64", "arm64")
STAND_IN_NOTE = "built and timed on an x86 CPU standing in for an ARM one ({machine}): not an ARM CPU's speed"
DYNAMIC_OPS = ["MatMul", "Gemm"]


class ArmOrtBackend(TargetBackend):
    target = TARGETS["arm-ort"]

    def toolchain(self, settings: FarmSettings) -> str:
        versions = package_versions([*ONNXRUNTIME, "onnx", "tf2onnx", "tensorflow-cpu", "tensorflow"])
        return f"{versions}, {platform.machine()}"

    def convert(
        self,
        source: SourceModel,
        precision: str,
        calibration: Calibration,
        workdir: Path,
        settings: FarmSettings,
        recipe: Recipe = DEFAULT_RECIPE,
    ) -> BuiltVariant:
        import onnxruntime as ort

        runtime = f"onnxruntime {ort.__version__} ({platform.machine()})"
        notes = stand_in_notes()
        if precision == "fp32":
            return BuiltVariant(
                optimise(source.onnx(), workdir / "model.onnx"), "onnx", "fp32", runtime, notes
            )
        if precision == "dynamic":
            path = quantize_dynamic(source.onnx(), workdir / "model_dynamic.onnx")
            return BuiltVariant(path, "onnx", "dynamic", runtime, notes, {"int8": "dynamic MatMul/Gemm"})
        if precision == "int8":
            # u8 activations: what ONNX Runtime's ARM kernels take fastest (u8 x s8 dot products).
            built = int8_qdq_variant(source, calibration, workdir, "u8", recipe, runtime)
            return replace(built, notes=built.notes + notes)
        raise unsupported_precision(self.name, precision)

    def recipes(self, precision: str) -> tuple[Recipe, ...]:
        return CPU_RECIPES if precision == "int8" else (DEFAULT_RECIPE,)

    def load(self, variant: BuiltVariant, outputs: list[str]) -> Runner:
        return onnxruntime_runner(variant.path, outputs)


def stand_in_notes() -> list[str]:
    machine = platform.machine()
    return [] if machine.lower() in ARM_MACHINES else [STAND_IN_NOTE.format(machine=machine)]


def quantize_dynamic(source_onnx: Path, target: Path) -> Path:
    """INT8 weights of every MatMul and Gemm, activations quantized per batch as it runs."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    from farm.core.errors import ConversionError, first_line
    from workers.quantize import prepare_for_quantization, quantizing_options, refuse_if_nothing_quantized

    quantizing_options(source_onnx)  # refuses a graph with nothing to quantize
    try:
        ort_quantize_dynamic(
            str(prepare_for_quantization(source_onnx)),
            str(target),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=DYNAMIC_OPS,
        )
    except Exception as exc:
        raise ConversionError(f"dynamic quantization failed: {first_line(exc)}") from exc
    refuse_if_nothing_quantized(target)
    return target


BACKEND = ArmOrtBackend()
