"""x86 CPU: ONNX Runtime, FP32 with its graph optimisations saved in, and INT8 static QDQ."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from farm.core.hosts import has_int8_dot_product
from farm.core.targets import TARGETS
from farm.core.toolchains import ONNXRUNTIME, package_versions
from workers.backends.base import DEFAULT_RECIPE, Recipe, TargetBackend, unsupported_precision
from workers.quantize import CPU_RECIPES, float_nodes, float_notes, qdq_types, quantize_qdq
from workers.runtime import BuiltVariant, Runner, onnxruntime_runner

if TYPE_CHECKING:
    from farm.core.settings import FarmSettings
    from workers.calibration import Calibration
    from workers.sources import SourceModel


class CpuBackend(TargetBackend):
    target = TARGETS["cpu"]

    def toolchain(self, settings: FarmSettings) -> str:
        versions = package_versions([*ONNXRUNTIME, "onnx", "tf2onnx", "tensorflow-cpu", "tensorflow"])
        dot_product = "with" if has_int8_dot_product() else "without"
        # A cpu INT8 verdict holds for CPUs like the one that judged it: part of the cache key.
        return f"{versions}, int8 activations {settings.cpu_int8_activations}, {dot_product} INT8 dot product"

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

        runtime = f"onnxruntime {ort.__version__}"
        if precision == "fp32":
            return BuiltVariant(optimise(source.onnx(), workdir / "model.onnx"), "onnx", "fp32", runtime)
        if precision == "int8":
            activations = settings.cpu_int8_activations
            return int8_qdq_variant(source, calibration, workdir, activations, recipe, runtime)
        raise unsupported_precision(self.name, precision)

    def recipes(self, precision: str) -> tuple[Recipe, ...]:
        return CPU_RECIPES if precision == "int8" else (DEFAULT_RECIPE,)

    def load(self, variant: BuiltVariant, outputs: list[str]) -> Runner:
        return onnxruntime_runner(variant.path, outputs)


def int8_qdq_variant(
    source: SourceModel,
    calibration: Calibration,
    workdir: Path,
    activations: str,
    recipe: Recipe,
    runtime: str,
) -> BuiltVariant:
    """An INT8 static QDQ variant for ONNX Runtime's CPU kernels (x86 and ARM), by ``recipe``."""
    excluded = float_nodes(source.onnx(), recipe)
    target = workdir / "model_int8.onnx"
    quantized = quantize_qdq(source.onnx(), calibration, target, activations, recipe, excluded)
    details: dict = {"int8": f"{''.join(qdq_types(activations, recipe))} QDQ"}
    if excluded:
        details["fp32_nodes"] = excluded
    return BuiltVariant(quantized, "onnx", "int8", runtime, float_notes(details), details)


def optimise(source_onnx: Path, target: Path) -> Path:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # EXTENDED, not ALL: ALL adds layout transforms for this very CPU's instruction set,
    # and a variant must run on every x86 worker of the farm.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    ort.InferenceSession(str(source_onnx), options, providers=["CPUExecutionProvider"])
    return target


BACKEND = CpuBackend()
