"""`farm submit infer MODEL_FILE`: columns that cannot feed the model are refused before it is
converted, and the wait for its conversion says when no worker serves the queue and ends."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from sqlmodel import select

from db.engine import ensure_schema, session_scope
from db.models import Job
from farm.samples import write_feature_table
from queues.names import queue_for
from tests.conftest import Farm, assert_refused

pytestmark = pytest.mark.integration
NO_WORKER_WAIT_S = 60  # a client that polls forever is cut off here (the test then fails)


def jobs_of(farm: Farm) -> list[Job]:
    ensure_schema(farm.settings.database_url)
    with session_scope(farm.settings.database_url) as session:
        return list(session.exec(select(Job)).all())


def test_columns_that_do_not_fit_a_model_file_are_refused_before_it_is_converted(
    sqlite_farm: Farm, mlp: Path, tmp_path: Path
) -> None:
    farm = sqlite_farm  # no worker: a conversion queued would wait for one
    data = write_feature_table(tmp_path / "data.parquet", 1_000)
    out = tmp_path / "out"
    cases = [
        (("--columns", "f0,f1"), 8, "takes 20 values per row"),
        (("--columns", "f0,nope"), 8, "no column 'nope'"),
        (("--input", "pixels=f0,f1"), 2, "the model has no input pixels"),
    ]
    for extra, code, fragment in cases:
        result = farm.cli(
            "submit", "infer", str(mlp), "--data", str(data), "--out", str(out), "--hw", "cpu",
            "--precision", "fp32", *extra, timeout=NO_WORKER_WAIT_S,
        )  # fmt: skip
        assert_refused(result, code, fragment)
        assert "converting first" not in result.stdout
    assert jobs_of(farm) == []  # no conversion recorded, let alone a scoring job
    assert redis.Redis.from_url(farm.settings.broker_url).llen(queue_for("cpu")) == 0  # nothing queued
    assert not out.exists()  # nothing written


def test_waiting_for_a_conversion_says_no_worker_serves_it_and_gives_up_in_time(
    sqlite_farm: Farm, mlp: Path, tmp_path: Path
) -> None:
    farm = sqlite_farm  # no worker at all
    farm.env["FARM_CONVERT_WAIT_S"] = "4"
    data = write_feature_table(tmp_path / "data.parquet", 1_000)
    out = tmp_path / "out"
    result = farm.cli(
        "submit", "infer", str(mlp), "--data", str(data), "--out", str(out), "--hw", "cpu",
        "--precision", "fp32", "--keep", "id,label", timeout=NO_WORKER_WAIT_S,
    )  # fmt: skip

    assert "converting first" in result.stdout
    assert "cpu: waiting for a cpu worker" in result.stdout, result.stdout
    [conversion] = jobs_of(farm)  # the conversion stays queued for a worker to come; no scoring job
    assert conversion.kind == "convert"
    assert_refused(
        result,
        1,
        f"job {conversion.id} not finished after 4 s",
        "nothing was submitted",
        "FARM_CONVERT_WAIT_S",
    )
    assert not out.exists()  # nothing written for the scoring that was never submitted
