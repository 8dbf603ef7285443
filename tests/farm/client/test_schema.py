"""The JSON for schedulers: one versioned vocabulary across report, status and jobs, with costs
that can be recomputed from the document's own throughputs."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from farm.cli.render import REPORT_WIDTH, report_view
from farm.client.report import build_report
from farm.client.schema import SCHEMA_VERSION, jobs_document, report_document, status_document
from farm.core.cost import money
from tests.farm.client.test_report import _timing, _view

PRICES = {"cpu": 0.10, "fpga": 1.65}  # arm has no price: its rows show no cost


def test_a_report_document_is_versioned_and_costs_recompute_from_its_throughput() -> None:
    view = _view()
    view.benchmarks[2].append(_timing(2, 0.2, 4.0))  # a second batch size: the sweep is listed whole
    view.benchmarks[2][-1].batch_size = 8
    document = json.loads(json.dumps(report_document(view, PRICES)))  # plain JSON, nothing else
    assert (document["schema_version"], document["kind"]) == (SCHEMA_VERSION, "report")
    assert document["job"] == {
        "id": "j", "kind": "convert", "state": "queued", "hardware": ["cpu"],
        "model": {"name": "m.pb", "format": "pb", "sha256": "s"},
        "created_at": view.job.created_at.isoformat(), "cancelled_at": None,
    }  # fmt: skip
    variants = {v["variant_id"]: v for v in document["variants"]}
    assert [variants[i]["verdict"] for i in (1, 2, 4)] == ["baseline", "failed", "passed"]
    for variant in document["variants"]:
        price = PRICES.get(variant["hardware"])
        if price is None:
            assert variant["cost_per_million"] is None
        else:
            expected = price / 3600 / variant["throughput_per_s"] * 1e6
            assert variant["cost_per_million"] == pytest.approx(expected, rel=1e-12)
        assert variant["energy_j_per_inference"] is None  # measured by no backend yet
    sweep = variants[2]["throughput_by_batch"]
    assert [b["batch_size"] for b in sweep] == [1, 8] and variants[2]["best_batch"] == 8
    assert variants[2]["throughput_per_s"] == max(b["throughput_per_s"] for b in sweep)
    assert set(sweep[0]) == {
        "batch_size", "throughput_per_s", "p50_ms", "p95_ms", "p99_ms", "baseline_throughput_per_s", "stable"
    }  # fmt: skip


def test_status_and_jobs_use_the_same_job_and_variant_objects() -> None:
    view = _view()
    report = report_document(view, PRICES)
    status = status_document(view, PRICES)
    assert status["kind"] == "status"
    assert (status["job"], status["variants"]) == (report["job"], report["variants"])
    assert [task["hardware"] for task in status["tasks"]] == ["cpu"]
    jobs = jobs_document([view])
    assert (jobs["schema_version"], jobs["kind"], jobs["jobs"]) == (SCHEMA_VERSION, "jobs", [report["job"]])


def test_the_report_table_shows_cost_per_million_only_where_a_price_is_set() -> None:
    console = Console(width=REPORT_WIDTH, record=True)
    console.print(report_view(build_report(_view(), PRICES), "job j"))
    lines = console.export_text().splitlines()
    header = next(line for line in lines if "cost/M" in line)
    assert max(len(line) for line in lines) <= REPORT_WIDTH, header
    fpga_native = next(line for line in lines if line.lstrip().startswith("fpga") and "native" in line)
    assert money(1.65 / 3600 / (1000 / 3.0) * 1e6) == "1.38" and " 1.38 " in fpga_native
    console = Console(width=REPORT_WIDTH, record=True)
    console.print(report_view(build_report(_view()), "job j"))
    assert "cost/M" not in console.export_text()  # no prices: no column
