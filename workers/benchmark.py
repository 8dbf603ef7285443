"""Latency and throughput of a variant on this worker's hardware, measured until stable.

Machines are noisy: each batch size is timed in windows until the median latency of the last
three windows agrees within 10% (or the time budget ends, which is recorded as unstable).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from workers.backends.base import Runner
from workers.calibration import random_feeds
from workers.sources import TensorSpec

WARMUP_RUNS = 3  # before the first batch size: loads, allocates, fills caches
RESIZE_WARMUP_RUNS = 1  # before each later one: only the new shape is new
MIN_RUNS_PER_WINDOW = 3
STABLE_WINDOWS = 3
STABLE_SPREAD = 0.10
MIN_GAIN = 1.05  # a larger batch must raise throughput by 5% for the sweep to go on


@dataclass(frozen=True)
class BenchmarkPlan:
    window_s: float  # length of one timing window
    budget_s: float  # most time spent timing one batch size
    max_batch: int  # the sweep's largest batch (powers of two from 1)


@dataclass(frozen=True)
class Measurement:
    batch_size: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    throughput_per_s: float
    runs: int
    stable: bool


def sweep(runner: Runner, specs: list[TensorSpec], plan: BenchmarkPlan) -> list[Measurement]:
    """Batch 1, then doubling while every input's batch is free and throughput keeps rising."""
    results = [measure(runner, specs, 1, plan, WARMUP_RUNS)]
    if not all(spec.shape and spec.shape[0] is None for spec in specs):
        return results
    batch = 2
    while batch <= plan.max_batch:
        result = measure(runner, specs, batch, plan, RESIZE_WARMUP_RUNS)
        best = max(r.throughput_per_s for r in results)
        results.append(result)
        if result.throughput_per_s < best * MIN_GAIN:
            break  # the hardware is saturated: larger batches only add latency
        batch *= 2
    return results


def measure(
    runner: Runner, specs: list[TensorSpec], batch: int, plan: BenchmarkPlan, warmup_runs: int
) -> Measurement:
    feeds = random_feeds(specs, batch)
    for _ in range(warmup_runs):
        runner(feeds)
    windows: list[list[float]] = []
    deadline = time.perf_counter() + plan.budget_s
    stable = False
    while not stable:
        windows.append(_window(runner, feeds, plan.window_s))
        stable = is_stable([float(np.median(w)) for w in windows[-STABLE_WINDOWS:]])
        if time.perf_counter() > deadline:
            break
    latencies = np.asarray([t for window in windows[-STABLE_WINDOWS:] for t in window])
    return Measurement(
        batch_size=batch,
        p50_ms=float(np.percentile(latencies, 50) * 1000),
        p95_ms=float(np.percentile(latencies, 95) * 1000),
        p99_ms=float(np.percentile(latencies, 99) * 1000),
        throughput_per_s=float(batch / np.median(latencies)),
        runs=len(latencies),
        stable=stable,
    )


def is_stable(window_medians: list[float]) -> bool:
    if len(window_medians) < STABLE_WINDOWS:
        return False
    return max(window_medians) <= min(window_medians) * (1 + STABLE_SPREAD)


def _window(runner: Runner, feeds: dict[str, np.ndarray], seconds: float) -> list[float]:
    latencies: list[float] = []
    end = time.perf_counter() + seconds
    while len(latencies) < MIN_RUNS_PER_WINDOW or time.perf_counter() < end:
        start = time.perf_counter()
        runner(feeds)
        latencies.append(time.perf_counter() - start)
    return latencies
