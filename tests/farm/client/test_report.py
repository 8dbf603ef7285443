"""The report: speedups from paired timings, verdicts with their reasons, and a table that fits a
100-column terminal with repeated notes as numbered footnotes (``--wide`` shows everything)."""

from __future__ import annotations

from rich.console import Console

from db.models import BenchmarkResult, Job, Task, Variant
from farm.cli.render import REPORT_WIDTH, SYNTHETIC_VERDICTS, report_view
from farm.client.jobs import JobView
from farm.client.report import build_report

DPU_NOTE = (
    "DPU compile and on-device run not done: no VitisAIExecutionProvider here; timed on the CPU provider"
)


def _variant(ident: int, hardware: str, backend: str, precision: str, **fields: object) -> Variant:
    defaults: dict[str, object] = dict(
        job_id="j", task_id="t", format="onnx" if backend != "native" else "tensorflow", artifact_key="k",
        sha256="s", size_bytes=30_000, passed=True, max_abs_error=0.01, max_rel_error=0.1, nan_count=0,
        inf_count=0, atol=0.05, rtol=0.1, gate="agreement", verified_on="synthetic", top1_agreement=1.0,
    )  # fmt: skip
    defaults.update(fields)
    return Variant(id=ident, hardware=hardware, backend=backend, precision=precision, **defaults)


def _timing(
    variant_id: int, p50: float, speedup: float | None = None, stable: bool = True
) -> BenchmarkResult:
    paired = {} if speedup is None else dict(
        baseline_p50_ms=p50 * speedup, baseline_throughput_per_s=1000 / (p50 * speedup), speedup=speedup,
        speedup_low=speedup * 0.9, speedup_high=speedup * 1.1, pairs=4,
    )  # fmt: skip
    return BenchmarkResult(
        variant_id=variant_id, host="h", hardware="cpu", runtime="onnxruntime 1.31.1", batch_size=1,
        p50_ms=p50, p95_ms=p50, p99_ms=p50 * 1.2, throughput_per_s=1000 / p50, runs=30, stable=stable,
        **paired,
    )  # fmt: skip


def _view() -> JobView:
    failure = "accuracy 85.00% is 12.78 points below the original's 97.78% (at most 1)"
    variants = [
        _variant(1, "cpu", "native", "fp32", gate="tolerance"),
        _variant(2, "cpu", "cpu", "int8", passed=False, failure=failure),
        _variant(3, "fpga", "native", "fp32", gate="tolerance"),
        _variant(4, "fpga", "fpga", "int8", notes=[DPU_NOTE]),
        _variant(5, "arm", "native", "fp32", gate="tolerance"),
        _variant(6, "arm", "arm", "dynamic", notes=[DPU_NOTE], reused_from=2),
    ]
    timings = {1: [_timing(1, 3.1)], 2: [_timing(2, 0.6, 5.2)], 3: [_timing(3, 3.0)]}
    timings |= {4: [_timing(4, 0.5, 6.0, stable=False)], 5: [_timing(5, 3.2)], 6: [_timing(6, 0.02, 160.0)]}
    job = Job(id="j", kind="convert", model_name="m.pb", model_key="k", model_sha256="s", model_format="pb")
    return JobView(job, [Task(id="t", job_id="j", hardware="cpu", kind="convert")], variants, timings)


def _rendered(wide: bool) -> list[str]:
    console = Console(width=200, record=True, highlight=False)
    console.print(report_view(build_report(_view()), "job j", wide))
    return console.export_text().splitlines()


def test_speedups_come_from_the_paired_windows_with_their_spread() -> None:
    rows = {(r.hardware, r.backend): r for r in build_report(_view())}
    assert rows[("cpu", "cpu")].speedup == 5.2 and rows[("cpu", "cpu")].speedup_low == 5.2 * 0.9
    assert rows[("cpu", "native")].speedup == 1.0
    text = "\n".join(_rendered(wide=False))
    assert "5.20x (4.7-5.7)" in text and "160x (144-176)" in text and "0.020 ms" in text


