"""Progress of a batch-scoring job, from its shards: what `farm status` and `--wait` show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from db.models import Shard, ShardState, utcnow


@dataclass(frozen=True)
class ClassShare:
    hardware: str
    rows: int
    shards: int
    running: int
    rows_per_s: float  # of the class as a whole, over the time the job has run


@dataclass(frozen=True)
class InferProgress:
    total_rows: int
    done_rows: int
    rows_per_s: float
    eta_s: float | None
    counts: dict[str, int]  # shard state -> shards
    classes: list[ClassShare]
    errors: list[str]  # of failed shards, first ones

    @property
    def fraction(self) -> float:
        return self.done_rows / self.total_rows if self.total_rows else 1.0


def infer_progress(all_shards: list[Shard], now: datetime | None = None) -> InferProgress:
    now = now or utcnow()
    done = [s for s in all_shards if s.state == ShardState.DONE]
    started = [s.started_at for s in all_shards if s.started_at]
    finished = [s.finished_at for s in done if s.finished_at]
    active = any(s.state in (ShardState.PENDING, ShardState.RUNNING) for s in all_shards)
    end = now if active or not finished else max(finished)
    elapsed = (end - min(started)).total_seconds() if started else 0.0
    total = sum(s.stop - s.start for s in all_shards)
    done_rows = sum(s.rows for s in done)
    rate = done_rows / elapsed if elapsed > 0 else 0.0
    eta = (total - done_rows) / rate if rate > 0 and active else None
    counts: dict[str, int] = {}
    for shard in all_shards:
        counts[shard.state] = counts.get(shard.state, 0) + 1
    classes = []
    for hw in sorted({s.hardware for s in all_shards if s.hardware}):
        mine = [s for s in done if s.hardware == hw]
        rows = sum(s.rows for s in mine)
        running = sum(1 for s in all_shards if s.hardware == hw and s.state == ShardState.RUNNING)
        classes.append(ClassShare(hw, rows, len(mine), running, rows / elapsed if elapsed > 0 else 0.0))
    errors = [f"shard {s.index}: {s.error}" for s in all_shards if s.state == ShardState.FAILED and s.error]
    return InferProgress(total, done_rows, rate, eta, counts, classes, errors[:3])
