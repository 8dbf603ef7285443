"""What hardware this host has, as farm's hardware classes, and a description of it in words."""

from __future__ import annotations

import glob
import os
import platform
import shutil
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
