"""Latency and throughput of a variant on this worker's hardware, and its speedup over the native
baseline measured side by side.

Machines are noisy. A variant is timed in windows alternating with the baseline's (baseline,
variant, baseline, variant, ...) on the same inputs, so a burst of noise hits both; each pair of
windows gives one ratio, and the speedup is the median of those ratios, kept with its 95%
confidence interval. Timing goes on until that interval spans at most 10% (a runner timed alone:
until its last three window medians agree within 10%), or the time budget ends, which is
recorded as unsettled. More pairs narrow the interval, so a noisy host needs more time, not luck.
The latencies kept beside a speedup (the variant's percentiles and throughput, the baseline's p50
and throughput) summarise the same pairs of windows as its ratios.

Only one process per host times at once: ``exclusive`` is a host-wide lock, held for the timing of
one batch size and never for conversion, so workers that share a host do not time each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np

from farm.core.modelfile import TensorSpec
from workers.calibration import random_feeds
from workers.runtime import Runner

WARMUP_RUNS = 3  # before the first batch size: loads, allocates, fills caches
RESIZE_WARMUP_RUNS = 1  # before each later one: only the new shape is new
MIN_RUNS_PER_WINDOW = 3
STABLE_WINDOWS = 3
STABLE_SPREAD = 0.10
MIN_GAIN = 1.05  # a larger batch must raise throughput by 5% for the sweep to go on...
# ...within this many doublings: one noisy timing must not end a sweep that is still rising (a
# tree ensemble's own predict gains on every doubling up to thousands of rows).
PATIENCE = 2

Exclusive = Callable[[], AbstractContextManager[object]]


@dataclass(frozen=True)
class BenchmarkPlan:
    window_s: float  # length of one timing window
    budget_s: float  # most time spent timing one batch size (both runners, when paired)
    max_batch: int  # the sweep's largest batch (powers of two from 1)


@dataclass(frozen=True)
class Pairing:
    """The baseline timed in the windows interleaved with the variant's, at the same batch size.
    Its p50 and the variant's (Measurement.p50_ms) summarise the same pairs of windows whose
    ratios give the speedup, so the three numbers shown side by side come from one timing."""

    baseline_p50_ms: float
    baseline_throughput_per_s: float
    speedup: float  # median over window pairs of baseline median latency / variant median latency
    speedup_low: float  # the 95% confidence interval of that median (median_interval)
    speedup_high: float
    pairs: int


@dataclass(frozen=True)
class Measurement:
    batch_size: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    throughput_per_s: float
    runs: int
    stable: bool
    pairing: Pairing | None = None


def sweep(
    runner: Runner,
    specs: list[TensorSpec],
    plan: BenchmarkPlan,
    baseline: Runner | None = None,
    exclusive: Exclusive = nullcontext,
) -> list[Measurement]:
    """Batch 1, then doubling while every input's batch is free and throughput keeps rising
    (a gain within PATIENCE doublings); each batch size timed against ``baseline`` when one is
    given."""

    def timed(batch: int, warmup_runs: int) -> Measurement:
        with exclusive():
            return measure(runner, specs, batch, plan, warmup_runs, baseline)

    results = [timed(1, WARMUP_RUNS)]
    if not all(spec.sample_shape[0] is None for spec in specs):
        return results
    batch, without_gain = 2, 0
    while batch <= plan.max_batch:
        result = timed(batch, RESIZE_WARMUP_RUNS)
        best = max(r.throughput_per_s for r in results)
        results.append(result)
        without_gain = without_gain + 1 if result.throughput_per_s < best * MIN_GAIN else 0
        if without_gain >= PATIENCE:
            break  # the hardware is saturated: larger batches only add latency
        batch *= 2
    return results


def measure(
    runner: Runner,
    specs: list[TensorSpec],
    batch: int,
    plan: BenchmarkPlan,
    warmup_runs: int,
    baseline: Runner | None = None,
) -> Measurement:
    """One batch size: alone, or in windows alternating with ``baseline``'s."""
    feeds = random_feeds(specs, batch)
    timed = [runner] if baseline is None else [baseline, runner]  # the baseline's window first
    for each in timed:
        for _ in range(warmup_runs):
            each(feeds)
    windows: list[list[list[float]]] = [[] for _ in timed]  # per runner, per window: latencies
    deadline = time.perf_counter() + plan.budget_s
    stable = False
    while not stable:
        for timings, each in zip(windows, timed, strict=True):
            timings.append(_window(each, feeds, plan.window_s))
        stable = settled(windows)
        if time.perf_counter() > deadline:
            break
    if baseline is None:
        return _summary(batch, windows[0][-STABLE_WINDOWS:], stable, None)  # the windows that settled
    return paired_measurement(batch, windows[0], windows[1], stable)


