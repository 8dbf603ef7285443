"""NVIDIA GPUs, ONNX Runtime runtime: the ONNX export run by ONNX Runtime's CUDA provider, from
``onnxruntime-gpu`` (``farm[gpu]``, installed in place of ``onnxruntime``: both are one module).

FP32 runs with TF32 off. The provider's default TF32 matrix math moved ResNet50's outputs by up to
0.018 from the CPU provider's on an H100 (../shared NOTES), which FP32's tolerance rightly rejects:
TF32 would be a precision of its own. FP16 is a float16 graph that keeps float32 inputs and
outputs, as the TensorRT backend builds its FP16 engines from.

CUDA only in a pool process, the rule of both gpu backends (farm.core.hosts; gpu_tensorrt.py
follows it too): ``host_problems()`` and ``toolchain()`` are asked in the worker's prefork parent
(its start-up description, planning a conversion), so they read ONNX Runtime's list of providers,
nvidia-smi and package metadata and never touch CUDA; ``convert()`` and ``load()`` run in a pool
process, and only ``load()`` touches CUDA (``convert()`` writes ONNX files on the CPU and takes the
GPU's name from nvidia-smi).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from farm.core.hosts import gpu_label, nvidia_gpu
from farm.core.targets import TARGETS
from farm.core.toolchains import ONNXRUNTIME, package_versions
from workers.backends.base import DEFAULT_RECIPE, Recipe, TargetBackend, unsupported_precision
from workers.quantize import to_fp16
from workers.runtime import BuiltVariant, Runner, onnxruntime_runner

if TYPE_CHECKING:
    from farm.core.settings import FarmSettings
    from workers.calibration import Calibration
    from workers.sources import SourceModel

CUDA_PROVIDER = "CUDAExecutionProvider"


def cuda_provider(device_id: int = 0) -> tuple[str, dict[str, str]]:
    """The provider and its options for every gpu-ort variant: TF32 off, so FP32 means FP32."""
    return CUDA_PROVIDER, {"device_id": str(device_id), "use_tf32": "0"}


def runtime_name(precision: str) -> str:
    versions = package_versions(ONNXRUNTIME)  # onnxruntime-gpu; never beside onnxruntime
    return f"{versions} ({CUDA_PROVIDER}{', TF32 off' if precision == 'fp32' else ''})"


class OrtCudaBackend(TargetBackend):
    target = TARGETS["gpu-ort"]

    def toolchain(self, settings: FarmSettings) -> str:
        # Kernels and their numerics differ by GPU: the GPU is part of the cache key.
        return f"{package_versions([*ONNXRUNTIME, 'onnx', 'tf2onnx'])}, {gpu_label()}"

    def convert(
        self,
        source: SourceModel,
        precision: str,
        calibration: Calibration,
        workdir: Path,
        settings: FarmSettings,
        recipe: Recipe = DEFAULT_RECIPE,
    ) -> BuiltVariant:
        target = workdir / f"model_{precision}.onnx"
        if precision == "fp32":
            shutil.copyfile(source.onnx(), target)
        elif precision == "fp16":
            to_fp16(source.onnx(), target)
        else:
            raise unsupported_precision(self.name, precision)
        provider, options = cuda_provider()
        details = {"provider": provider, **options, **nvidia_gpu()}
        return BuiltVariant(target, "onnx", precision, runtime_name(precision), details=details)

    def load(self, variant: BuiltVariant, outputs: list[str]) -> Runner:
        preload_cuda_libraries()
        return onnxruntime_runner(variant.path, outputs, cuda_provider())


def preload_cuda_libraries() -> None:
    """Let the CUDA provider find CUDA and cuDNN installed as Python wheels (nvidia-*, or
    PyTorch's copies) rather than only system-wide; onnxruntime-gpu 1.21 and later."""
    import onnxruntime as ort

    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()


BACKEND = OrtCudaBackend()
