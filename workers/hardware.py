"""What hardware this host has, as farm's hardware classes, and a description of it in words."""

from __future__ import annotations

import glob
import os
import platform
import shutil
import subprocess
from functools import cache
from pathlib import Path


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


@cache  # a host fact: asked per backend and per planned conversion, nvidia-smi runs once
def nvidia_gpu_problems() -> tuple[str, ...]:
    """Why a gpu backend cannot run here for want of a GPU; empty when nvidia-smi lists one."""
    if shutil.which("nvidia-smi") is None:
        return ("no NVIDIA GPU found (no nvidia-smi): a gpu worker needs one",)
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    if listed.returncode != 0 or "GPU" not in listed.stdout:
        return ("no NVIDIA GPU found (nvidia-smi lists none): a gpu worker needs one",)
    return ()


@cache
def nvidia_gpu() -> dict[str, str]:
    """The first GPU's ``gpu_name`` and ``compute_capability``, as nvidia-smi reports them (no
    CUDA call: safe in a prefork parent); the keys a TensorRT engine's details use too."""
    listed = None
    if shutil.which("nvidia-smi") is not None:
        query = ["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader", "--id=0"]
        listed = subprocess.run(query, capture_output=True, text=True, timeout=30)
    if listed is None or listed.returncode != 0:
        return {"gpu_name": "no GPU found", "compute_capability": "?"}
    name, _, capability = listed.stdout.strip().partition(",")
    return {"gpu_name": name.strip(), "compute_capability": capability.strip()}


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