def paired_measurement(
    batch: int, baseline_windows: list[list[float]], variant_windows: list[list[float]], stable: bool
) -> Measurement:
    """A variant timed beside the baseline: its latencies, the baseline's and the speedup, all
    from the same completed pairs of windows."""
    pairs = min(len(baseline_windows), len(variant_windows))
    baseline_windows, variant_windows = baseline_windows[:pairs], variant_windows[:pairs]
    return _summary(batch, variant_windows, stable, _pairing(baseline_windows, variant_windows, batch))


def settled(windows: list[list[list[float]]]) -> bool:
    """A lone runner: its last three window medians agree within 10%. Paired: the confidence
    interval of the median ratio spans at most 10%."""
    if len(windows) == 1:
        return is_stable([float(np.median(w)) for w in windows[0][-STABLE_WINDOWS:]])
    ratios = paired_ratios(*windows)
    if len(ratios) < STABLE_WINDOWS:
        return False
    low, high = median_interval(ratios)
    return high <= low * (1 + STABLE_SPREAD)


def paired_ratios(baseline_windows: list[list[float]], variant_windows: list[list[float]]) -> list[float]:
    """One ratio per completed pair of windows: the baseline's median latency over the variant's."""
    pairs = zip(baseline_windows, variant_windows, strict=False)  # the last pair may lack its variant
    return [float(np.median(b) / np.median(v)) for b, v in pairs]


def median_interval(values: list[float]) -> tuple[float, float]:
    """A distribution-free 95% confidence interval of the median: the order statistics
    1.96 * sqrt(n) / 2 ranks either side of it (the binomial's normal approximation); with
    fewer than six values, the smallest and the largest."""
    ordered = sorted(values)
    outside = max(0, int(np.floor((len(ordered) - 1.96 * np.sqrt(len(ordered))) / 2)))
    return ordered[outside], ordered[len(ordered) - 1 - outside]


def _pairing(baseline_windows: list[list[float]], variant_windows: list[list[float]], batch: int) -> Pairing:
    ratios = paired_ratios(baseline_windows, variant_windows)
    low, high = median_interval(ratios)
    baseline = _summary(batch, baseline_windows, stable=True, pairing=None)
    return Pairing(
        baseline_p50_ms=baseline.p50_ms,
        baseline_throughput_per_s=baseline.throughput_per_s,
        speedup=float(np.median(ratios)),
        speedup_low=low,
        speedup_high=high,
        pairs=len(ratios),
    )


def _summary(batch: int, windows: list[list[float]], stable: bool, pairing: Pairing | None) -> Measurement:
    """Percentiles and throughput over every latency of ``windows``."""
    latencies = np.asarray([t for window in windows for t in window])
    return Measurement(
        batch_size=batch,
        p50_ms=float(np.percentile(latencies, 50) * 1000),
        p95_ms=float(np.percentile(latencies, 95) * 1000),
        p99_ms=float(np.percentile(latencies, 99) * 1000),
        throughput_per_s=float(batch / np.median(latencies)),
        runs=len(latencies),
        stable=stable,
        pairing=pairing,
    )


def is_stable(series: list[float]) -> bool:
    if len(series) < STABLE_WINDOWS:
        return False
    return max(series) <= min(series) * (1 + STABLE_SPREAD)


def _window(runner: Runner, feeds: dict[str, np.ndarray], seconds: float) -> list[float]:
    latencies: list[float] = []
    end = time.perf_counter() + seconds
    while len(latencies) < MIN_RUNS_PER_WINDOW or time.perf_counter() < end:
        start = time.perf_counter()
        runner(feeds)
        latencies.append(time.perf_counter() - start)
    return latencies
