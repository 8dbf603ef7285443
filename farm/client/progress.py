"""Progress of a batch-scoring job, from its shards: what `farm status` and `--wait` show, and
what the job has cost so far."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from db.models import Shard, ShardState, utcnow
from farm.core.cost import cost_of_hours, total_cost


@dataclass(frozen=True)
class ClassShare:
    hardware: str
    rows: int
    shards: int
    running: int
    rows_per_s: float  # of the class as a whole, over the time the job has run
    machine_s: float  # summed over its workers: each from its first shard's start to its last's end
    cost: float | None  # machine_s at the class's price per hour; None without a price


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

    @property
    def cost(self) -> float | None:
        """So far, or in all once the job has ended; None unless every class that worked has a price."""
        return total_cost([share.cost for share in self.classes])


def infer_progress(
    all_shards: list[Shard], prices: Mapping[str, float] | None = None, now: datetime | None = None
) -> InferProgress:
    """``prices``: per machine-hour, by hardware class (settings.cost_per_hour)."""
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
        machine_s = machine_seconds([s for s in all_shards if s.hardware == hw], now)
        class_rate = rows / elapsed if elapsed > 0 else 0.0
        cost = cost_of_hours((prices or {}).get(hw), machine_s)
        classes.append(ClassShare(hw, rows, len(mine), running, class_rate, machine_s, cost))
    errors = [f"shard {s.index}: {s.error}" for s in all_shards if s.state == ShardState.FAILED and s.error]
    return InferProgress(total, done_rows, rate, eta, counts, classes, errors[:3])


HELD_BETWEEN_SHARDS_S = 60.0  # a worker idle longer than this between a job's shards was not held


def machine_seconds(class_shards: list[Shard], now: datetime) -> float:
    """How long the job held the machines of one class: for each worker, from the start of its
    first shard to the end of its last (now, while one runs), less any gap between its shards
    longer than HELD_BETWEEN_SHARDS_S (a `farm retry` hours later is not an hour held). A
    worker is one machine, whatever its concurrency, and an hour of it is what
    FARM_COST_PER_HOUR_<CLASS> prices."""
    spans: dict[str, list[tuple[datetime, datetime]]] = {}
    for shard in class_shards:
        end = now if shard.state == ShardState.RUNNING else shard.finished_at
        if shard.started_at is None or end is None or shard.state == ShardState.PENDING:
            continue  # never run, or reopened by `farm retry`: its old start says nothing now
        spans.setdefault(shard.worker or "?", []).append((shard.started_at, end))
    return sum(_held(sorted(worker_spans)) for worker_spans in spans.values())


def _held(spans: list[tuple[datetime, datetime]]) -> float:
    """Seconds covered by time-sorted spans, bridging gaps up to HELD_BETWEEN_SHARDS_S."""
    held = 0.0
    first, last = spans[0]
    for start, end in spans[1:]:
        if (start - last).total_seconds() > HELD_BETWEEN_SHARDS_S:
            held += (last - first).total_seconds()
            first = start
        last = max(last, end)
    return held + (last - first).total_seconds()
