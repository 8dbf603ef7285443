"""Load, shorter than benchmarks/soak.py and through the same code: fifty cached conversion
submissions and 150 one-row shards across two worker processes; every job ends and every count
adds up (run_load asserts each), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.soak import run_load
from tests.conftest import Farm

pytestmark = pytest.mark.integration


def test_many_submissions_and_shards_all_end_and_add_up(farm: Farm, tmp_path: Path) -> None:
    farm.start_worker("cpu")
    farm.start_worker("cpu")
    result = run_load(farm.env, tmp_path, submissions=50, shard_count=150)
    assert result.jobs_succeeded == 50 and result.variants_reused == 100 and result.rows_scored_once
