"""What hardware this host has, as farm's hardware classes; which classes and targets it can serve
(their toolchains and host facts, read from farm.core.targets without importing any backend); and
a description of it in words.

One rule for every GPU fact asked here: no CUDA call. A worker's prefork parent asks these
questions before it forks its pool processes, and a CUDA context made there is unusable in every
child. nvidia-smi and ONNX Runtime's list of providers answer without one; CUDA itself is touched
only when a pool process builds or loads a variant.
"""

from __future__ import annotations

import glob
import os
import platform
import shutil
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path

from farm.core.targets import Target, targets_for, toolchain_problem


def detect_hardware_classes() -> list[str]:
    """Hardware classes this host can serve, most specialised first."""
    classes = []
    if has_nvidia_gpu():
        classes.append("gpu")
    if has_xilinx_fpga():
        classes.append("fpga")
    classes.append("arm" if platform.machine().lower() in ("aarch64", "arm64") else "cpu")
    return classes


def has_nvidia_gpu() -> bool:
    return bool(glob.glob("/dev/nvidia[0-9]*")) or shutil.which("nvidia-smi") is not None


NVIDIA_SMI_TIMEOUT_S = 30.0


def _nvidia_smi(arguments: list[str], timeout_s: float) -> subprocess.CompletedProcess[str] | str:
    """nvidia-smi's answer, or why there is none: it is not installed, or it hangs (a wedged
    driver), which is the host's problem to report, not a reason for the caller to crash."""
    if shutil.which("nvidia-smi") is None:
        return "no nvidia-smi"
    try:
        return subprocess.run(["nvidia-smi", *arguments], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"nvidia-smi did not answer within {timeout_s:g} s (a hung GPU or driver?)"
    except OSError as exc:
        return f"nvidia-smi could not run ({exc.strerror or exc})"


@cache  # a host fact: asked per backend and per planned conversion, nvidia-smi runs once
def nvidia_gpu_problems(timeout_s: float = NVIDIA_SMI_TIMEOUT_S) -> tuple[str, ...]:
    """Why a gpu backend cannot run here for want of a GPU; empty when nvidia-smi lists one."""
    listed = _nvidia_smi(["-L"], timeout_s)
    if isinstance(listed, str):
        return (f"no NVIDIA GPU found ({listed}): a gpu worker needs one",)
    if listed.returncode != 0 or "GPU" not in listed.stdout:
        return ("no NVIDIA GPU found (nvidia-smi lists none): a gpu worker needs one",)
    return ()


def _nvml_gpu() -> dict[str, str] | None:
    """The first GPU as NVML reports it, where nvidia-ml-py is installed (``farm[gpu]``): the
    driver's own library, no process to start and no CUDA context. None when NVML cannot answer
    (not installed, no driver, no GPU): nvidia-smi is asked instead."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            name = pynvml.nvmlDeviceGetName(handle)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
        finally:
            pynvml.nvmlShutdown()
    except pynvml.NVMLError:
        return None
    name = name.decode() if isinstance(name, bytes) else str(name)
    return {"gpu_name": name, "compute_capability": f"{major}.{minor}"}


@cache
def nvidia_gpu(timeout_s: float = NVIDIA_SMI_TIMEOUT_S) -> dict[str, str]:
    """The first GPU's ``gpu_name`` and ``compute_capability``, from NVML where it is installed,
    else as nvidia-smi reports them (no CUDA call either way: safe in a prefork parent); the keys
    a TensorRT engine's details use too."""
    found = _nvml_gpu()
    if found:
        return found
    query = ["--query-gpu=name,compute_cap", "--format=csv,noheader", "--id=0"]
    listed = _nvidia_smi(query, timeout_s)
    if isinstance(listed, str):
        return {"gpu_name": f"no GPU found ({listed})", "compute_capability": "?"}
    if listed.returncode != 0:
        return {"gpu_name": "no GPU found", "compute_capability": "?"}
    name, _, capability = listed.stdout.strip().partition(",")
    return {"gpu_name": name.strip(), "compute_capability": capability.strip()}


def gpu_label(timeout_s: float = NVIDIA_SMI_TIMEOUT_S) -> str:
    """``"NVIDIA H200 sm9.0"``: the GPU part of a gpu variant's cache key (kernels, numerics and
    TensorRT engines differ by GPU), from nvidia-smi."""
    gpu = nvidia_gpu(timeout_s)
    return f"{gpu['gpu_name']} sm{gpu['compute_capability']}"


def has_xilinx_fpga() -> bool:
    # XRT exposes Alveo/Versal cards as /dev/xclmgmt* (management) and /dev/dri/renderD* (user).
    return bool(glob.glob("/dev/xclmgmt*")) or Path("/opt/xilinx/xrt").is_dir()


def describe_cpu() -> str:
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware")):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} logical cores"


@cache  # the CPU does not change under a running worker; asked for every cpu variant planned
def has_int8_dot_product() -> bool:
    """Whether this CPU multiplies INT8 into 32-bit sums in one instruction (x86 VNNI, Arm's
    dot-product extension): without it ONNX Runtime's u8 x s8 kernels saturate 16-bit sums, and an
    INT8 variant verified on one kind of CPU may not hold on the other."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return False
    flags = set(cpuinfo.read_text(errors="replace").split())
    return bool(flags & {"avx512_vnni", "avx_vnni", "asimddp"})


NO_CUDA_PROVIDER = (
    "this onnxruntime has no CUDA provider: pip install 'farm[gpu]' "
    "(onnxruntime-gpu, after pip uninstall onnxruntime)"
)


def cuda_provider_problems() -> tuple[str, ...]:
    """Listing ONNX Runtime's providers loads no CUDA library and makes no CUDA context."""
    import onnxruntime as ort

    return () if "CUDAExecutionProvider" in ort.get_available_providers() else (NO_CUDA_PROVIDER,)


# Host facts a target may need beyond its modules (Target.host_needs), each asked without CUDA.
HOST_CHECKS: dict[str, Callable[[], tuple[str, ...]]] = {
    "nvidia-gpu": nvidia_gpu_problems,
    "cuda-provider": cuda_provider_problems,
}


def target_problems(target: Target) -> list[str]:
    """Why this host cannot run a target: its toolchain first (a missing module makes the other
    checks moot), then each host fact it needs. Empty when it can."""
    problems = toolchain_problem(target)
    for need in target.host_needs:
        if need == "nvidia-gpu" or not problems:
            problems += HOST_CHECKS[need]()
    return problems


def class_problems(hardware: str) -> list[str]:
    """Why this host cannot serve a hardware class: empty when any one of its targets can run
    here; otherwise each target's reasons, named by the target when the class has several."""
    targets = targets_for(hardware)
    problems = {target.name: target_problems(target) for target in targets}
    if any(not found for found in problems.values()):
        return []
    if len(targets) == 1:
        return problems[targets[0].name]
    return [f"{name}: {'; '.join(found)}" for name, found in problems.items()]
