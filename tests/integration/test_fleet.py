"""A farm spread over hosts: the client and a worker share nothing but the broker, the database
and an S3-compatible object store (a real server process), on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import select

from db.engine import session_scope
from db.models import Variant
from farm.core.artifacts import open_store, sha256_of
from farm.samples import write_feature_table, write_mlp_onnx
from tests.conftest import Farm, S3Server
from tests.integration.test_infer import convert, direct_scores, merged, score, wait_for_job

pytestmark = pytest.mark.integration


def test_a_worker_on_another_host_converts_and_scores_through_the_object_store(
    postgres_farm: Farm, aws_env: S3Server, tmp_path: Path
) -> None:
    farm = postgres_farm  # the database a fleet shares
    root = aws_env.url(f"fleet-{uuid.uuid4().hex[:8]}")  # aws_env: this test process reads the store too
    farm.env.update(aws_env.env, FARM_ARTIFACT_ROOT=root)
    farm.settings.artifact_root = root
    worker_home = tmp_path / "worker-host"
    farm.start_worker("cpu", env={**farm.env, "FARM_HOME": str(worker_home)})
    model = write_mlp_onnx(tmp_path / "client" / "mlp.onnx")

    job_id = convert(farm, model)
    client_home = Path(farm.env["FARM_HOME"])
    assert not (client_home / "artifacts").exists(), "the client wrote to its own folder, not the store"
    model_sha = sha256_of(model)
    assert (worker_home / "cache" / "artifacts" / model_sha / "mlp.onnx").is_file()

    data = write_feature_table(tmp_path / "data.parquet", rows=3_000, row_group_rows=500)
    out = tmp_path / "scores"
    scoring = score(farm, job_id, data, out, "--columns", ",".join(f"f{i}" for i in range(20)))
    assert {s.state for s in wait_for_job(farm, scoring)} == {"done"}
    scores = merged(farm, scoring, tmp_path / "merged.parquet")
    np.testing.assert_allclose(
        np.stack(scores["probabilities"]), direct_scores(farm, scoring, "cpu", data), rtol=1e-5, atol=1e-6
    )

    copied = farm.cli("artifacts", job_id, "--to", str(tmp_path / "fetched"))
    assert copied.returncode == 0, copied.stderr
    fetched = sorted((tmp_path / "fetched").iterdir())
    assert [p.name for p in fetched] == [f"{job_id}-cpu-cpu-fp32.onnx"]
    with session_scope(farm.settings.database_url) as session:
        query = select(Variant).where(Variant.job_id == job_id, Variant.backend == "cpu")
        variant = session.exec(query).one()
    assert variant.artifact_key.startswith("variants/") and sha256_of(fetched[0]) == variant.sha256
    assert open_store(farm.settings).exists(variant.artifact_key)
