from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from db.models import Shard
from farm.client.progress import infer_progress

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def _shard(
    index: int, state: str, hardware: str | None = None, rows: int = 0, ran: tuple[int, int] | None = None
) -> Shard:
    started, finished = (
        (T0 + timedelta(seconds=ran[0]), T0 + timedelta(seconds=ran[1])) if ran else (None, None)
    )
    return Shard(
        job_id="j", index=index, start=index * 100, stop=index * 100 + 100, state=state, hardware=hardware,
        rows=rows, started_at=started, finished_at=finished, error="bad value" if state == "failed" else None,
    )  # fmt: skip


def test_progress_counts_rows_shares_rate_and_eta() -> None:
    shards = [
        _shard(0, "done", "cpu", 100, (0, 1)),
        _shard(1, "done", "cpu", 100, (1, 2)),
        _shard(2, "done", "fpga", 100, (0, 2)),
        _shard(3, "running", "fpga", ran=(2, 3)),
        _shard(4, "pending"),
    ]
    progress = infer_progress(shards, now=T0 + timedelta(seconds=3))
    assert (progress.total_rows, progress.done_rows, progress.fraction) == (500, 300, 0.6)
    assert progress.rows_per_s == 100.0 and progress.eta_s == 2.0  # 200 rows left at 100 rows/s
    assert progress.counts == {"done": 3, "running": 1, "pending": 1}
    assert [(c.hardware, c.rows, c.shards, c.running) for c in progress.classes] == [
        ("cpu", 200, 2, 0),
        ("fpga", 100, 1, 1),
    ]


def test_a_finished_job_has_no_eta_and_lists_its_failures() -> None:
    shards = [_shard(0, "done", "cpu", 100, (0, 4)), _shard(1, "failed", "cpu", ran=(0, 1))]
    progress = infer_progress(shards, now=T0 + timedelta(hours=1))
    assert progress.eta_s is None and progress.rows_per_s == 25.0  # up to the last finish, not now
    assert progress.errors == ["shard 1: bad value"]


def test_cost_is_the_hours_each_worker_held_the_job_at_its_class_price() -> None:
    shards = [
        _shard(0, "done", "cpu", 100, (0, 1800)),  # worker a: from 0 s ...
        _shard(1, "done", "cpu", 100, (1800, 3600)),  # ... to 3,600 s: one hour
        _shard(2, "done", "gpu", 100, (0, 360)),
        _shard(3, "running", "gpu", ran=(360, 720)),  # still running: held until now
    ]
    for shard in shards:
        shard.worker = "a" if shard.hardware == "cpu" else "b"
    progress = infer_progress(shards, {"cpu": 0.10, "gpu": 2.50}, now=T0 + timedelta(seconds=720))
    assert [(c.hardware, c.machine_s) for c in progress.classes] == [("cpu", 3600.0), ("gpu", 720.0)]
    assert [c.cost for c in progress.classes] == [pytest.approx(0.10), pytest.approx(0.50)]
    assert progress.cost == pytest.approx(0.60)
    # A second cpu worker is a second machine: its hours add up.
    shards.append(_shard(4, "done", "cpu", 100, (0, 3600)))
    shards[-1].worker = "c"
    assert infer_progress(shards, {"cpu": 0.10, "gpu": 2.50}, now=T0).classes[0].machine_s == 7200.0


def test_a_class_without_a_price_has_no_cost_and_neither_has_the_job() -> None:
    shards = [_shard(0, "done", "cpu", 100, (0, 10)), _shard(1, "done", "gpu", 100, (0, 10))]
    progress = infer_progress(shards, {"gpu": 2.50})
    assert [c.cost is None for c in progress.classes] == [True, False] and progress.cost is None
    assert infer_progress(shards).cost is None  # no prices at all


def test_a_retry_long_after_counts_the_hours_worked_not_the_hours_between() -> None:
    shards = [
        _shard(0, "done", "cpu", 100, (0, 600)),
        _shard(1, "done", "cpu", 100, (630, 1200)),  # 30 s idle between: still held
        _shard(2, "done", "cpu", 100, (7200, 7800)),  # `farm retry` an hour and a half later
        _shard(3, "pending", "cpu", ran=(0, 10)),  # reopened and waiting: its old run says nothing now
    ]
    shards[3].finished_at = None
    for shard in shards:
        shard.worker = "a"
    progress = infer_progress(shards, {"cpu": 3.6}, now=T0 + timedelta(hours=3))
    assert progress.classes[0].machine_s == 1200.0 + 600.0
    assert progress.classes[0].cost == pytest.approx(3.6 * 1800 / 3600)
