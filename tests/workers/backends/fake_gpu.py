"""A GPU host's hardware boundary, faked for hosts without one: an ``nvidia-smi`` that lists an
NVIDIA H200, and ``tensorrt`` and ``cuda.bindings.runtime`` modules that RECORD every call made
into them (TensorRT and the CUDA runtime cannot be installed without a GPU). Everything else,
farm's code included, is the real thing; tests run it in a subprocess that has these fakes first
on PATH and sys.path, and read back what was called.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
GPU_NAME = "NVIDIA H200"
TENSORRT_VERSION = "10.13.0.35"
# What an engine built on the fake GPU records as its details (workers.backends.gpu_tensorrt.GpuIdentity).
ENGINE_DETAILS = {
    "gpu_name": GPU_NAME,
    "compute_capability": "9.0",
    "tensorrt_version": TENSORRT_VERSION,
    "cuda_version": "12.8",
}

NVIDIA_SMI = f"""\
#!/bin/sh
echo "$*" >> "$(dirname "$0")/nvidia-smi.log"
case "$*" in
  *-L*) echo "GPU 0: {GPU_NAME} (UUID: GPU-00000000-0000-0000-0000-000000000000)" ;;
  *--query-gpu=name,compute_cap*) echo "{GPU_NAME}, 9.0" ;;
  *) echo "fake nvidia-smi: unexpected arguments: $*" >&2; exit 2 ;;
esac
"""

RECORDER = """\
# Every call into TensorRT or CUDA, in order, as "module.function(arguments)".
CALLS: list[str] = []


def record(name, *args):
    CALLS.append(f"{name}({', '.join(repr(a) for a in args)})")


def recorder(module):
    \"\"\"A module __getattr__: any other function asked for is recorded when called.\"\"\"

    def getattr_(name):
        if name.startswith("__"):
            raise AttributeError(name)

        def call(*args):
            record(f"{module}.{name}", *args)
            return (0, None)

        return call

    return getattr_
"""

CUDA_RUNTIME = f"""\
import itertools
from types import SimpleNamespace

from fake_gpu_calls import record, recorder

__getattr__ = recorder("cudart")
_addresses = itertools.count(0x7F0000000000, 0x100000)


class cudaMemcpyKind:
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2


def cudaGetDeviceProperties(device):
    record("cudart.cudaGetDeviceProperties", device)
    return (0, SimpleNamespace(name=b"{GPU_NAME}\\x00\\x00", major=9, minor=0))


def cudaRuntimeGetVersion():
    record("cudart.cudaRuntimeGetVersion")
    return (0, 12080)


def cudaMalloc(nbytes):
    record("cudart.cudaMalloc", nbytes)
    return (0, next(_addresses))


def cudaFree(pointer):
    record("cudart.cudaFree", pointer)
    return (0,)


def cudaMemcpyAsync(destination, source, nbytes, kind, stream):
    record("cudart.cudaMemcpyAsync", nbytes, kind)
    return (0,)


def cudaStreamCreate():
    record("cudart.cudaStreamCreate")
    return (0, 0x5EA)


def cudaStreamSynchronize(stream):
    record("cudart.cudaStreamSynchronize", stream)
    return (0,)


def cudaStreamDestroy(stream):
    record("cudart.cudaStreamDestroy", stream)
    return (0,)
"""

# An "engine" file is JSON: {{"inputs": {{name: [dtype, shape]}}, "outputs": {{...}}}}, -1 a free batch.
TENSORRT = f"""\
import json

import numpy as np

from fake_gpu_calls import record, recorder

__version__ = "{TENSORRT_VERSION}"
__getattr__ = recorder("tensorrt")


class TensorIOMode:
    INPUT = "input"
    OUTPUT = "output"


class Logger:
    WARNING = 2

    def __init__(self, severity=None):
        record("tensorrt.Logger", severity)


def nptype(dtype):
    return np.dtype(dtype).type


class Runtime:
    def __init__(self, logger):
        record("tensorrt.Runtime")

    def deserialize_cuda_engine(self, data):
        record("tensorrt.Runtime.deserialize_cuda_engine")
        return Engine(json.loads(data))


class Engine:
    def __init__(self, layout):
        self.modes = {{name: TensorIOMode.INPUT for name in layout["inputs"]}}
        self.modes |= {{name: TensorIOMode.OUTPUT for name in layout["outputs"]}}
        self.tensors = {{**layout["inputs"], **layout["outputs"]}}
        self.names = list(self.tensors)
        self.num_io_tensors = len(self.names)

    def get_tensor_name(self, index):
        return self.names[index]

    def get_tensor_mode(self, name):
        return self.modes[name]

    def get_tensor_dtype(self, name):
        return self.tensors[name][0]

    def create_execution_context(self):
        record("tensorrt.Engine.create_execution_context")
        return Context(self)


class Context:
    def __init__(self, engine):
        self.engine, self.batch = engine, 1

    def set_input_shape(self, name, shape):
        self.batch = shape[0]
        return True

    def get_tensor_shape(self, name):
        return [self.batch if d == -1 else d for d in self.engine.tensors[name][1]]

    def set_tensor_address(self, name, pointer):
        record("tensorrt.Context.set_tensor_address", name)
        return True

    def execute_async_v3(self, stream):
        record("tensorrt.Context.execute_async_v3")
        return True
"""


def install(folder: Path) -> dict[str, str]:
    """Writes the fakes into ``folder``; returns the environment that puts them first."""
    bin_dir, site = folder / "bin", folder / "site"
    (site / "tensorrt").mkdir(parents=True)
    (site / "cuda" / "bindings").mkdir(parents=True)
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(NVIDIA_SMI)
    smi.chmod(0o755)
    (site / "fake_gpu_calls.py").write_text(RECORDER)
    (site / "tensorrt" / "__init__.py").write_text(TENSORRT)
    (site / "cuda" / "__init__.py").write_text("")
    (site / "cuda" / "bindings" / "__init__.py").write_text("")
    (site / "cuda" / "bindings" / "runtime.py").write_text(CUDA_RUNTIME)
    # Package metadata, as pip leaves it: what a toolchain's versions are read from.
    for name, version in (("tensorrt", TENSORRT_VERSION), ("cuda_python", "12.8.0")):
        info = site / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("FARM_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    env["FARM_HOME"] = str(folder / "home")
    env["FARM_CONFIG"] = str(folder / "absent.toml")
    return env


def run(script: str, folder: Path) -> dict:
    """Runs ``script`` in a fresh Python with the fake GPU; it prints one JSON document last."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=install(folder),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def nvidia_smi_calls(folder: Path) -> list[str]:
    log = folder / "bin" / "nvidia-smi.log"
    return log.read_text().splitlines() if log.exists() else []
