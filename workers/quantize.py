"""Lower-precision ONNX graphs the backends share: INT8 static quantization into QDQ form with ONNX
Runtime's quantizer, and FP16 graphs that keep float32 inputs and outputs.

The QDQ model is what ONNX Runtime's CPU provider runs fast and what TensorRT 10/11 builds INT8
engines from, so the cpu and gpu backends share it; the FP16 graph is what ONNX Runtime's CUDA
provider runs and TensorRT builds FP16 engines from.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from farm.core.errors import ConversionError, first_line

if TYPE_CHECKING:
    import numpy as np

    from workers.calibration import Calibration

log = logging.getLogger(__name__)


class CalibrationReader:
    """ONNX Runtime's (and AMD Quark's) CalibrationDataReader: one batch-1 feed per call."""

    def __init__(self, calibration: Calibration) -> None:
        self._samples: Iterator[dict[str, np.ndarray]] = calibration.single_samples()

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._samples, None)


def quantize_qdq(source_onnx: Path, calibration: Calibration, target: Path, activations: str) -> Path:
    """Per-channel signed INT8 weights and INT8 activations, stored signed ("s8", what TensorRT
    takes) or unsigned ("u8").

    Both encode one and the same quantization: the calibrated activation scales are equal and the
    u8 zero points are the s8 ones plus 128 (tests/workers/test_quantize.py). What differs is speed:
    ONNX Runtime 1.31 on x86 fuses every u8 Q/DQ pair into integer kernels, but leaves a ResNet50's
    residual Adds and 20 of its 53 convolutions in FP32 when activations are s8 (README, "cpu INT8").
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    prepared = prepare_for_quantization(source_onnx)
    try:
        quantize_static(
            str(prepared),
            str(target),
            CalibrationReader(calibration),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8 if activations == "s8" else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
    except Exception as exc:
        raise ConversionError(f"INT8 quantization failed: {first_line(exc)}") from exc
    return target


def prepare_for_quantization(source_onnx: Path) -> Path:
    """Shape inference and graph clean-up the quantizer needs; the unprepared model if it fails.

    Kept beside the source export, so the cpu and fpga quantizers of one job prepare it once.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    target = source_onnx.with_name(f"{source_onnx.stem}.prepared.onnx")
    if target.exists():
        return target
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        # When its symbolic shape inference is incomplete, ONNX Runtime saves a debugging copy,
        # sym_shape_infer_temp.onnx, into the working directory: keep it beside the export
        # instead of in the worker's (or a user's) current folder.
        with working_directory(source_onnx.parent):
            quant_pre_process(str(source_onnx.absolute()), str(partial.absolute()), skip_symbolic_shape=False)
    except Exception as exc:  # a model the pre-processor cannot handle still quantizes, less well
        log.warning("quantization pre-processing skipped: %s", first_line(exc))
        partial.unlink(missing_ok=True)
        return source_onnx
    os.replace(partial, target)  # never a half-written file under the name that is reused
    return target


@contextmanager
def working_directory(folder: Path) -> Iterator[None]:
    """``contextlib.chdir`` for Python 3.10: a task runs alone in its worker process."""
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def to_fp16(source_onnx: Path, target: Path) -> Path:
    """FP16 weights and compute, FP32 inputs and outputs (callers keep feeding float32)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save(convert_float_to_float16(onnx.load(str(source_onnx)), keep_io_types=True), str(target))
    return target
