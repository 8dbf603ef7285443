"""What each backend can do, as data: the hardware class it serves, the precisions it builds, the
model formats it converts from, and what its worker must install.

The client checks a submission against this table without importing the worker side (no backend
module, no toolchain). Each backend in ``workers/backends`` takes its entry from here, and a test
holds the two in step: a new target is one entry here and one backend module.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from farm.core.errors import UnsupportedModelError, UsageError

NATIVE = "native"
# Every precision a backend may build, in the order variants are built and shown.
PRECISIONS = ("fp32", "fp16", "dynamic", "int8")
TENSORFLOW_FORMATS = ("frozen_graph", "saved_model", "keras")
PYTORCH_FORMATS = ("torch_export", "torchscript")
TABULAR_FORMATS = ("skops", "xgboost", "lightgbm", "pickle")  # scikit-learn, XGBoost, LightGBM
NETWORK_FORMATS = (*TENSORFLOW_FORMATS, "onnx", *PYTORCH_FORMATS)
ALL_FORMATS = (*NETWORK_FORMATS, *TABULAR_FORMATS)


@dataclass(frozen=True)
class Target:
    name: str  # the registry's key, stored with each variant it builds
    hardware: str | None  # the hardware class (and queue) it serves; None for the native baseline
    summary: str
    precisions: tuple[str, ...]  # what it can build, a subset of PRECISIONS in that order
    model_formats: tuple[str, ...]  # the submitted formats it converts from (farm.core.modelfile.ModelFormat)
    requires: tuple[str, ...]  # modules a worker of this class must be able to import
    extra: str  # the pip extra that installs them
    host_needs: tuple[str, ...] = ()  # host facts beyond the modules: see farm.core.hosts.HOST_CHECKS

    def refuse_format(self, model_format: str) -> None:
        if model_format not in self.model_formats:
            hardware = self.hardware or self.name
            if model_format in TABULAR_FORMATS:
                raise UnsupportedModelError(
                    f"{hardware} cannot run a {model_format.replace('_', ' ')} model's operators "
                    f"(tree ensembles and other ai.onnx.ml operators): leave {hardware} out of --hw"
                )
            readable = ", ".join(fmt.replace("_", " ") for fmt in self.model_formats)
            raise UnsupportedModelError(
                f"{hardware} converts from {readable}, not {model_format.replace('_', ' ')}: "
                f"submit the model in one of those formats, or leave {hardware} out of --hw"
            )


TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target(
            "native",
            None,
            "the submitted model in its own framework: the baseline of every speedup",
            ("fp32",),
            ALL_FORMATS,
            (),  # whatever loaded the source already runs it
            "tf",
        ),
        Target(
            "cpu",
            "cpu",
            "ONNX Runtime on x86 CPUs: FP32 (optimised graph), INT8 (static QDQ, per-channel weights)",
            ("fp32", "int8"),
            ALL_FORMATS,
            ("tensorflow", "tf2onnx", "onnxruntime"),
            "cpu",
        ),
        Target(
            "arm",
            "arm",
            "TensorFlow Lite on ARM CPUs (LiteRT, XNNPACK): FP32, FP16, dynamic-range and full INT8",
            ("fp32", "fp16", "dynamic", "int8"),
            TENSORFLOW_FORMATS,  # the TFLite converter starts from a TensorFlow graph
            ("tensorflow", "ai_edge_litert"),
            "arm",
        ),
        Target(
            "arm-ort",
            "arm",
            "ONNX Runtime on ARM CPUs: FP32 (optimised graph), dynamically quantized MatMul, INT8 static QDQ",
            ("fp32", "dynamic", "int8"),
            ALL_FORMATS,
            ("tensorflow", "tf2onnx", "onnxruntime"),
            "arm",
        ),
        Target(
            "fpga",
            "fpga",
            "Xilinx DPUs (Vitis AI): INT8 QDQ ONNX, power-of-two scales, by AMD Quark XINT8",
            ("int8",),
            NETWORK_FORMATS,  # the DPU runs convolutions and dense layers: no tree ensemble operators
            ("tensorflow", "tf2onnx", "onnxruntime", "quark", "torch"),
            "fpga",
        ),
        Target(
            "gpu-ort",
            "gpu",
            "ONNX Runtime's CUDA provider on NVIDIA GPUs: FP32 (TF32 off), FP16 (float32 inputs and outputs)",
            ("fp32", "fp16"),
            ALL_FORMATS,
            ("onnxruntime",),  # the GPU build, onnxruntime-gpu: its CUDA provider is checked on the host
            "gpu",
            ("cuda-provider", "nvidia-gpu"),
        ),
        Target(
            "gpu-tensorrt",
            "gpu",
            "TensorRT engines on NVIDIA GPUs: FP32, FP16 and INT8 (from QDQ ONNX), dynamic batch",
            ("fp32", "fp16", "int8"),
            ALL_FORMATS,
            ("tensorrt", "cuda", "onnxruntime"),
            "tensorrt",
            ("nvidia-gpu",),
        ),
    )
}


def hardware_classes() -> list[str]:
    return sorted({target.hardware for target in TARGETS.values() if target.hardware})


def targets_for(hardware: str) -> list[Target]:
    """Every target serving a hardware class, in order of preference: a class may have more than
    one runtime (gpu: ONNX Runtime's CUDA provider, TensorRT), and a worker builds with each it has."""
    if hardware not in hardware_classes():
        raise UsageError(f"unknown hardware class {hardware!r} (known: {', '.join(hardware_classes())})")
    return [target for target in TARGETS.values() if target.hardware == hardware]


def class_precisions(hardware: str) -> tuple[str, ...]:
    """What a hardware class can build with any of its runtimes, in PRECISIONS order."""
    offered = {precision for target in targets_for(hardware) for precision in target.precisions}
    return tuple(precision for precision in PRECISIONS if precision in offered)


def refuse_format(hardware: str, model_format: str) -> None:
    """Refuses a model format that no runtime of the hardware class converts from."""
    targets = targets_for(hardware)
    if all(model_format not in target.model_formats for target in targets):
        targets[0].refuse_format(model_format)


def parse_hardware_list(text: str) -> list[str]:
    """``cpu,gpu`` -> ["cpu", "gpu"], refusing names no backend knows and empty lists."""
    names = _split(text)
    if not names:
        raise UsageError("no hardware class given (e.g. --hw cpu)")
    for name in names:
        targets_for(name)
    return names


def parse_precisions(text: str, hardware: list[str]) -> list[str]:
    """``fp32,int8`` -> the precisions to build; empty text means every one each backend has.

    Refuses unknown names, and a hardware class that could build none of those asked for.
    """
    names = _split(text)
    unknown = [name for name in names if name not in PRECISIONS]
    if unknown:
        raise UsageError(f"unknown precision {', '.join(unknown)} (known: {', '.join(PRECISIONS)})")
    for hw in hardware:
        offered = class_precisions(hw)
        if names and not set(names) & set(offered):
            raise UsageError(f"{hw} builds {', '.join(offered)}; none of {', '.join(names)} asked for")
    return [name for name in PRECISIONS if name in names]


def missing_modules(modules: tuple[str, ...]) -> list[str]:
    return [name for name in modules if importlib.util.find_spec(name) is None]


def toolchain_problem(target: Target) -> list[str]:
    """Why a worker cannot take this target's queue for want of its toolchain; empty when it can."""
    missing = missing_modules(target.requires)
    if not missing:
        return []
    return [f"{', '.join(missing)} not installed: pip install 'farm[{target.extra}]'"]


def _split(text: str) -> list[str]:
    return list(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
