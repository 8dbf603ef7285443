"""Batch scoring end to end: real Redis, real worker processes, SQLite and PostgreSQL; every row
scored exactly once, through worker deaths, cancel and retry, across two hardware classes."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import onnxruntime as ort
import psutil
import pyarrow.parquet as pq
import pytest
from sqlmodel import select

from db import shards
from db.engine import session_scope
from db.models import Job, Shard, ShardState, TaskState, Variant
from farm.core.artifacts import open_store, sha256_of
from farm.core.jobspec import InferOptions
from farm.core.output import MANIFEST, OWNER, FolderOutput, open_output
from farm.core.waiting import wait_until
from farm.samples import write_feature_table, write_mlp_onnx
from tests.conftest import Farm, S3Server, assert_refused
from tests.integration.test_convert import submit, wait_for_tasks

pytestmark = pytest.mark.integration
FEATURES = [f"f{i}" for i in range(20)]
SLOW_JOB_ROWS = 60_000


def convert(farm: Farm, model: Path, hw: str = "cpu", precision: str = "fp32") -> str:
    job_id = submit(farm, model, "--precision", precision, hw=hw)
    tasks = wait_for_tasks(farm, [job_id])
    assert [t.state for t in tasks] == ["succeeded"] * len(tasks), [t.error for t in tasks]
    return job_id


def score(farm: Farm, source: str, data: Path, out: Path | str, *extra: str, hw: str = "cpu") -> str:
    result = farm.cli("submit", "infer", source, "--data", str(data), "--out", str(out), "--hw", hw, *extra)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[0]


def shards_of(farm: Farm, job_id: str) -> list[Shard]:
    with session_scope(farm.settings.database_url) as session:
        return shards.shards_of(session, job_id)


def wait_for_job(farm: Farm, job_id: str, timeout: float = 180) -> list[Shard]:
    def finished() -> list[Shard] | None:
        with session_scope(farm.settings.database_url) as session:
            found = shards.shards_of(session, job_id)
            state = shards.infer_job_state(session.get_one(Job, job_id), found)
        return found if state.finished else None

    return wait_until(finished, timeout, f"job {job_id} finished", interval_s=0.2)


def merged(farm: Farm, job_id: str, target: Path) -> dict[str, np.ndarray]:
    result = farm.cli("result", job_id, "--to", str(target))
    assert result.returncode == 0, result.stderr
    table = pq.read_table(target)
    return {name: np.asarray(table.column(name).to_pylist()) for name in table.column_names}


def direct_scores(farm: Farm, job_id: str, hardware: str, data: Path) -> np.ndarray:
    """The serving variant run directly by ONNX Runtime on every row, in one go."""
    with session_scope(farm.settings.database_url) as session:
        options = InferOptions.model_validate(session.get_one(Job, job_id).options)
        variant = session.get_one(Variant, options.variants[hardware])
    model = open_store(farm.settings).local(variant.artifact_key, variant.sha256)
    session_ = ort.InferenceSession(str(model))
    features = np.stack([pq.read_table(data).column(c).to_numpy() for c in FEATURES], axis=1)
    return session_.run(["probabilities"], {"features": features})[0]


def assert_every_row_once(farm: Farm, job_id: str, data: Path, out: Path | str, tmp_path: Path) -> dict:
    """Every row once, in input order, through `farm result`; every part as the manifest lists it,
    and nothing else in the output (no attempt's temporary part left behind)."""
    rows = pq.read_metadata(data).num_rows
    result = merged(farm, job_id, tmp_path / "scores.parquet")
    assert result["row"].tolist() == list(range(rows))  # each once, in input order
    assert result["id"].tolist() == pq.read_table(data).column("id").to_pylist()
    output = open_output(str(out), tmp_path / "fetched")
    manifest = output.read_manifest()
    assert manifest["rows"] == rows and manifest["job"] == job_id
    (tmp_path / "fetched").mkdir(exist_ok=True)
    for part in manifest["parts"]:
        assert sha256_of(output.fetch_part(part["shard"], tmp_path / "fetched")) == part["sha256"]
    names = {part["name"] for part in manifest["parts"]} | {MANIFEST, OWNER}
    if isinstance(output, FolderOutput):
        assert {p.name for p in Path(out).iterdir()} == names
    else:
        assert {PurePosixPath(key).name for key in output.fs.find(output.root)} == names
    return result


def slow_job(
    farm: Farm,
    mlp: Path,
    tmp_path: Path,
    shard_rows: int,
    start_worker: bool = True,
    rows: int = SLOW_JOB_ROWS,
    out: Path | str | None = None,
) -> tuple[Any, str, Path]:
    """A cpu worker (started here unless the farm's shared one serves) scoring 60,000 rows in
    batches of 16 into ``out`` (default: tmp_path/out): each shard takes a while."""
    data = write_feature_table(tmp_path / "data.parquet", rows, row_group_rows=4_000)
    worker = farm.start_worker("cpu") if start_worker else None
    extra = ("--keep", "id,label", "--batch-size", "16", "--shard-rows", str(shard_rows))
    job_id = score(farm, convert(farm, mlp), data, out or tmp_path / "out", *extra)
    return worker, job_id, data


def wait_for_a_shard(farm: Farm, job_id: str, state: ShardState) -> None:
    wait_until(
        lambda: any(s.state == state for s in shards_of(farm, job_id)),
        60,
        f"a shard of {job_id} {state.value}",
        interval_s=0.05,
    )


def test_every_row_is_scored_once_as_onnxruntime_scores_it(
    shared_farm: Farm, mlp: Path, tmp_path: Path
) -> None:
    farm = shared_farm
    data = write_feature_table(tmp_path / "data.parquet", 20_000, row_group_rows=2_000)
    job_id = score(
        farm,
        convert(farm, mlp),
        data,
        tmp_path / "out",
        "--keep",
        "id,label",
        "--shard-rows",
        "3000",
        "--wait",
    )

    done = shards_of(farm, job_id)
    assert [s.state for s in done] == ["done"] * 7 and [s.attempts for s in done] == [1] * 7
    result = assert_every_row_once(farm, job_id, data, tmp_path / "out", tmp_path)
    np.testing.assert_allclose(
        np.stack(result["probabilities"]), direct_scores(farm, job_id, "cpu", data), rtol=1e-5, atol=1e-6
    )
    status = farm.cli("status", job_id)
    assert "20,000/20,000 rows (100%)" in status.stdout and "7 done" in status.stdout


def test_a_worker_killed_mid_shard_loses_and_duplicates_nothing(
    farm: Farm, mlp: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """On SQLite into a folder; on PostgreSQL, as a fleet runs, into an S3 bucket (a real server):
    there each part is one PUT by the attempt holding the shard's lease, the manifest last."""
    out: Path | str = tmp_path / "out"
    if farm.settings.database_url.startswith("postgresql"):
        s3: S3Server = request.getfixturevalue("aws_env")  # this test process reads the bucket too
        out = s3.url(f"scores-{uuid.uuid4().hex[:8]}")
        farm.env.update(s3.env)
    worker, job_id, data = slow_job(farm, mlp, tmp_path, shard_rows=20_000, out=out)
    wait_for_a_shard(farm, job_id, ShardState.RUNNING)
    time.sleep(0.3)  # well inside the shard: it takes seconds at batch 16
    children = psutil.Process(worker.pid).children(recursive=True)
    assert children, "the worker has no pool process to kill"
    for child in children:
        os.kill(child.pid, signal.SIGKILL)

    done = wait_for_job(farm, job_id)
    assert {s.state for s in done} == {"done"}
    assert max(s.attempts for s in done) == 2  # the killed shard ran again, once
    assert_every_row_once(farm, job_id, data, out, tmp_path)


@pytest.mark.serial  # compares two classes' speeds: run alone, not beside other tests' load
def test_two_classes_share_by_speed_and_finish_together(sqlite_farm: Farm, mlp: Path, tmp_path: Path) -> None:
    farm = sqlite_farm
    data = write_feature_table(tmp_path / "data.parquet", 160_000, row_group_rows=4_000)
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 CPU cores: the fpga worker is held to one of them to make it the slower class")
    farm.start_worker("cpu")
    fpga = farm.start_worker("fpga")
    both = convert(farm, mlp, hw="cpu,fpga", precision="fp32,int8")
    # Both variants run on this host's CPU at about the same speed, so the fpga worker stands in
    # for a smaller machine: held to one core, which the cpu worker's threads share with it.
    slower_core = sorted(os.sched_getaffinity(0))[-1]
    for process in [psutil.Process(fpga.pid), *psutil.Process(fpga.pid).children(recursive=True)]:
        process.cpu_affinity([slower_core])
    job_id = score(
        farm,
        both,
        data,
        tmp_path / "out",
        "--keep",
        "id,label",
        "--batch-size",
        "64",
        "--shard-rows",
        "4000",
        "--precision",
        "cpu=fp32,fpga=int8",
        "--wait",
        hw="cpu,fpga",
    )

    done = shards_of(farm, job_id)
    rows = {hw: sum(s.rows for s in done if s.hardware == hw) for hw in ("cpu", "fpga")}
    lane_rate = {hw: rows[hw] / sum(s.seconds for s in done if s.hardware == hw) for hw in rows}
    assert rows["cpu"] > 0 and rows["fpga"] > 0, rows
    faster, slower = sorted(rows, key=lambda hw: -lane_rate[hw])
    assert rows[faster] > rows[slower], (rows, lane_rate)
    # Pull: neither class holds more than the shard it is on, so the two finish at most one of
    # the slower class's shards apart (plus a second for polling and process scheduling).
    last = {hw: max(s.finished_at for s in done if s.hardware == hw) for hw in rows}
    slowest_shard = max(s.seconds for s in done if s.hardware == slower)
    assert abs((last["cpu"] - last["fpga"]).total_seconds()) <= slowest_shard + 1.0, (last, slowest_shard)
    assert_every_row_once(farm, job_id, data, tmp_path / "out", tmp_path)
    assert_costs_recompute_and_the_cheaper_class_alone_scores(farm, both, job_id, tmp_path)


PRICES = {"cpu": 3.0, "fpga": 0.5}  # per machine-hour


def assert_costs_recompute_and_the_cheaper_class_alone_scores(
    farm: Farm, conversion: str, scoring: str, tmp_path: Path
) -> None:
    """With two classes at given prices and their measured speeds: the report's cost per million
    and the scoring job's cost by class recompute from the documents' own numbers, and
    `--objective cost` scores with the class whose rows cost least."""
    farm.env.update({f"FARM_COST_PER_HOUR_{hw.upper()}": str(price) for hw, price in PRICES.items()})
    report = json.loads(farm.cli("report", conversion, "--json").stdout)
    assert report["schema_version"] == 1 and report["job"]["id"] == conversion
    for variant in report["variants"]:
        expected = PRICES[variant["hardware"]] / 3600 / variant["throughput_per_s"] * 1e6
        assert variant["cost_per_million"] == pytest.approx(expected, rel=1e-9), variant

    status = json.loads(farm.cli("status", scoring, "--json").stdout)["scoring"]
    for share in status["classes"]:
        assert share["price_per_hour"] == PRICES[share["hardware"]]
        assert share["cost"] == pytest.approx(share["machine_s"] * share["price_per_hour"] / 3600, rel=1e-9)
    assert status["cost"] == pytest.approx(sum(share["cost"] for share in status["classes"]), rel=1e-9)
    assert "cost in all: " in farm.cli("status", scoring).stdout
    converted = json.loads(farm.cli("status", conversion, "--json").stdout)
    assert converted["variants"] == report["variants"] and converted["job"] == report["job"]
    assert sorted(task["hardware"] for task in converted["tasks"]) == ["cpu", "fpga"]
    listed = json.loads(farm.cli("jobs", "--json").stdout)
    assert listed["schema_version"] == 1 and [job["id"] for job in listed["jobs"]] == [scoring, conversion]

    # Per row: price over the serving variant's best throughput (cpu fp32 and fpga int8 as pinned).
    pinned = {("cpu", "fp32"), ("fpga", "int8")}
    serving = {
        v["hardware"]: v
        for v in report["variants"]
        if (v["hardware"], v["precision"]) in pinned and v["backend"] != "native"
    }
    per_row = {hw: PRICES[hw] / serving[hw]["throughput_per_s"] for hw in serving}
    cheaper = min(per_row, key=per_row.__getitem__)
    data = write_feature_table(tmp_path / "small.parquet", 2_000, row_group_rows=1_000)
    asked = ("submit", "infer", conversion, "--data", str(data), "--hw", "cpu,fpga", "--keep", "id,label")
    pins = (*asked, "--precision", "cpu=fp32,fpga=int8", "--objective", "cost")
    submitted = farm.cli(*pins, "--out", str(tmp_path / "cheap"))
    assert submitted.returncode == 0, submitted.stderr
    assert "objective cost: about " in submitted.stdout and "left out: " in submitted.stdout, submitted.stdout
    cheap = submitted.stdout.split()[0]
    assert {s.hardware for s in wait_for_job(farm, cheap)} == {cheaper}
    estimate = json.loads(farm.cli("status", cheap, "--json").stdout)["scoring"]["estimate"]
    rows_per_s = serving[cheaper]["throughput_per_s"]
    assert estimate["seconds"] == pytest.approx(2_000 / rows_per_s, rel=1e-9)
    assert estimate["cost"] == pytest.approx(PRICES[cheaper] * 2_000 / rows_per_s / 3600, rel=1e-9)

    too_soon = farm.cli(*pins, "--out", str(tmp_path / "never"), "--deadline", "0.000001")
    assert_refused(too_soon, 2, "--deadline 1e-06 s: even cpu,fpga need about")


def test_cancel_then_retry_runs_only_the_unfinished_shards(
    shared_farm: Farm, mlp: Path, tmp_path: Path
) -> None:
    farm = shared_farm
    _, job_id, data = slow_job(farm, mlp, tmp_path, shard_rows=12_000, start_worker=False)
    wait_for_a_shard(farm, job_id, ShardState.DONE)
    cancelled = farm.cli("cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr
    before = {s.index: s for s in wait_for_job(farm, job_id) if s.state == ShardState.DONE}
    with session_scope(farm.settings.database_url) as session:
        state = shards.infer_job_state(session.get_one(Job, job_id), shards.shards_of(session, job_id))
    assert state is TaskState.CANCELLED
    assert 0 < len(before) < SLOW_JOB_ROWS // 12_000
    assert farm.cli("result", job_id, "--to", str(tmp_path / "early.parquet")).returncode != 0

    retried = farm.cli("retry", job_id)
    assert retried.returncode == 0, retried.stderr
    done = wait_for_job(farm, job_id)
    assert {s.state for s in done} == {"done"}
    for shard in done:
        if shard.index in before:  # done before the cancel: not run again
            assert (shard.attempts, shard.sha256, shard.finished_at) == (
                1,
                before[shard.index].sha256,
                before[shard.index].finished_at,
            )
    assert_every_row_once(farm, job_id, data, tmp_path / "out", tmp_path)


def test_bad_scoring_input_is_one_line_and_queues_nothing(
    shared_farm: Farm, mlp: Path, tmp_path: Path
) -> None:
    farm = shared_farm
    job_id = convert(farm, mlp)
    data = write_feature_table(tmp_path / "data.parquet", 1_000)
    pq.write_table(pq.read_table(data).slice(0, 0), tmp_path / "empty.parquet")
    (tmp_path / "notes.txt").write_text("not data\n")
    strings = pq.read_table(data).drop_columns(["f0"]).append_column("f0", [["x"] * 1_000])
    pq.write_table(strings, tmp_path / "strings.parquet")
    (tmp_path / "a_file").write_text("")
    taken = tmp_path / "taken"
    score(farm, job_id, data, taken, "--keep", "id,label", "--wait")
    keep = ("--keep", "id,label")
    cases = [
        ((job_id, tmp_path / "missing.parquet", *keep), 8, "no such file or folder"),
        ((job_id, tmp_path / "notes.txt"), 8, "not a Parquet, CSV or NPY file"),
        ((job_id, tmp_path / "empty.parquet", *keep), 8, "the dataset is empty"),
        ((job_id, data, "--columns", "f0,nope"), 8, "no column 'nope'"),
        ((job_id, data, "--columns", "f0,f1"), 8, "takes 20 values per row"),
        ((job_id, tmp_path / "strings.parquet", *keep), 8, "column 'f0' is string, not numbers"),
        ((job_id, data, *keep, "--out", str(tmp_path / "a_file")), 2, "exists and is not a folder"),
        ((job_id, data, *keep, "--out", str(taken)), 2, "holds the output of job"),
        ((job_id, data, *keep, "--out", "/proc/farm-scores"), 2, "not writable"),
        ((job_id, data, *keep, "--out", str(tmp_path / "a_file" / "x")), 2, "is a file, not a folder"),
        ((FolderOutput(taken).owner(), data, *keep), 2, "is not a conversion job"),
        (("0123456789ab", data, *keep), 6, "neither a model file nor a job id"),
        ((job_id, data, *keep, "--hw", "arm"), 2, "has no verified arm variant"),
        ((job_id, data, *keep, "--precision", "int8"), 2, "has no verified int8 cpu variant"),
        ((job_id, data, *keep, "--hw", "tpu"), 2, "unknown hardware class 'tpu'"),
        ((job_id, data, *keep, "--objective", "fast"), 2, "--objective fast: not one of time, cost"),
        ((job_id, data, *keep, "--objective", "cost"), 2, "set FARM_COST_PER_HOUR_CPU"),
        ((job_id, data, *keep, "--deadline", "0"), 2, "--deadline 0: give the seconds the job may take"),
        ((job_id, data, *keep, "--out", "memory://scores"), 2, "write to a folder or an object store (s3://"),
    ]
    with session_scope(farm.settings.database_url) as session:
        jobs_before = len(session.exec(select(Job)).all())
    for (source, path, *extra), code, fragment in cases:
        out = [] if "--out" in extra else ["--out", str(tmp_path / "out")]
        hw = [] if "--hw" in extra else ["--hw", "cpu"]
        command = ("submit", "infer", str(source), "--data", str(path), *out, *hw, *extra)
        # One as a real process, as a user runs it; the others in this one (farm.cli.main).
        assert_refused(farm.cli(*command, process=fragment == "no column 'nope'"), code, fragment)
    with session_scope(farm.settings.database_url) as session:
        assert len(session.exec(select(Job)).all()) == jobs_before  # nothing recorded
    assert not (tmp_path / "out").exists()  # nothing written
    assert (
        farm.cli("result", job_id, "--to", str(tmp_path / "x.parquet")).returncode == 2
    )  # not a scoring job
    assert farm.cli("cancel", "0123456789ab").returncode == 6


def test_a_model_file_is_converted_first_and_then_its_variants_serve_from_the_cache(
    shared_farm: Farm, tmp_path: Path
) -> None:
    farm = shared_farm
    model = write_mlp_onnx(tmp_path / "mlp.onnx", seed=11)  # a model no other test converts
    data = write_feature_table(tmp_path / "data.parquet", 5_000)
    with session_scope(farm.settings.database_url) as session:
        before = set(session.exec(select(Job.id)))
    runs = []
    for out in ("first", "second"):
        result = farm.cli(
            "submit", "infer", str(model), "--data", str(data), "--out", str(tmp_path / out),
            "--hw", "cpu", "--precision", "fp32", "--keep", "id,label", "--wait",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        runs.append(result.stdout)
    assert "no verified cpu variants of mlp.onnx yet: converting first" in runs[0]
    assert "converting first" not in runs[1]  # the first run's conversion serves
    with session_scope(farm.settings.database_url) as session:
        jobs = [job for job in session.exec(select(Job)) if job.id not in before]
    assert sorted(job.kind for job in jobs) == ["convert", "infer", "infer"]
    served = {json.dumps(InferOptions.model_validate(j.options).variants) for j in jobs if j.kind == "infer"}
    assert len(served) == 1
