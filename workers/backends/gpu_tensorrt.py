"""NVIDIA GPUs, TensorRT runtime: engines built from the ONNX export with TensorRT's Python API.
Used on gpu workers where ``tensorrt`` and cuda-python are installed (``farm[tensorrt]``), beside
ONNX Runtime's CUDA provider (gpu_ort.py).

An engine only runs on the GPU model and TensorRT version that built it, so the conversion runs on
a gpu worker, the engine's details (GPU, compute capability, TensorRT and CUDA versions) are stored
with the variant, and they are checked before an engine is loaded anywhere.

TensorRT 10 and 11 differ: 11 removed the FP16/INT8 builder flags and the INT8 calibrators. Here
FP16 always comes from an FP16 ONNX graph in a strongly typed network, and INT8 from the Q/DQ
nodes of the same QDQ ONNX the cpu backend makes; on 10.x the matching builder flag is set too.

CUDA only in a pool process, the rule of both gpu backends (farm.core.hosts; gpu_ort.py follows
it too): ``host_problems()`` and ``toolchain()`` are asked in the worker's prefork parent (its
start-up description, planning a conversion), so they read nvidia-smi and package metadata and
never call TensorRT or CUDA; ``convert()`` and ``load()`` run in a pool process, and only they do
(``host_identity()``, the builder, ``EngineRunner``).

The decisions (profiles, compatibility, cache names, network flags, which device buffers to
reuse, how the timing cache is written) are plain functions, tested without a GPU; the calls into
TensorRT and CUDA need both and are tested only where they exist.
"""

from __future__ import annotations

import os
import re
import uuid
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.core.errors import ConversionError
from farm.core.hosts import gpu_label
from farm.core.targets import TARGETS
from farm.core.toolchains import package_versions
from workers.backends.base import DEFAULT_RECIPE, Recipe, TargetBackend, unsupported_precision
from workers.quantize import quantize_qdq, to_fp16
from workers.runtime import BuiltVariant, Runner

if TYPE_CHECKING:
    import numpy as np

    from farm.core.modelfile import TensorSpec
    from farm.core.settings import FarmSettings
    from workers.calibration import Calibration
    from workers.sources import SourceModel

WORKSPACE_BYTES = 4 << 30
OPT_BATCH = 8


@dataclass(frozen=True)
class GpuIdentity:
    """What an engine is bound to."""

    gpu_name: str
    compute_capability: str
    tensorrt_version: str
    cuda_version: str

    def cache_name(self) -> str:
        text = (
            f"{self.gpu_name}-sm{self.compute_capability}-trt{self.tensorrt_version}-cuda{self.cuda_version}"
        )
        return re.sub(r"[^A-Za-z0-9.\-]+", "_", text) + ".timing-cache"


def incompatibilities(engine: dict[str, str], host: GpuIdentity) -> list[str]:
    """Why an engine built on ``engine``'s GPU cannot load on ``host``; empty when it can."""
    problems = []
    for key, have in asdict(host).items():
        if key == "cuda_version":
            continue  # engines load across CUDA minor versions; TensorRT itself checks the rest
        built = engine.get(key)
        if built != have:
            problems.append(f"{key.replace('_', ' ')}: engine built for {built}, this host has {have}")
    return problems


