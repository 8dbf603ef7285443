"""Every hardware target this machine can run (cpu, arm and fpga, the latter two emulated on x86),
each beside the native baseline, through real workers; then the report, the cache and failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import select

from db.engine import session_scope
from db.models import Variant
from tests.conftest import Farm
from tests.integration.test_convert import submit, wait_for_tasks
from workers.samples import INPUT_SHAPE

pytestmark = pytest.mark.integration
ALL_LOCAL_VARIANTS = [
    ("arm", "arm", "dynamic"),
    ("arm", "arm", "fp16"),
    ("arm", "arm", "fp32"),
    ("arm", "arm", "int8"),
    ("arm", "native", "fp32"),
    ("cpu", "cpu", "fp32"),
    ("cpu", "cpu", "int8"),
    ("cpu", "native", "fp32"),
    ("fpga", "fpga", "int8"),
    ("fpga", "native", "fp32"),
]


@pytest.fixture
def calib_file(tmp_path: Path) -> Path:
    path = tmp_path / "calib.npz"
    images = np.random.default_rng(5).standard_normal((20, *INPUT_SHAPE)).astype(np.float32)
    np.savez(path, image=images)
    return path


def test_one_job_builds_verifies_and_compares_every_local_target(
    farm: Farm, sample_models: dict[str, Path], calib_file: Path, tmp_path: Path
) -> None:
    farm.start_worker("cpu,arm,fpga")
    job_id = submit(farm, sample_models["keras"], "--calib", str(calib_file), hw="cpu,arm,fpga")
    tasks = wait_for_tasks(farm, [job_id])
    assert sorted((t.hardware, t.state, t.error) for t in tasks) == [
        (hw, "succeeded", None) for hw in ("arm", "cpu", "fpga")
    ]

    result = farm.cli("report", job_id, "--json", "--plot", str(tmp_path / "speedups.png"))
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert sorted((r["hardware"], r["backend"], r["precision"]) for r in rows) == ALL_LOCAL_VARIANTS
    for row in rows:
        assert row["passed"] and row["top1_agreement"] >= 0.9, row
        assert row["p50_ms"] > 0 and row["p99_ms"] >= row["p50_ms"] and row["throughput_per_s"] > 0
        assert row["speedup"] > 0 and row["size_bytes"] > 0
        assert not any("synthetic" in note for note in row["notes"])  # calibrated on the given file
        if row["backend"] == "native":
            assert row["speedup"] == 1.0 and row["format"] == "tensorflow"
    fpga = next(r for r in rows if r["backend"] == "fpga")
    assert any("DPU compile and on-device run not done" in note for note in fpga["notes"])
    assert (tmp_path / "speedups.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    with session_scope(farm.settings.database_url) as session:
        variants = list(session.exec(select(Variant).where(Variant.job_id == job_id)))
    assert all(v.verify_samples == 4 for v in variants)  # the held-out fifth of the 20 samples
    assert len({v.cache_key for v in variants}) == len(variants)

    table = farm.cli("report", job_id)
    assert table.returncode == 0, table.stderr
    assert (
        "fpga onnx int8" in table.stdout and "arm tflite fp16" in table.stdout and "baseline" in table.stdout
    )


def test_resubmission_reuses_cached_variants_unless_forced(
    sqlite_farm: Farm, sample_models: dict[str, Path]
) -> None:
    sqlite_farm.start_worker("cpu")
    model = str(sample_models["frozen_graph"])
    first = sqlite_farm.cli("submit", "convert", model, "--hw", "cpu", "--wait")
    assert first.returncode == 0, first.stderr

    again = sqlite_farm.cli("submit", "convert", model, "--hw", "cpu", "--wait")
    assert again.returncode == 0, again.stderr
    assert "cpu: succeeded (3 of 3 variants reused from the cache)" in again.stdout
    first_id, again_id = first.stdout.split()[0], again.stdout.split()[0]
    originals, copies = _variants(sqlite_farm, first_id), _variants(sqlite_farm, again_id)
    assert {v.reused_from for v in copies} == {v.id for v in originals}
    assert {(v.artifact_key, v.sha256) for v in copies} == {(v.artifact_key, v.sha256) for v in originals}

    forced = sqlite_farm.cli(
        "submit", "convert", model, "--hw", "cpu", "--precision", "int8", "--force", "--wait"
    )
    assert forced.returncode == 0, forced.stderr and "reused" not in forced.stdout
    rebuilt = _variants(sqlite_farm, forced.stdout.split()[0])
    assert sorted((v.backend, v.precision, v.reused_from) for v in rebuilt) == [
        ("cpu", "int8", None),
        ("native", "fp32", None),
    ]


def test_a_variant_failing_verification_is_kept_with_its_numbers(
    sqlite_farm: Farm, sample_models: dict[str, Path]
) -> None:
    sqlite_farm.start_worker("cpu")
    job_id = submit(sqlite_farm, sample_models["keras"], "--precision", "int8", "--atol", "0", "--rtol", "0")
    [task] = wait_for_tasks(sqlite_farm, [job_id])
    assert task.state == "failed"
    assert task.error and "cpu int8 failed verification: max abs error" in task.error
    int8 = next(v for v in _variants(sqlite_farm, job_id) if v.backend == "cpu")
    assert not int8.passed and int8.max_abs_error > 0 and (int8.atol, int8.rtol) == (0, 0)
    assert any("synthetic" in note for note in int8.notes)  # no --calib: said on the variant
    report = sqlite_farm.cli("report", job_id)
    assert report.returncode == 0 and "FAIL" in report.stdout


def _variants(farm: Farm, job_id: str) -> list[Variant]:
    with session_scope(farm.settings.database_url) as session:
        return list(session.exec(select(Variant).where(Variant.job_id == job_id)))
