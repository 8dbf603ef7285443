"""A short latency and throughput benchmark of a variant on this worker's hardware."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from workers.backends.base import Runner
from workers.sources import TensorSpec
from workers.verify import sample_inputs

WARMUP_RUNS = 3
MIN_RUNS = 10
MAX_RUNS = 1000


@dataclass(frozen=True)
class Measurement:
    batch_size: int
    p50_ms: float
    p95_ms: float
    throughput_per_s: float
    runs: int


def batch_sizes(specs: list[TensorSpec], large_batch: int) -> list[int]:
    """Batch 1 always; the large batch too when every input's first dimension is free."""
    dynamic = all(spec.shape and spec.shape[0] is None for spec in specs)
    return [1, large_batch] if dynamic and large_batch > 1 else [1]


def measure(runner: Runner, specs: list[TensorSpec], batch: int, seconds: float) -> Measurement:
    """Warm up, then time single runs until ``seconds`` pass (at least MIN_RUNS, at most MAX_RUNS)."""
    feeds = sample_inputs(specs, batch)
    for _ in range(WARMUP_RUNS):
        runner(feeds)
    latencies = []
    deadline = time.perf_counter() + seconds
    while len(latencies) < MAX_RUNS and (len(latencies) < MIN_RUNS or time.perf_counter() < deadline):
        start = time.perf_counter()
        runner(feeds)
        latencies.append(time.perf_counter() - start)
    seconds_each = np.asarray(latencies)
    return Measurement(
        batch_size=batch,
        p50_ms=float(np.percentile(seconds_each, 50) * 1000),
        p95_ms=float(np.percentile(seconds_each, 95) * 1000),
        throughput_per_s=float(batch / seconds_each.mean()),
        runs=len(latencies),
    )
