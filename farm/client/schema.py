"""The JSON farm prints for scripts and for schedulers that place work: ``farm report --json``,
``farm status --json`` and ``farm jobs --json``. One vocabulary, versioned by ``schema_version``:
within a version no field is renamed, removed or given another meaning (new fields may appear);
README "JSON for schedulers" documents every field.

Every document is ``{"schema_version": 1, "kind": "report" | "status" | "jobs", ...}``. A job is
the same object wherever it appears, and so is a variant: a report's variants are a status's.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from db.models import BenchmarkResult
from farm.client.jobs import JobView
from farm.client.progress import InferProgress, infer_progress
from farm.client.report import ReportRow, build_report
from farm.core.jobspec import InferOptions

SCHEMA_VERSION = 1


def report_document(view: JobView, prices: Mapping[str, float]) -> dict[str, Any]:
    return _document("report", job=job_json(view), variants=variants_json(view, prices))


def status_document(view: JobView, prices: Mapping[str, float]) -> dict[str, Any]:
    """A conversion job's tasks and variants, or a scoring job's progress and cost."""
    job = job_json(view)
    if view.is_scoring:
        return _document("status", job=job, scoring=scoring_json(view, prices))
    return _document("status", job=job, tasks=tasks_json(view), variants=variants_json(view, prices))


def jobs_document(views: list[JobView]) -> dict[str, Any]:
    return _document("jobs", jobs=[job_json(view) for view in views])


def _document(kind: str, **body: Any) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "kind": kind, **body}


def job_json(view: JobView) -> dict[str, Any]:
    job = view.job
    if view.is_scoring:
        hardware = list(InferOptions.model_validate(job.options).variants)
    else:
        hardware = [task.hardware for task in view.tasks]
    return {
        "id": job.id,
        "kind": job.kind,
        "state": view.state.value,
        "model": {"name": job.model_name, "format": job.model_format, "sha256": job.model_sha256},
        "hardware": hardware,
        "created_at": _time(job.created_at),
        "cancelled_at": _time(job.cancelled_at),
    }


def tasks_json(view: JobView) -> list[dict[str, Any]]:
    return [
        {
            "hardware": task.hardware,
            "state": task.state,
            "attempts": task.attempts,
            "worker": task.worker,
            "error": task.error,
            "warnings": list(task.warnings),
            "queued_at": _time(task.queued_at),
            "started_at": _time(task.started_at),
            "finished_at": _time(task.finished_at),
        }
        for task in view.tasks
    ]


def variants_json(view: JobView, prices: Mapping[str, float]) -> list[dict[str, Any]]:
    return [variant_json(row, view.benchmarks.get(row.variant_id, [])) for row in build_report(view, prices)]


def variant_json(row: ReportRow, results: list[BenchmarkResult]) -> dict[str, Any]:
    """A report row's every field, its verdict in one word, and the whole throughput sweep."""
    return {
        **row.to_json(),
        "verdict": "baseline" if row.is_baseline else "passed" if row.passed else "failed",
        "throughput_by_batch": [
            {
                "batch_size": result.batch_size,
                "throughput_per_s": result.throughput_per_s,
                "p50_ms": result.p50_ms,
                "p95_ms": result.p95_ms,
                "p99_ms": result.p99_ms,
                "baseline_throughput_per_s": result.baseline_throughput_per_s,
                "stable": result.stable,
            }
            for result in sorted(results, key=lambda result: result.batch_size)
        ],
        # No backend measures energy yet (a GPU's through NVML could): null until one does.
        "energy_j_per_inference": None,
    }


def scoring_json(view: JobView, prices: Mapping[str, float]) -> dict[str, Any]:
    options = InferOptions.model_validate(view.job.options)
    progress: InferProgress = infer_progress(view.shards, prices)
    return {
        "out": options.out,
        "source_job": options.source_job,
        "objective": options.objective,
        "deadline_s": options.deadline_s,
        "estimate": dict(options.estimate),
        "rows": progress.total_rows,
        "rows_done": progress.done_rows,
        "rows_per_s": progress.rows_per_s,
        "eta_s": progress.eta_s,
        "shards": dict(progress.counts),
        "classes": [
            {
                "hardware": share.hardware,
                "variant_id": options.variants.get(share.hardware),
                "serving": options.serving.get(share.hardware),
                "rows": share.rows,
                "shards": share.shards,
                "running": share.running,
                "rows_per_s": share.rows_per_s,
                "machine_s": share.machine_s,
                "price_per_hour": prices.get(share.hardware),
                "cost": share.cost,
            }
            for share in progress.classes
        ],
        "cost": progress.cost,
        "errors": list(progress.errors),
    }


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
