from __future__ import annotations

from datetime import datetime, timedelta, timezone

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