def profile_shapes(
    spec: TensorSpec, max_batch: int
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Min, optimum and max shapes of one input's optimization profile (a free batch only)."""
    from workers.calibration import concrete_shape

    if not spec.shape or spec.shape[0] is not None:
        fixed = concrete_shape(spec, 1)
        return fixed, fixed, fixed
    optimum = min(OPT_BATCH, max_batch)
    return concrete_shape(spec, 1), concrete_shape(spec, optimum), concrete_shape(spec, max_batch)


def tensorrt_major(version: str) -> int:
    return int(version.split(".")[0])


def uses_builder_flag(precision: str, tensorrt_version: str) -> bool:
    """TensorRT 10 still wants BuilderFlag.FP16/INT8 on a weakly typed network; 11 has neither."""
    return precision in ("fp16", "int8") and tensorrt_major(tensorrt_version) < 11


def engine_onnx(source: SourceModel, precision: str, calibration: Calibration, workdir: Path) -> Path:
    """The ONNX graph the engine is built from: as exported, FP16, or INT8 QDQ."""
    exported = source.onnx()
    if precision == "fp32":
        return exported
    if precision == "fp16":
        return to_fp16(exported, workdir / "model_fp16.onnx")
    if precision == "int8":
        return quantize_qdq(exported, calibration, workdir / "model_int8.onnx", activations="s8")
    raise unsupported_precision("gpu-tensorrt", precision)


class TensorRTBackend(TargetBackend):
    target = TARGETS["gpu-tensorrt"]

    def toolchain(self, settings: FarmSettings) -> str:
        # An engine is tied to its GPU: the GPU is part of the cache key, not just the versions.
        # Asked in the prefork parent too (the worker's start-up description, planning): from
        # nvidia-smi and package metadata, never CUDA (farm.core.hosts).
        return f"{package_versions(['tensorrt', 'tf2onnx', 'onnx'])}, {gpu_label()}"

    def convert(
        self,
        source: SourceModel,
        precision: str,
        calibration: Calibration,
        workdir: Path,
        settings: FarmSettings,
        recipe: Recipe = DEFAULT_RECIPE,
    ) -> BuiltVariant:
        onnx_path = engine_onnx(source, precision, calibration, workdir)
        identity = host_identity()
        target = workdir / f"model_{precision}.engine"
        timing_cache = settings.cache_dir / "tensorrt" / identity.cache_name()
        build_engine(onnx_path, target, precision, source.inputs, settings.bench_max_batch, timing_cache)
        runtime = f"tensorrt {identity.tensorrt_version}"
        return BuiltVariant(target, "tensorrt", precision, runtime, details=asdict(identity))

    def load(self, variant: BuiltVariant, outputs: list[str]) -> Runner:
        problems = incompatibilities(variant.details, host_identity())
        if problems:
            raise ConversionError(f"engine {variant.path.name} cannot run here: {'; '.join(problems)}")
        return EngineRunner(variant.path, outputs)


def host_identity() -> GpuIdentity:
    import tensorrt as trt
    from cuda.bindings import runtime as cudart

    properties = _checked(cudart.cudaGetDeviceProperties(0))
    name = properties.name.decode() if isinstance(properties.name, bytes) else str(properties.name)
    cuda = _checked(cudart.cudaRuntimeGetVersion())
    return GpuIdentity(
        gpu_name=name.strip("\x00 "),
        compute_capability=f"{properties.major}.{properties.minor}",
        tensorrt_version=trt.__version__,
        cuda_version=f"{cuda // 1000}.{cuda % 1000 // 10}",
    )


def build_engine(
    onnx_path: Path,
    target: Path,
    precision: str,
    inputs: list[TensorSpec],
    max_batch: int,
    timing_cache: Path,
) -> None:
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # Strongly typed: the ONNX graph's types (FP16 weights, Q/DQ nodes) decide each layer's precision.
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    if uses_builder_flag(precision, trt.__version__):
        flags = 0  # 10.x: a weakly typed network plus the builder flag below
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ConversionError(f"TensorRT could not parse the ONNX model: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if uses_builder_flag(precision, trt.__version__):
        config.set_flag(trt.BuilderFlag.FP16 if precision == "fp16" else trt.BuilderFlag.INT8)
    profile = builder.create_optimization_profile()
    for spec in inputs:
        profile.set_shape(spec.name, *profile_shapes(spec, max_batch))
    config.add_optimization_profile(profile)
    cache = config.create_timing_cache(read_timing_cache(timing_cache))
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ConversionError(f"TensorRT could not build a {precision} engine (see the worker's log)")
    target.write_bytes(bytes(serialized))
    write_timing_cache(timing_cache, bytes(config.get_timing_cache().serialize()))


def read_timing_cache(path: Path) -> bytes:
    """The timing cache's bytes; empty when there is none yet."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def write_timing_cache(path: Path, data: bytes) -> None:
    """Replaces ``path`` with ``data`` whole. The pool processes of a host share one timing cache
    per GPU and read it while another writes it: the bytes go to a file of this writer's own in
    the same folder, then ``os.replace`` swaps it in (atomic), so a reader gets the old cache or
    the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with temporary.open("xb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


class DeviceBuffers:
    """Device memory per tensor name, kept and reused while it is large enough: once a runner has
    seen its largest shapes, a call allocates and frees nothing (so the benchmark times the
    engine, not ``cudaMalloc``). ``allocate(nbytes) -> pointer`` and ``free(pointer)`` are handed
    in: CUDA's in EngineRunner, plain callables in tests."""

    def __init__(self, allocate: Callable[[int], Any], free: Callable[[Any], object]) -> None:
        self._allocate, self._free = allocate, free
        self._held: dict[str, tuple[int, Any]] = {}  # name: (bytes, pointer)

    def get(self, name: str, nbytes: int) -> Any:
        """A device pointer for ``name`` to at least ``nbytes`` bytes (at least one): the held one
        when it is large enough, else a new one in place of it."""
        nbytes = max(nbytes, 1)
        held = self._held.pop(name, None)
        if held is not None and held[0] >= nbytes:
            self._held[name] = held
            return held[1]
        if held is not None:
            self._free(held[1])
        pointer = self._allocate(nbytes)
        self._held[name] = (nbytes, pointer)
        return pointer

    @property
    def held_bytes(self) -> int:
        return sum(nbytes for nbytes, _ in self._held.values())

    def release(self) -> None:
        """Frees every held buffer, once; the pool may be used again afterwards."""
        held, self._held = self._held, {}
        for _, pointer in held.values():
            self._free(pointer)


class EngineRunner:
    """Runs a deserialized engine: host arrays are copied in, the engine runs, outputs copied out;
    inputs and outputs matched by name. Device buffers are kept between calls (DeviceBuffers);
    ``close()``, or the runner being collected, frees them and destroys its CUDA stream."""

    def __init__(self, path: Path, outputs: list[str]) -> None:
        import tensorrt as trt
        from cuda.bindings import runtime as cudart

        self.trt, self.cudart = trt, cudart
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise ConversionError(f"TensorRT could not load {path.name}")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        self.input_names = [n for n in names if self.engine.get_tensor_mode(n) == mode]
        missing = [name for name in outputs if name not in names]
        if missing:
            raise ConversionError(f"engine {path.name} has no output named {', '.join(missing)}")
        self.output_names = outputs  # by name: the engine's tensors keep the ONNX graph's names
        self.stream = _checked(cudart.cudaStreamCreate())
        self.buffers = DeviceBuffers(lambda nbytes: _checked(cudart.cudaMalloc(nbytes)), cudart.cudaFree)
        # Not a method of self: the finalizer must not keep the runner alive.
        self._release = weakref.finalize(self, _release_device, cudart, self.stream, self.buffers)

    def __call__(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        import numpy as np

        cudart = self.cudart
        for name in self.input_names:
            array = np.ascontiguousarray(feeds[name])
            self.context.set_input_shape(name, array.shape)
            pointer = self.buffers.get(name, array.nbytes)
            kind = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
            _checked(cudart.cudaMemcpyAsync(pointer, array.ctypes.data, array.nbytes, kind, self.stream))
            self.context.set_tensor_address(name, pointer)
        outputs = []
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            host = np.empty(shape, dtype=self.trt.nptype(self.engine.get_tensor_dtype(name)))
            pointer = self.buffers.get(name, host.nbytes)
            self.context.set_tensor_address(name, pointer)
            outputs.append((host, pointer))
        ran = self.context.execute_async_v3(self.stream)
        if ran:
            for host, pointer in outputs:
                kind = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
                _checked(cudart.cudaMemcpyAsync(host.ctypes.data, pointer, host.nbytes, kind, self.stream))
        # The host arrays above are read and written by the stream until it is synchronized.
        _checked(cudart.cudaStreamSynchronize(self.stream))
        if not ran:
            raise ConversionError("TensorRT failed to run the engine")
        return [host for host, _ in outputs]

    def close(self) -> None:
        """Frees the device buffers and destroys the stream; once, however often it is called
        (it runs by itself when the runner is collected)."""
        self._release()


def _release_device(cudart: Any, stream: Any, buffers: DeviceBuffers) -> None:
    cudart.cudaStreamSynchronize(stream)  # nothing in flight may use a buffer about to be freed
    buffers.release()
    cudart.cudaStreamDestroy(stream)


def _checked(result: tuple) -> Any:
    """cuda-python returns (error, value...); raise on an error, return the value."""
    error, *values = result
    if int(error) != 0:
        raise ConversionError(f"CUDA call failed: {error}")
    return values[0] if len(values) == 1 else values or None


BACKEND = TensorRTBackend()
