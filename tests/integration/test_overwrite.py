"""`--overwrite` replaces a finished job's output folder, never one a job is still writing; and a
job whose folder another job has taken publishes nothing more there."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from sqlmodel import select

from db.engine import session_scope
from db.models import Job, ShardState
from farm.core.artifacts import sha256_of
from farm.core.jobspec import InferOptions
from farm.core.output import MANIFEST, FolderOutput
from farm.samples import write_feature_table
from tests.conftest import Farm, assert_refused
from tests.integration.test_infer import (
    assert_every_row_once,
    convert,
    score,
    slow_job,
    wait_for_a_shard,
    wait_for_job,
)

pytestmark = pytest.mark.integration
KEEP = ("--keep", "id,label")


def scoring_jobs(farm: Farm) -> list[Job]:
    with session_scope(farm.settings.database_url) as session:
        return list(session.exec(select(Job).where(Job.kind == "infer")).all())


def test_overwrite_is_refused_while_the_owner_job_is_still_running(
    sqlite_farm: Farm, mlp: Path, tmp_path: Path
) -> None:
    farm = sqlite_farm
    _, first, data = slow_job(farm, mlp, tmp_path, shard_rows=12_000)
    out = tmp_path / "out"
    wait_for_a_shard(farm, first, ShardState.DONE)
    parts = {path.name: sha256_of(path) for path in out.glob("part-*.parquet")}
    assert parts
    [job] = scoring_jobs(farm)
    conversion = InferOptions.model_validate(job.options).source_job
    assert conversion is not None

    again = ("submit", "infer", conversion, "--data", str(data), "--out", str(out), "--hw", "cpu", *KEEP)
    refused = farm.cli(*again, "--overwrite")
    assert_refused(refused, 2, f"job {first} is still running", f"farm cancel {first}")
    assert [j.id for j in scoring_jobs(farm)] == [first]  # nothing recorded, nothing queued
    assert FolderOutput(out).owner() == first
    for name, sha256 in parts.items():  # its parts untouched
        assert sha256_of(out / name) == sha256
    done = wait_for_job(farm, first)  # the first job ends as if nothing had been asked
    assert {s.state for s in done} == {"done"}, [(s.state, s.error) for s in done]
    assert_every_row_once(farm, first, data, out, tmp_path)

    replaced = farm.cli(*again, "--overwrite")  # finished now: its output may be replaced
    assert replaced.returncode == 0, replaced.stderr
    assert FolderOutput(out).owner() == replaced.stdout.split()[0]


def test_a_job_whose_output_folder_another_job_took_publishes_nothing_there(
    sqlite_farm: Farm, mlp: Path, tmp_path: Path
) -> None:
    farm = sqlite_farm
    farm.start_worker("cpu")
    conversion = convert(farm, mlp)
    out = tmp_path / "out"
    # The first job's data has missing values in its last shard: that shard fails, the job ends.
    first_data = write_feature_table(tmp_path / "first.parquet", 6_000, seed=1, row_group_rows=2_000)
    table = pq.read_table(first_data)
    holes = pc.if_else(pc.greater_equal(table.column("id"), 1_004_000), None, table.column("f0"))
    pq.write_table(
        table.set_column(table.schema.get_field_index("f0"), "f0", holes), first_data, row_group_size=2_000
    )
    first = score(farm, conversion, first_data, out, *KEEP, "--shard-rows", "2000")
    assert [s.state for s in wait_for_job(farm, first)] == ["done", "done", "failed"]

    second_data = write_feature_table(tmp_path / "second.parquet", 6_000, seed=2, row_group_rows=2_000)
    second = score(farm, conversion, second_data, out, *KEEP, "--shard-rows", "2000", "--overwrite", "--wait")
    manifest = json.loads((out / MANIFEST).read_text())
    parts = {path.name: sha256_of(path) for path in out.glob("part-*.parquet")}

    # The first job's data is fixed and its failed shard retried: the folder is no longer its own.
    write_feature_table(first_data, 6_000, seed=1, row_group_rows=2_000)
    retried = farm.cli("retry", first)
    assert retried.returncode == 0, retried.stderr
    ended = wait_for_job(farm, first)
    assert [s.state for s in ended] == ["done", "done", "failed"], [(s.state, s.error) for s in ended]
    assert second in (ended[2].error or ""), ended[2].error  # says whose folder it is now

    assert FolderOutput(out).owner() == second
    assert json.loads((out / MANIFEST).read_text()) == manifest  # the second job's manifest stands
    assert {path.name: sha256_of(path) for path in out.glob("part-*.parquet")} == parts
    assert not list(out.glob(".*.tmp"))
    assert_every_row_once(farm, second, second_data, out, tmp_path)
