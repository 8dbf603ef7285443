"""Xilinx FPGAs (Vitis AI DPUs): INT8 QDQ ONNX with symmetric, per-tensor, power-of-two scales,
made by AMD Quark's XINT8 configuration, the DPU's quantization scheme.

The variant runs on ONNX Runtime's VitisAI execution provider where the Vitis AI runtime is
installed; anywhere else the same quantized graph is verified and timed on the CPU provider, and
the variant says that the DPU compile and the on-device run were not done.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from farm.core.errors import ConversionError, first_line
from farm.core.targets import TARGETS
from farm.core.toolchains import ONNXRUNTIME, package_versions
from workers.backends.base import DEFAULT_RECIPE, Recipe, TargetBackend, unsupported_precision
from workers.quantize import (
    CalibrationReader,
    float_nodes,
    float_notes,
    prepare_for_quantization,
    with_fixed_inputs,
    working_directory,
)
from workers.runtime import BuiltVariant, Runner, onnxruntime_runner

if TYPE_CHECKING:
    from farm.core.settings import FarmSettings
    from workers.calibration import Calibration
    from workers.sources import SourceModel

VITIS_PROVIDER = "VitisAIExecutionProvider"
NO_DPU_NOTE = (
    "DPU compile and on-device run not done: ONNX Runtime has no VitisAIExecutionProvider here "
    "(install AMD's Vitis AI / Ryzen AI runtime); verified and timed on the CPU provider, "
    "its Q/DQ nodes run as written"
)

# How power-of-two scales are chosen. MinMSE (XINT8's default) searches the scale with the least
# error per tensor (about 1.6 s per calibration sample on ResNet50 here); NonOverflow takes the
# power of two nearest the observed range (all 32 samples in 9 s), rounding to the nearest, so it
# may clip (Quark 0.13): on a trained digits CNN it lost 1.1 points of accuracy, MinMSE 0.2.
QUARK_METHODS = {"nonoverflow": "NonOverflow", "minmse": "MinMSE"}  # FARM_FPGA_CALIBRATION -> Quark

log = logging.getLogger(__name__)


class FpgaBackend(TargetBackend):
    target = TARGETS["fpga"]

    def toolchain(self, settings: FarmSettings) -> str:
        versions = package_versions(
            ["amd-quark", *ONNXRUNTIME, "onnx", "tf2onnx", "tensorflow-cpu", "tensorflow"]
        )
        return f"{versions}, calibration {settings.fpga_calibration}"

    def convert(
        self,
        source: SourceModel,
        precision: str,
        calibration: Calibration,
        workdir: Path,
        settings: FarmSettings,
        recipe: Recipe = DEFAULT_RECIPE,
    ) -> BuiltVariant:
        if precision != "int8":
            raise unsupported_precision(self.name, precision)
        target = workdir / "model_xint8.onnx"
        from workers.sources.base import fixed_shape_notes

        # The DPU compiles for fixed shapes: dimensions the model leaves open take the samples'.
        prepared = with_fixed_inputs(prepare_for_quantization(source.onnx()), source.shapes_from_samples)
        method = recipe.options.get("method", settings.fpga_calibration)
        excluded = float_nodes(source.onnx(), recipe)
        _quantize_xint8(prepared, calibration, target, method, excluded, recipe.options.get("fast_finetune"))
        details: dict = {"quantizer": f"amd-quark XINT8, {method} power-of-two calibration"}
        if excluded:
            details["fp32_nodes"] = excluded  # run by the CPU beside the DPU
        if recipe.options.get("fast_finetune"):
            details["quantizer"] += ", AdaQuant fast finetune"
        notes = (
            ([] if has_vitis_provider() else [NO_DPU_NOTE]) + float_notes(details) + fixed_shape_notes(source)
        )
        return BuiltVariant(target, "onnx", "int8", _runtime_name(), notes, details)

    def recipes(self, precision: str) -> tuple[Recipe, ...]:
        return FPGA_RECIPES

    def load(self, variant: BuiltVariant, outputs: list[str]) -> Runner:
        if has_vitis_provider():  # ONNX Runtime runs what the DPU cannot on its CPU provider
            return onnxruntime_runner(variant.path, outputs, VITIS_PROVIDER)
        # Standing in for the DPU, the CPU computes the DPU's int8 arithmetic, not its own.
        return onnxruntime_runner(variant.path, outputs, as_written=True)


# The fpga backend's recipes, in the order a failing variant tries them (workers/convert.py). The
# DPU takes per-tensor power-of-two scales only, so no per-channel recipe; what it cannot run well
# (a detector's head) runs on the CPU beside it, as the Vitis AI flow partitions a graph.
FPGA_RECIPES = (
    Recipe("FARM_FPGA_CALIBRATION's power-of-two method"),  # the default: MinMSE unless set
    # A detector's scores died under one power-of-two scale shared with its pixel boxes, whatever
    # the method; its head on the CPU kept every channel within 0.21 of its spread with MinMSE.
    Recipe("output head in FP32", {"float_head": True}),
    # Fast finetune learns each layer's rounding on the calibration samples: the slowest recipe
    # (seconds on a small CNN, minutes on a ResNet50), so late, and bounded by the search's time.
    Recipe(
        "MinMSE calibration, AdaQuant fast finetune",
        {"method": "minmse", "fast_finetune": {"NumIterations": 200}},
    ),
    Recipe("NonOverflow power-of-two calibration", {"method": "nonoverflow"}),
)


def _quantize_xint8(
    source_onnx: Path,
    calibration: Calibration,
    target: Path,
    method: str,
    excluded: list[str] | None = None,
    fast_finetune: dict | None = None,
) -> None:
    from quark.onnx import ModelQuantizer, PowerOfTwoMethod
    from quark.onnx.quantization.config import Config, get_default_config
    from quark.onnx.quantization.config.custom_config import DEFAULT_ADAQUANT_PARAMS

    xint8 = get_default_config("XINT8")
    xint8.calibrate_method = getattr(PowerOfTwoMethod, QUARK_METHODS[method])
    # Its summary is a table on stdout plus a quantized_info.csv appended to the working directory.
    xint8.print_summary = False
    if excluded:
        xint8.nodes_to_exclude = list(excluded)
    if fast_finetune:
        xint8.include_fast_ft = True
        xint8.extra_options["FastFinetune"] = {**DEFAULT_ADAQUANT_PARAMS, **fast_finetune}
    quantizer = ModelQuantizer(Config(global_quant_config=xint8))
    try:
        # Quark prints progress bars and summaries on stdout; the worker's log stays readable.
        with working_directory(target.parent), contextlib.redirect_stdout(io.StringIO()):
            quantizer.quantize_model(str(source_onnx), str(target), CalibrationReader(calibration))
    except Exception as exc:
        raise ConversionError(f"Quark XINT8 quantization failed: {first_line(exc)}") from exc
    if not target.exists():
        raise ConversionError("Quark XINT8 quantization wrote no model")


def has_vitis_provider() -> bool:
    import onnxruntime as ort

    return VITIS_PROVIDER in ort.get_available_providers()


def _runtime_name() -> str:
    import onnxruntime as ort

    provider = VITIS_PROVIDER if has_vitis_provider() else "CPUExecutionProvider"
    return f"onnxruntime {ort.__version__} ({provider})"


BACKEND = FpgaBackend()
