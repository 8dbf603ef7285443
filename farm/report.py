"""The comparison of a job's variants: one row each, with its speedup over the native baseline
measured on the same hardware class (the same worker kind, in the same job)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from db.models import BenchmarkResult, Variant
from farm.client import JobView
from workers.backends import NATIVE


@dataclass(frozen=True)
class ReportRow:
    variant_id: int
    hardware: str
    backend: str
    format: str
    precision: str
    size_bytes: int
    passed: bool
    max_abs_error: float
    max_rel_error: float
    top1_agreement: float | None
    nan_count: int
    inf_count: int
    p50_ms: float | None  # batch 1
    p95_ms: float | None
    p99_ms: float | None
    throughput_per_s: float | None  # the best over the batch sweep
    best_batch: int | None
    speedup: float | None  # native p50 / this p50, both at batch 1 on the same hardware class
    throughput_speedup: float | None  # best throughput / native best throughput
    stable: bool  # every timing of this variant settled within 10%
    cached_from: int | None
    build_s: float  # convert and verify, on the worker
    benchmark_s: float
    runtime: str
    host: str
    measured_on: str
    artifact_key: str
    notes: list[str]

    @property
    def is_baseline(self) -> bool:
        return self.backend == NATIVE

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def build_report(view: JobView) -> list[ReportRow]:
    rows = [_row(variant, view.benchmarks.get(variant.id or -1, [])) for variant in view.variants]
    baselines = {row.hardware: row for row in rows if row.is_baseline}
    return sorted(
        (_with_speedups(row, baselines.get(row.hardware)) for row in rows),
        key=lambda row: (row.hardware, not row.is_baseline, row.backend, row.precision),
    )


def _row(variant: Variant, results: list[BenchmarkResult]) -> ReportRow:
    single = next((r for r in results if r.batch_size == 1), None)
    best = max(results, key=lambda r: r.throughput_per_s, default=None)
    return ReportRow(
        variant_id=variant.id or -1,
        hardware=variant.hardware,
        backend=variant.backend,
        format=variant.format,
        precision=variant.precision,
        size_bytes=variant.size_bytes,
        passed=variant.passed,
        max_abs_error=variant.max_abs_error,
        max_rel_error=variant.max_rel_error,
        top1_agreement=variant.top1_agreement,
        nan_count=variant.nan_count,
        inf_count=variant.inf_count,
        p50_ms=single.p50_ms if single else None,
        p95_ms=single.p95_ms if single else None,
        p99_ms=single.p99_ms if single else None,
        throughput_per_s=best.throughput_per_s if best else None,
        best_batch=best.batch_size if best else None,
        speedup=None,
        throughput_speedup=None,
        stable=bool(results) and all(r.stable for r in results),
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
    if baseline is None:
        return row
    return replace(
        row,
        speedup=_ratio(baseline.p50_ms, row.p50_ms),
        throughput_speedup=_ratio(row.throughput_per_s, baseline.throughput_per_s),
    )


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return numerator / denominator
