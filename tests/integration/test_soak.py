"""Load, shorter than benchmarks/soak.py and through the same code: many cached conversion
submissions and many one-row shards across two worker processes; every job ends and every count
adds up (run_load asserts each), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.soak import run_load
from tests.conftest import Farm

pytestmark = pytest.mark.integration


def test_hundreds_of_submissions_and_shards_all_end_and_add_up(farm: Farm, tmp_path: Path) -> None:
    farm.start_worker("cpu")
    farm.start_worker("cpu")
    result = run_load(farm.env, tmp_path, submissions=100, shard_count=300)
    assert result.jobs_succeeded == 100 and result.variants_reused == 200 and result.rows_scored_once
