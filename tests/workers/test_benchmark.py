from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from farm.core.modelfile import TensorSpec
from workers.benchmark import BenchmarkPlan, is_stable, measure, median_interval, settled, sweep

DYNAMIC = [TensorSpec("x", (None, 64), "float32")]
QUICK = BenchmarkPlan(window_s=0.005, budget_s=0.05, max_batch=8)


def matmul(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return [feeds["x"] @ np.ones((64, 64), dtype=np.float32)]


def test_stability_needs_three_windows_within_ten_percent() -> None:
    assert not is_stable([1.0, 1.0])
    assert is_stable([1.0, 1.05, 1.09])
    assert not is_stable([1.0, 1.05, 1.2])


def test_a_measurement_has_ordered_percentiles_and_counts_its_runs() -> None:
    result = measure(matmul, DYNAMIC, 4, QUICK, warmup_runs=1)
    assert result.batch_size == 4 and result.runs >= 3
    assert 0 < result.p50_ms <= result.p95_ms <= result.p99_ms
    assert result.throughput_per_s > 0


def test_the_sweep_doubles_the_batch_from_one_up_to_the_limit_at_most() -> None:
    sizes = [m.batch_size for m in sweep(matmul, DYNAMIC, QUICK)]
    assert sizes[0] == 1 and sizes == [2**i for i in range(len(sizes))] and sizes[-1] <= 8


def test_a_fixed_batch_is_measured_once() -> None:
    assert [m.batch_size for m in sweep(matmul, [TensorSpec("x", (1, 64), "float32")], QUICK)] == [1]


def test_a_variant_is_timed_in_windows_alternating_with_the_baseline() -> None:
    calls: list[str] = []

    def named(name: str):  # type: ignore[no-untyped-def]
        def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            calls.append(name)
            return matmul(feeds)

        return run

    result = measure(named("variant"), DYNAMIC, 2, QUICK, warmup_runs=1, baseline=named("baseline"))
    pairing = result.pairing
    assert pairing is not None and pairing.pairs >= 1
    assert pairing.speedup_low <= pairing.speedup <= pairing.speedup_high
    assert pairing.baseline_p50_ms > 0 and pairing.baseline_throughput_per_s > 0
    # After one warm-up run each, whole windows take turns, the baseline's first.
    runs = [name for index, name in enumerate(calls) if index >= 2]
    turns = [name for index, name in enumerate(runs) if index == 0 or runs[index - 1] != name]
    assert calls[:2] == ["baseline", "variant"]
    assert turns == ["baseline", "variant"] * pairing.pairs


def test_the_host_lock_is_held_per_batch_size_and_a_lone_runner_has_no_pairing() -> None:
    held: list[int] = []

    @contextmanager
    def exclusive() -> Iterator[None]:
        held.append(1)
        yield

    results = sweep(matmul, DYNAMIC, QUICK, baseline=matmul, exclusive=exclusive)
    assert len(held) == len(results) and all(r.pairing is not None for r in results)
    assert all(r.pairing is None for r in sweep(matmul, DYNAMIC, QUICK))


def test_the_median_interval_narrows_with_more_pairs_and_decides_when_timing_settles() -> None:
    assert median_interval([1.0, 5.0, 3.0]) == (1.0, 5.0)  # few pairs: the smallest and largest
    noisy = [1.0, 1.3] + [1.1] * 28  # two outliers among 30 ratios
    low, high = median_interval(noisy)
    assert (low, high) == (1.1, 1.1)
    assert not settled([[[1.0]] * 2, [[1.0]] * 2])  # two pairs: too few to say
    baseline = [[1.1]] * 15 + [[1.6]]  # windows of one latency each; one noisy baseline window
    assert settled([baseline, [[1.0]] * 16]) and not settled([[[1.0], [2.0], [1.0]], [[1.0]] * 3])
