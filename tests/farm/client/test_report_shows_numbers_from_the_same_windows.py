"""The numbers a report row shows beside a speedup come from the windows that speedup was measured
in. A variant's p50 and its speedup summarise the same pairs of windows (it alternating with
native); the native p50 it is compared with is native's in those windows; and when native's own
row, timed alone at another moment, differs from that, the row says so and names the paired figure.

Real timings and real rows: two runners whose latency is real sleep, timed by workers/benchmark.py
(native alone, then the host gets busier and native slows down before the variant is timed beside
it: the moment the report used to mix up, "30.7 ms beside a 12.8 ms baseline and 1.42x faster"),
recorded in the job store on SQLite as a worker records them, read back by the client and drawn by
the CLI's renderer."""

from __future__ import annotations

import re
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from rich.console import Console

from db import store
from db.engine import ensure_schema, session_scope
from db.models import BenchmarkResult, Job, Variant
from farm.cli.render import report_view
from farm.client.jobs import load_job
from farm.client.report import build_report
from farm.core.modelfile import TensorSpec
from farm.core.settings import FarmSettings
from workers.benchmark import BenchmarkPlan, Measurement, paired_measurement, sweep

SPECS = [TensorSpec("x", (1, 4), "float32")]  # a fixed batch: batch 1 only
PLAN = BenchmarkPlan(window_s=0.03, budget_s=1.5, max_batch=1)
SPEEDUP = re.compile(r"(\d+(?:\.\d+)?)x \((\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)\)")
MS = re.compile(r"(\d+(?:\.\d+)?) ms")


class Sleeper:
    """A runner that takes ``latency_s`` per call, for real."""

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s

    def __call__(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        time.sleep(self.latency_s)
        return []


def _record(settings: FarmSettings, measured: dict[str, list[Measurement]]) -> str:
    """A cpu job with one row per backend and its benchmark results, as workers/tasks.py writes them."""
    ensure_schema(settings.database_url)
    with session_scope(settings.database_url) as session:
        job = Job(kind="convert", model_name="m", model_key="k", model_sha256="0" * 64, model_format="onnx")
        (task,) = store.create_job(session, job, ["cpu"], "convert")
        for backend, measurements in measured.items():
            variant = Variant(
                job_id=job.id, task_id=task.id, hardware="cpu", backend=backend, precision="fp32",
                format="onnx", artifact_key="k", sha256="s", size_bytes=1000, passed=True,
                max_abs_error=0.0, max_rel_error=0.0, nan_count=0, inf_count=0, atol=1e-4, rtol=1e-3,
                gate="tolerance", verified_on="calibration",
            )  # fmt: skip
            session.add(variant)
            session.flush()
            assert variant.id is not None
            for m in measurements:
                result = BenchmarkResult(
                    variant_id=variant.id, host="h", hardware="cpu", runtime="sleep",
                    batch_size=m.batch_size, p50_ms=m.p50_ms, p95_ms=m.p95_ms, p99_ms=m.p99_ms,
                    throughput_per_s=m.throughput_per_s, runs=m.runs, stable=m.stable,
                    **(asdict(m.pairing) if m.pairing else {}),
                )  # fmt: skip
                session.add(result)
        return job.id


def _rendered(settings: FarmSettings, job_id: str, wide: bool) -> str:
    console = Console(width=200, record=True, highlight=False)
    console.print(report_view(build_report(load_job(settings, job_id)), "job", wide))
    return console.export_text()


def _line(text: str, variant: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("cpu") and variant in line)


def _found(pattern: re.Pattern[str] | str, text: str) -> tuple[float, ...]:
    match = re.search(pattern, text)
    assert match, (pattern, text)
    return tuple(map(float, match.groups()))


def test_a_variants_p50_the_native_p50_beside_it_and_its_speedup_agree(tmp_path: Path) -> None:
    native, variant = Sleeper(0.002), Sleeper(0.006)
    alone = sweep(native, SPECS, PLAN)  # the baseline's own row: timed alone, the host quiet
    native.latency_s = 0.008  # the host gets busy: native now takes four times as long
    paired = sweep(variant, SPECS, PLAN, baseline=native)  # the variant, beside native
    settings = FarmSettings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'farm.db'}")
    job_id = _record(settings, {"native": alone, "cpu": paired})

    for wide in (False, True):
        text = _rendered(settings, job_id, wide)
        (shown_p50,) = _found(MS, _line(text, "cpu onnx fp32"))
        speedup, low, high = _found(SPEEDUP, _line(text, "cpu onnx fp32"))
        # What a reader compares the variant with: the native figure the report names as what the
        # speedups compare with (a note may wrap), else the native row's p50.
        named = re.search(r"native\s+took\s+(\d+(?:\.\d+)?)\s+ms", text)
        (native_p50,) = (float(named.group(1)),) if named else _found(MS, _line(text, "native"))
        ratio = native_p50 / shown_p50
        assert (ratio > 1) == (speedup > 1) and low / 1.15 <= ratio <= high * 1.15, (
            f"shown: native {native_p50} ms, variant {shown_p50} ms (ratio {ratio:.2f}), "
            f"speedup {speedup}x ({low}-{high})\n{text}"
        )
        assert "p50 timed alone" in text  # the native row says which is which

    rows = {row.backend: row for row in build_report(load_job(settings, job_id))}
    row = rows["cpu"]
    assert row.p50_ms and row.baseline_p50_ms and row.speedup_low and row.speedup_high
    pairing = paired[0].pairing
    assert pairing is not None and row.baseline_p50_ms == pairing.baseline_p50_ms
    # The p50s kept beside the speedup are from its windows: their ratio lies in its interval
    # (the median of window ratios and the ratio of pooled medians differ by noise only).
    assert row.speedup_low / 1.1 <= row.baseline_p50_ms / row.p50_ms <= row.speedup_high * 1.1, row

    assert any("p50 timed alone" in note for note in rows["native"].notes)


def test_a_paired_measurement_summarises_every_pair_its_ratios_come_from() -> None:
    """Windows whose last three differ from the rest: the p50s shown beside the speedup must be
    those of all the pairs, as the speedup is, not of the last three windows."""
    baseline = [[0.010] * 3 for _ in range(20)]
    variant = [[0.005] * 3 for _ in range(17)] + [[0.009] * 3 for _ in range(3)]
    measured = paired_measurement(1, baseline, variant, stable=True)
    assert measured.pairing is not None and measured.pairing.speedup == 2.0 and measured.runs == 60
    assert measured.p50_ms == 5.0 and measured.pairing.baseline_p50_ms == 10.0
