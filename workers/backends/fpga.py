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
from workers.backends.base import TargetBackend, unsupported_precision
from workers.quantize import CalibrationReader, prepare_for_quantization
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

# How power-of-two scales are chosen. XINT8's default, MinMSE, searches the scale with the least
# error per tensor (about 1.6 s per calibration sample on ResNet50 here); NonOverflow takes the
# smallest power of two that holds the observed range (all 32 samples in 9 s).
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
    ) -> BuiltVariant:
        if precision != "int8":
            raise unsupported_precision(self.name, precision)
        target = workdir / "model_xint8.onnx"
        prepared = prepare_for_quantization(source.onnx())
        method = settings.fpga_calibration
        _quantize_xint8(prepared, calibration, target, method)
        notes = [] if has_vitis_provider() else [NO_DPU_NOTE]
        details = {"quantizer": f"amd-quark XINT8, {method} power-of-two calibration"}
        return BuiltVariant(target, "onnx", "int8", _runtime_name(), notes, details)

    def load(self, variant: BuiltVariant, outputs: list[str]) -> Runner:
        if has_vitis_provider():  # ONNX Runtime runs what the DPU cannot on its CPU provider
            return onnxruntime_runner(variant.path, outputs, VITIS_PROVIDER)
        # Standing in for the DPU, the CPU computes the DPU's int8 arithmetic, not its own.
        return onnxruntime_runner(variant.path, outputs, as_written=True)


def _quantize_xint8(source_onnx: Path, calibration: Calibration, target: Path, method: str) -> None:
    from quark.onnx import ModelQuantizer, PowerOfTwoMethod
    from quark.onnx.quantization.config import Config, get_default_config

    xint8 = get_default_config("XINT8")
    xint8.calibrate_method = getattr(PowerOfTwoMethod, QUARK_METHODS[method])
    # Its summary is a table on stdout plus a quantized_info.csv appended to the working directory.
    xint8.print_summary = False
    quantizer = ModelQuantizer(Config(global_quant_config=xint8))
    try:
        # Quark prints progress bars and summaries on stdout; the worker's log stays readable.
        with contextlib.redirect_stdout(io.StringIO()):
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
