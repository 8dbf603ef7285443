"""A gpu worker's prefork parent never calls into CUDA: a CUDA context made before the fork is
unusable in every pool process (farm.core.hosts). What the parent runs at start-up (the toolchain
check, describe_worker, say_what_builds, each backend's host_problems and toolchain, and
plan_variants for a gpu conversion) must make no call into TensorRT or the CUDA runtime; a pool
process loading a TensorRT variant is where the GPU's identity is asked of CUDA.

No GPU, TensorRT or cuda-python here: the hardware boundary is faked (tests/workers/backends/
fake_gpu.py): an ``nvidia-smi`` on PATH listing an NVIDIA H200, and ``tensorrt`` and
``cuda.bindings.runtime`` modules on sys.path that record every call into them. The farm code is
the real one, run in a subprocess so the fakes and the per-process host caches start fresh.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.workers.backends import fake_gpu

PARENT_AND_POOL = """
import json
from pathlib import Path

from fake_gpu_calls import CALLS
from farm.core.jobspec import ConvertOptions
from farm.core.modelfile import ModelFormat
from farm.core.settings import FarmSettings

settings = FarmSettings()

# The prefork parent, as workers/serve.py runs it before Celery forks the pool.
from workers.serve import refuse_without_toolchain, say_what_builds, worker_hardware
import workers.scoring, workers.tasks  # the task bodies, registered before the fork
from workers.backends import all_backends, backends_for
from workers.control import describe_worker
from workers.convert import ConversionRequest, plan_variants

hardware = worker_hardware("gpu")
refuse_without_toolchain(hardware)
toolchains = describe_worker(hardware, settings)
say_what_builds(hardware, toolchains)
problems = {backend.name: backend.host_problems() for backend in backends_for("gpu")}
every_toolchain = {backend.name: backend.toolchain(settings) for backend in backends_for("gpu")}
request = ConversionRequest("j", "gpu", "models/m", "0" * 64, ModelFormat.ONNX, [], [], ConvertOptions())
planned = [[plan.backend, plan.precision, plan.toolchain] for plan in plan_variants(request, settings)]
parent_calls = list(CALLS)

# A pool process loading a TensorRT variant (workers/convert.py VariantBuilder.build).
from workers.runtime import BuiltVariant

engine = Path(settings.home) / "model_fp32.engine"
engine.parent.mkdir(parents=True, exist_ok=True)
engine.write_text(json.dumps({"inputs": {"x": ["float32", [-1, 4]]}, "outputs": {"y": ["float32", [-1, 2]]}}))
details = json.loads(%(details)r)
variant = BuiltVariant(engine, "tensorrt", "fp32", "tensorrt", details=details)
all_backends()["gpu-tensorrt"].load(variant, ["y"])
print(json.dumps({
    "toolchains": toolchains, "problems": problems, "every_toolchain": every_toolchain,
    "planned": planned, "parent_calls": parent_calls, "pool_calls": CALLS[len(parent_calls):],
}))
"""


def test_a_tensorrt_worker_makes_no_cuda_call_before_it_forks(tmp_path: Path) -> None:
    found = fake_gpu.run(PARENT_AND_POOL % {"details": json.dumps(fake_gpu.ENGINE_DETAILS)}, tmp_path)

    # The fake GPU is what the worker found: TensorRT is usable and keyed by nvidia-smi's answer.
    assert found["problems"]["gpu-tensorrt"] == [], found["problems"]
    label = f"{fake_gpu.GPU_NAME} sm9.0"
    assert found["toolchains"]["gpu-tensorrt"].endswith(label), found["toolchains"]
    assert f"tensorrt {fake_gpu.TENSORRT_VERSION}" in found["toolchains"]["gpu-tensorrt"]
    assert all(text.endswith(label) for text in found["every_toolchain"].values()), found["every_toolchain"]
    tensorrt_plans = [plan for plan in found["planned"] if plan[0] == "gpu-tensorrt"]
    assert [plan[1] for plan in tensorrt_plans] == ["fp32", "fp16", "int8"], found["planned"]
    assert any("--query-gpu=name,compute_cap" in call for call in fake_gpu.nvidia_smi_calls(tmp_path))

    parent_calls = found["parent_calls"]
    assert parent_calls == [], f"CUDA or TensorRT called in the prefork parent: {parent_calls}"

    # The pool process asks CUDA for the GPU's identity when it loads an engine (and builds one).
    pool = found["pool_calls"]
    assert "cudart.cudaGetDeviceProperties(0)" in pool and "cudart.cudaRuntimeGetVersion()" in pool, pool
    assert pool.index("cudart.cudaGetDeviceProperties(0)") < pool.index("tensorrt.Runtime()"), pool
