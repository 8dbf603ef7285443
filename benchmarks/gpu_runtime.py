"""A variant run by the farm's runner against a plain ONNX Runtime loop over the same file, on the
same device and in the same run: the runner must cost at most 10% of throughput at batch 32.

    python3 benchmarks/gpu_runtime.py resnet50.onnx                  # gpu-ort: the CUDA provider
    python3 benchmarks/gpu_runtime.py mlp.onnx --backend cpu         # the same comparison on a CPU

Both sides feed numpy arrays and get numpy arrays back, as batch scoring does. Timing windows take
turns (plain, farm, plain, farm, ...) and each ratio is of medians from this run. For the CUDA
provider the plain loop runs twice: with ONNX Runtime's defaults (TF32 on) and with the farm's
provider options (TF32 off), so the runner's own overhead reads apart from TF32's speed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from farm.core.modelfile import ModelFormat  # noqa: E402
from farm.core.settings import FarmSettings  # noqa: E402
from workers.backends import all_backends  # noqa: E402
from workers.calibration import random_feeds, synthetic_calibration  # noqa: E402
from workers.sources import load_source  # noqa: E402

Run = Callable[[dict[str, np.ndarray]], object]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="an ONNX file with a free batch dimension")
    parser.add_argument("--backend", default="gpu-ort", choices=["gpu-ort", "cpu"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0, help="timing per runner and precision")
    parser.add_argument("--precisions", default="fp32,fp16", help="those the backend builds are timed")
    args = parser.parse_args()

    settings = FarmSettings()
    backend = all_backends()[args.backend]
    if problems := backend.host_problems():
        print(f"error: {args.backend} cannot run here: {'; '.join(problems)}", file=sys.stderr)
        return 4
    workdir = Path(tempfile.mkdtemp(prefix="farm-runtime-"))
    source = load_source(args.model, ModelFormat.ONNX, [], [], workdir)
    feeds = random_feeds(source.inputs, args.batch)
    calibration = synthetic_calibration(source.inputs, samples=8, held_out=8)
    print(f"{args.model.name}, batch {args.batch}, {args.backend}: {backend.toolchain(settings)}")
    print(f"{'precision':10}{'runner':34}{'ms/batch':>10}{'rows/s':>11}{'vs plain':>10}")
    for precision in [p for p in args.precisions.split(",") if p in backend.precisions]:
        variant = backend.convert(source, precision, calibration, workdir, settings)
        runners = {"farm runner": backend.load(variant, source.output_names)}
        runners |= plain_loops(variant.path, source.output_names, args.backend)
        timings = alternate(runners, feeds, args.seconds)
        farm_ms = timings["farm runner"]
        for name, ms in timings.items():
            ratio = "" if name == "farm runner" else f"{ms / farm_ms:9.3f}x"
            print(f"{precision:10}{name:34}{ms:10.3f}{args.batch / ms * 1000:11.0f}{ratio:>10}")
    print("vs plain: plain time over the farm runner's (1.000x: no overhead; under 0.900x: over 10% slower)")
    return 0


def plain_loops(path: Path, outputs: list[str], backend: str) -> dict[str, Run]:
    """ONNX Runtime sessions over the variant's own file, as a user would open them."""
    import onnxruntime as ort

    def loop(providers: list) -> Run:
        session = ort.InferenceSession(str(path), providers=providers)
        return lambda feeds: session.run(outputs, feeds)

    if backend == "cpu":
        return {"plain ORT, CPU provider": loop(["CPUExecutionProvider"])}
    from workers.backends.gpu_ort import cuda_provider

    return {
        "plain ORT, CUDA defaults (TF32 on)": loop(["CUDAExecutionProvider"]),
        "plain ORT, CUDA, TF32 off": loop([cuda_provider()]),
    }


def alternate(runners: dict[str, Run], feeds: dict[str, np.ndarray], seconds: float) -> dict[str, float]:
    """Median milliseconds per call of each runner, over windows that take turns."""
    for run in runners.values():  # warm-up: allocations, kernel selection, caches
        for _ in range(5):
            run(feeds)
    rounds = 10
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            deadline = time.perf_counter() + seconds / rounds
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                run(feeds)
                samples[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(times) for name, times in samples.items()}


if __name__ == "__main__":
    raise SystemExit(main())