def test_the_report_fits_100_columns_with_notes_numbered_once() -> None:
    lines = _rendered(wide=False)
    assert max(len(line) for line in lines) <= REPORT_WIDTH, "\n".join(lines)
    text = "\n".join(lines)
    assert text.count("DPU compile and on-device run not done") == 1  # two rows cite it, once
    assert "FAIL" in text and "cpu int8 failed verification: accuracy 85.00% is 12.78 points" in text
    assert "timings did not settle" in text and "reused from the cache" in text
    assert text.count("Verified on synthetic random inputs") == 1
    assert " ".join(SYNTHETIC_VERDICTS.split()[:6]) in text


def test_wide_shows_every_column_and_the_notes_in_full() -> None:
    lines = _rendered(wide=True)
    text = "\n".join(lines)
    for column in ("gate", "mean err", "max abs / rel err", "p99 b=1", "best throughput", "runtime"):
        assert column in text
    assert max(len(line) for line in lines) > REPORT_WIDTH


def test_a_row_is_unsettled_only_when_the_timings_it_shows_are() -> None:
    view = _view()
    shown, hidden = _timing(2, 0.6, 5.2), _timing(2, 0.5, 5.0, stable=False)
    hidden.batch_size, hidden.throughput_per_s = 2, 1.0  # an intermediate batch, not the best
    view.benchmarks[2] = [shown, hidden]
    assert next(r for r in build_report(view) if r.variant_id == 2).stable
    hidden.throughput_per_s = 1e6  # now it is the best throughput the row shows
    assert not next(r for r in build_report(view) if r.variant_id == 2).stable


def _two_output_view(samples: int) -> JobView:
    boxes = {"name": "boxes", "kind": "values", "rule": "agreement", "worst_channel": 5, "failures": []}
    boxes |= {"worst_channel_error": 1.3, "failures": ["channels 4, 5 (axis 2) constant in the variant"]}
    scores = {"name": "scores", "kind": "classes", "kind_named": True, "rule": "agreement", "failures": []}
    scores |= {"top1_agreement": 0.99, "expected_loss": 0.002, "near_flips": 0.03}
    failure = "boxes: channels 4, 5 (axis 2) constant in the variant"
    variants = [
        _variant(1, "cpu", "native", "fp32", gate="tolerance"),
        _variant(2, "cpu", "cpu", "int8", passed=False, failure=failure, verify_samples=samples,
                 verification=[boxes, scores]),
    ]  # fmt: skip
    job = Job(id="j", kind="convert", model_name="m.pb", model_key="k", model_sha256="s", model_format="pb")
    return JobView(job, [Task(id="t", job_id="j", hardware="cpu", kind="convert")], variants, {})


def test_the_output_that_failed_is_named_and_thin_evidence_is_said() -> None:
    console = Console(width=200, record=True, highlight=False)
    console.print(report_view(build_report(_two_output_view(samples=16)), "job j"))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= REPORT_WIDTH, "\n".join(lines)
    [row] = [line for line in lines if "cpu onnx int8" in line]
    assert "FAIL boxes n=16 thin" in row
    text = "\n".join(lines)
    assert "thin evidence: judged on 16 samples (fewer than 50)" in text
    [json_row] = [r.to_json() for r in build_report(_two_output_view(samples=60)) if r.precision == "int8"]
    assert json_row["thin_evidence"] is False and [o["name"] for o in json_row["outputs"]] == [
        "boxes",
        "scores",
    ]


def test_wide_shows_each_output_with_its_kind_rule_and_numbers() -> None:
    console = Console(width=220, record=True, highlight=False)
    console.print(report_view(build_report(_two_output_view(samples=60)), "job j", wide=True))
    text = console.export_text()
    assert "worst channel 5: 1.30 of spread" in text and "constant in the variant" in text
    assert "classes (named)" in text and "agreement 99.0%, expected loss 0.2%, near flips 3%" in text
