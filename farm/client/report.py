"""The comparison of a job's variants: one row each, with its verdict and its speedup over the
native baseline, timed side by side on the same worker (workers/benchmark.py).

A variant's p50 and its speedup come from one timing: the pairs of windows in which it and native
ran alternately, whose native p50 is kept beside them (``baseline_p50_ms``). The native baseline's
own row is timed alone, at another moment; when that differs from what native took beside its
variants, its row says so and shows the paired figure, the one their speedups compare with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from db.models import BenchmarkResult, Variant
from farm.client.jobs import JobView
from farm.core.cost import cost_per_million
from farm.core.outputkinds import THIN_EVIDENCE
from farm.core.targets import NATIVE


@dataclass(frozen=True)
class ReportRow:
    variant_id: int
    hardware: str
    backend: str
    format: str
    precision: str
    size_bytes: int
    passed: bool
    failure: str | None  # why it failed verification
    gate: str  # the rule that judged it: tolerance, agreement or accuracy (workers/verify.py)
    verified_on: str  # synthetic, calibration (the held-out part of --calib) or eval (--eval)
    verify_samples: int
    outputs: list[dict[str, Any]]  # per output: kind, rule, numbers, failures (workers/verify.py)
    max_abs_error: float
    max_rel_error: float
    mean_error: float  # mean |error| over the output's scale
    top1_agreement: float | None
    accuracy: float | None  # on the labelled verification samples
    reference_accuracy: float | None  # the native model's on the same samples
    nan_count: int
    inf_count: int
    p50_ms: float | None  # batch 1; a variant's from the windows paired with native's
    baseline_p50_ms: float | None  # batch 1: native's p50 in those same windows (none on native's row)
    p95_ms: float | None
    p99_ms: float | None
    throughput_per_s: float | None  # the best over the batch sweep
    best_batch: int | None
    speedup: float | None  # batch 1, median of paired window ratios native / this, same windows as the p50s
    speedup_low: float | None  # the 95% confidence interval of that median
    speedup_high: float | None
    throughput_speedup: float | None  # best throughput / native's best at the same batch sizes
    stable: bool  # the timings shown (batch 1 and the best throughput's batch) settled within 10%
    cached_from: int | None
    build_s: float  # convert and verify, on the worker
    benchmark_s: float
    runtime: str
    host: str
    measured_on: str
    artifact_key: str
    notes: list[str]
    # What a million inferences cost on one machine of its class at the best throughput; None
    # when its class has no price (FARM_COST_PER_HOUR_<CLASS>) or it has no benchmark.
    cost_per_million: float | None = None

    @property
    def is_baseline(self) -> bool:
        return self.backend == NATIVE

    @property
    def thin_evidence(self) -> bool:
        return not self.is_baseline and self.verify_samples < THIN_EVIDENCE

    @property
    def failed_outputs(self) -> list[str]:
        return [output["name"] for output in self.outputs if output.get("failures")]

    @property
    def accuracy_change_points(self) -> float | None:
        if self.accuracy is None or self.reference_accuracy is None:
            return None
        return 100 * (self.accuracy - self.reference_accuracy)

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "accuracy_change_points": self.accuracy_change_points,
            "thin_evidence": self.thin_evidence,
        }


ALONE_VS_PAIRED = 0.10  # native alone and native beside its variants differ: its row says so


def build_report(view: JobView, prices: Mapping[str, float] | None = None) -> list[ReportRow]:
    """One row per variant; ``prices`` (per machine-hour, by hardware class) give their costs."""
    rows = [_row(variant, view.benchmarks.get(variant.id or -1, [])) for variant in view.variants]
    prices = prices or {}
    rows = [
        replace(row, cost_per_million=cost_per_million(prices.get(row.hardware), row.throughput_per_s))
        for row in rows
    ]
    baselines = {row.hardware: row for row in rows if row.is_baseline}
    rows = [_with_speedups(row, baselines.get(row.hardware)) for row in rows]
    rows = [_with_paired_note(row, rows) if row.is_baseline else row for row in rows]
    return sorted(rows, key=lambda row: (row.hardware, not row.is_baseline, row.backend, row.precision))


def _row(variant: Variant, results: list[BenchmarkResult]) -> ReportRow:
    single = next((r for r in results if r.batch_size == 1), None)
    best = max(results, key=lambda r: r.throughput_per_s, default=None)
    baseline_best = max((r.baseline_throughput_per_s or 0.0 for r in results), default=0.0)
    return ReportRow(
        variant_id=variant.id or -1,
        hardware=variant.hardware,
        backend=variant.backend,
        format=variant.format,
        precision=variant.precision,
        size_bytes=variant.size_bytes,
        passed=variant.passed,
        failure=variant.failure,
        gate=variant.gate,
        verified_on=variant.verified_on,
        verify_samples=variant.verify_samples,
        outputs=list(variant.verification),
        max_abs_error=variant.max_abs_error,
        max_rel_error=variant.max_rel_error,
        mean_error=variant.mean_error,
        top1_agreement=variant.top1_agreement,
        accuracy=variant.accuracy,
        reference_accuracy=variant.reference_accuracy,
        nan_count=variant.nan_count,
        inf_count=variant.inf_count,
        p50_ms=single.p50_ms if single else None,
        baseline_p50_ms=single.baseline_p50_ms if single else None,
        p95_ms=single.p95_ms if single else None,
        p99_ms=single.p99_ms if single else None,
        throughput_per_s=best.throughput_per_s if best else None,
        best_batch=best.batch_size if best else None,
        speedup=single.speedup if single else None,
        speedup_low=single.speedup_low if single else None,
        speedup_high=single.speedup_high if single else None,
        throughput_speedup=_ratio(best.throughput_per_s, baseline_best) if best else None,
        stable=all(r.stable for r in (single, best) if r is not None) and bool(results),
        cached_from=variant.reused_from,
        build_s=variant.build_s,
        benchmark_s=variant.benchmark_s,
        runtime=results[0].runtime if results else "",
        host=results[0].host if results else "",
        measured_on=results[0].hardware if results else "",
        artifact_key=variant.artifact_key,
        notes=list(variant.notes),
    )


def _with_speedups(row: ReportRow, baseline: ReportRow | None) -> ReportRow:
    """The baseline's own row is 1x. Rows timed before speedups were paired (schema 0003) get the
    ratio of two separate measurements, the best they have."""
    if row.is_baseline:
        return replace(row, speedup=1.0, throughput_speedup=1.0)
    if baseline is None or row.speedup is not None:
        return row
    return replace(  # computed from the p50s shown: the native one beside it is the baseline's own
        row,
        baseline_p50_ms=baseline.p50_ms,
        speedup=_ratio(baseline.p50_ms, row.p50_ms),
        throughput_speedup=_ratio(row.throughput_per_s, baseline.throughput_per_s),
    )


def _with_paired_note(baseline: ReportRow, rows: list[ReportRow]) -> ReportRow:
    """Native's row shows native timed alone; when native took more or less than that beside its
    variants, which is what their speedups compare with, it says so."""
    alone = baseline.p50_ms
    paired = sorted(
        row.baseline_p50_ms
        for row in rows
        if row.hardware == baseline.hardware and not row.is_baseline and row.baseline_p50_ms
    )
    if not alone or not paired or all(abs(p / alone - 1) <= ALONE_VS_PAIRED for p in paired):
        return baseline
    took = _ms(paired[0]) if _ms(paired[0]) == _ms(paired[-1]) else f"{_ms(paired[0])}-{_ms(paired[-1])}"
    note = f"p50 timed alone; timed beside its variants native took {took}, what their speedups compare with"
    return replace(baseline, notes=[*baseline.notes, note])


def _ms(value: float) -> str:
    """About three significant figures, as the report's table shows latencies."""
    decimals = 0 if value >= 100 else 1 if value >= 10 else 2 if value >= 1 else 3
    return f"{value:.{decimals}f} ms"


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return numerator / denominator
