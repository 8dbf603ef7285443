from __future__ import annotations

import numpy as np

from workers.benchmark import BenchmarkPlan, is_stable, measure, sweep
from workers.sources import TensorSpec

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
