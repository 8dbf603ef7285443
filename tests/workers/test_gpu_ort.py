"""The gpu class's ONNX Runtime backend (the CUDA provider of onnxruntime-gpu). Its graphs and its
refusals are tested everywhere; running on the CUDA provider only where onnxruntime-gpu and an
NVIDIA GPU exist (skipped elsewhere, with the reason)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from farm.core.errors import ConversionError, ToolchainMissingError
from farm.core.hosts import NO_CUDA_PROVIDER
from farm.core.jobspec import ConvertOptions
from farm.core.modelfile import ModelFormat
from farm.core.settings import FarmSettings
from workers.backends import all_backends, class_problems
from workers.backends.gpu_ort import cuda_provider
from workers.calibration import synthetic_calibration
from workers.convert import ConversionRequest, plan_variants, verify_variant
from workers.runtime import onnxruntime_runner
from workers.sources import load_source

BACKEND = all_backends()["gpu-ort"]
GPU_PROBLEMS = BACKEND.host_problems()
GPU_REQUEST = ConversionRequest("j", "gpu", "models/m", "0" * 64, ModelFormat.ONNX, [], [], ConvertOptions())
needs_gpu = pytest.mark.skipif(
    bool(GPU_PROBLEMS), reason=f"needs a gpu worker host: {'; '.join(GPU_PROBLEMS)}"
)


def test_an_fp32_variant_records_that_it_runs_with_tf32_off(
    sample_models: dict[str, Path], tmp_path: Path
) -> None:
    # The CUDA provider's default TF32 math is not FP32: it moved ResNet50's outputs by 0.018.
    # Building needs no GPU: what the variant records is what its runner will ask the provider for.
    source = load_source(sample_models["onnx"], ModelFormat.ONNX, [], [], tmp_path)
    calibration = synthetic_calibration(source.inputs, samples=4, held_out=4)
    fp32 = BACKEND.convert(source, "fp32", calibration, tmp_path, FarmSettings())
    fp16 = BACKEND.convert(source, "fp16", calibration, tmp_path, FarmSettings())
    assert (fp32.details["provider"], fp32.details["use_tf32"]) == ("CUDAExecutionProvider", "0")
    assert "TF32 off" in fp32.runtime and "TF32" not in fp16.runtime
    assert cuda_provider() == (
        fp32.details["provider"],
        {k: fp32.details[k] for k in ("device_id", "use_tf32")},
    )


def test_the_fp16_variant_keeps_float32_inputs_and_outputs_and_verifies(
    sample_models: dict[str, Path], tmp_path: Path
) -> None:
    source = load_source(sample_models["onnx"], ModelFormat.ONNX, [], [], tmp_path)
    calibration = synthetic_calibration(source.inputs, samples=8, held_out=16)
    variant = BACKEND.convert(source, "fp16", calibration, tmp_path, FarmSettings())
    graph = onnx.load(str(variant.path)).graph
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.initializer)
    assert {v.type.tensor_type.elem_type for v in [*graph.input, *graph.output]} == {onnx.TensorProto.FLOAT}
    assert variant.format == "onnx" and "CUDAExecutionProvider" in variant.runtime
    assert variant.details["use_tf32"] == "0" and {"gpu_name", "compute_capability"} <= set(variant.details)
    # The same graph on the CPU provider: FP16 arithmetic still within FP16's rule.
    result = verify_variant(
        source, calibration, onnxruntime_runner(variant.path, source.output_names), "fp16"
    )
    assert result.passed, result.summary()


@pytest.mark.skipif(not GPU_PROBLEMS, reason="this host runs the CUDA provider")
def test_a_variant_never_runs_quietly_on_the_cpu_instead(
    sample_models: dict[str, Path], tmp_path: Path
) -> None:
    source = load_source(sample_models["onnx"], ModelFormat.ONNX, [], [], tmp_path)
    variant = BACKEND.convert(
        source, "fp32", synthetic_calibration(source.inputs, 4, 4), tmp_path, FarmSettings()
    )
    # ONNX Runtime itself would fall back to its CPU provider with a warning; the runner refuses.
    with pytest.raises(ConversionError, match="could not start its CUDAExecutionProvider here"):
        BACKEND.load(variant, source.output_names)


@pytest.mark.skipif(not GPU_PROBLEMS, reason="this host can serve the gpu queue")
def test_a_host_without_the_gpu_build_or_a_gpu_says_what_is_missing() -> None:
    assert NO_CUDA_PROVIDER in GPU_PROBLEMS or any("no NVIDIA GPU" in p for p in GPU_PROBLEMS)
    if NO_CUDA_PROVIDER in GPU_PROBLEMS:  # what a user reads: the extra, and the build to swap
        [ort_problems] = [p for p in class_problems("gpu") if p.startswith("gpu-ort: ")]
        assert "pip install 'farm[gpu]'" in ort_problems and "onnxruntime-gpu" in ort_problems
    request = GPU_REQUEST
    with pytest.raises(
        ToolchainMissingError, match=r"this gpu worker can build nothing: gpu-ort: .*; gpu-tensorrt: "
    ):
        plan_variants(request, FarmSettings())
    assert len(class_problems("gpu")) == 2


@needs_gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_variants_run_on_the_cuda_provider_and_verify(
    precision: str, sample_models: dict[str, Path], tmp_path: Path
) -> None:
    source = load_source(sample_models["onnx"], ModelFormat.ONNX, [], [], tmp_path)
    calibration = synthetic_calibration(source.inputs, samples=8, held_out=64)
    variant = BACKEND.convert(source, precision, calibration, tmp_path, FarmSettings())
    result = verify_variant(source, calibration, BACKEND.load(variant, source.output_names), precision)
    assert result.passed, result.summary()  # fp32 within FP32's tolerance: TF32 is off


@needs_gpu
def test_a_gpu_worker_plans_the_cuda_provider_without_tensorflow() -> None:
    planned = [(plan.backend, plan.precision) for plan in plan_variants(GPU_REQUEST, FarmSettings())]
    assert (
        planned[0] == ("native", "fp32") and ("gpu-ort", "fp32") in planned and ("gpu-ort", "fp16") in planned
    )
