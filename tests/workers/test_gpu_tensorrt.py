"""The gpu class's TensorRT backend: its decisions are tested everywhere; building and running
engines only where TensorRT, cuda-python and an NVIDIA GPU exist (skipped elsewhere, with the reason)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import onnx
import pytest

from farm.core.errors import ModelError
from farm.core.modelfile import ModelFormat, TensorSpec
from farm.core.settings import FarmSettings
from workers.backends import all_backends
from workers.backends.gpu_tensorrt import (
    GpuIdentity,
    engine_onnx,
    incompatibilities,
    profile_shapes,
    uses_builder_flag,
)
from workers.calibration import synthetic_calibration
from workers.convert import verify_variant
from workers.runtime import onnxruntime_runner
from workers.sources import load_source

H100 = GpuIdentity("NVIDIA H100 80GB HBM3", "9.0", "11.4.0.106", "13.0")
BACKEND = all_backends()["gpu-tensorrt"]
GPU_PROBLEMS = BACKEND.host_problems()


def test_profiles_cover_batch_one_to_the_sweep_limit() -> None:
    image = TensorSpec("image:0", (None, 16, 16, 3), "float32")
    assert profile_shapes(image, 32) == ((1, 16, 16, 3), (8, 16, 16, 3), (32, 16, 16, 3))
    assert profile_shapes(image, 4) == ((1, 16, 16, 3), (4, 16, 16, 3), (4, 16, 16, 3))
    fixed = TensorSpec("x", (2, 5), "float32")
    assert profile_shapes(fixed, 32) == ((2, 5), (2, 5), (2, 5))
    with pytest.raises(ModelError, match="unknown dimension"):
        profile_shapes(TensorSpec("x", (None, None), "float32"), 8)


def test_engines_refuse_another_gpu_or_tensorrt_version() -> None:
    built_here = asdict(H100)
    assert incompatibilities(built_here, H100) == []
    newer_cuda = GpuIdentity(H100.gpu_name, H100.compute_capability, H100.tensorrt_version, "13.1")
    assert incompatibilities(built_here, newer_cuda) == []
    other = GpuIdentity("NVIDIA L4", "8.9", "10.13.0", "12.8")
    problems = incompatibilities(built_here, other)
    assert (
        len(problems) == 3
        and "gpu name: engine built for NVIDIA H100 80GB HBM3, this host has NVIDIA L4" in problems
    )


def test_timing_caches_are_named_per_gpu_tensorrt_and_cuda() -> None:
    assert H100.cache_name() == "NVIDIA_H100_80GB_HBM3-sm9.0-trt11.4.0.106-cuda13.0.timing-cache"


def test_builder_flags_only_on_tensorrt_10() -> None:
    assert uses_builder_flag("fp16", "10.13.0") and uses_builder_flag("int8", "10.0.1")
    assert not uses_builder_flag("fp32", "10.13.0")
    assert not uses_builder_flag("fp16", "11.4.0") and not uses_builder_flag("int8", "11.0.0")


def test_engine_inputs_fp16_and_qdq_onnx_keep_float32_io(
    sample_models: dict[str, Path], tmp_path: Path
) -> None:
    source = load_source(sample_models["keras"], ModelFormat.KERAS, [], [], tmp_path)
    calibration = synthetic_calibration(source.inputs, samples=8, held_out=8)
    fp16 = onnx.load(str(engine_onnx(source, "fp16", calibration, tmp_path)))
    float16 = onnx.TensorProto.FLOAT16
    assert any(t.data_type == float16 for t in fp16.graph.initializer)
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    int8 = onnx.load(str(engine_onnx(source, "int8", calibration, tmp_path)))
    assert any(n.op_type == "QuantizeLinear" for n in int8.graph.node)

    # The FP16 graph still computes the same classes.
    fp16_runner = onnxruntime_runner(tmp_path / "model_fp16.onnx", source.output_names)
    result = verify_variant(source, calibration, fp16_runner, "fp16")
    assert result.passed, result.summary()


def test_a_gpu_worker_without_tensorrt_or_gpu_names_what_is_missing() -> None:
    if not GPU_PROBLEMS:
        pytest.skip("this host has TensorRT, cuda-python and a GPU")
    assert any("pip install 'farm[tensorrt]'" in p or "no NVIDIA GPU" in p for p in GPU_PROBLEMS)


@pytest.mark.skipif(bool(GPU_PROBLEMS), reason=f"needs a GPU worker host: {'; '.join(GPU_PROBLEMS)}")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tensorrt_engine_builds_runs_and_verifies(
    precision: str, sample_models: dict[str, Path], tmp_path: Path
) -> None:
    backend = BACKEND
    source = load_source(sample_models["keras"], ModelFormat.KERAS, [], [], tmp_path)
    calibration = synthetic_calibration(source.inputs, samples=16, held_out=16)
    variant = backend.convert(source, precision, calibration, tmp_path, FarmSettings())
    assert variant.format == "tensorrt" and variant.details["gpu_name"]
    result = verify_variant(source, calibration, backend.load(variant, source.output_names), precision)
    assert result.passed, result.summary()
