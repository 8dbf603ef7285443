"""Scoring one shard of a batch-inference job: read its rows from storage batch by batch, run the
serving variant, and stream the scores into a part file under an attempt-unique temporary name.
Publishing the part (under its final name: farm/core/output.py) happens with the shard's
done-transaction, in workers/scoring.py. Free of Celery and of the database.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from farm.core.artifacts import fsync_file, sha256_of
from farm.core.errors import FarmError
from farm.core.jobspec import InferOptions
from farm.core.modelfile import TensorSpec
from farm.core.output import ROW_COLUMN
from workers.backends import NATIVE, all_backends
from workers.layout import in_sample_layout
from workers.runtime import BuiltVariant, Runner
from workers.shardreader import Batch, read_shard

if TYPE_CHECKING:
    from db.models import Variant

ROW_GROUP_ROWS = 65_536  # rows buffered before a part's row group is written


class Cancelled(FarmError):
    """The job was cancelled while this shard was being scored."""


@dataclass(frozen=True)
class ScoredPart:
    path: Path  # the temporary file, complete and synced
    rows: int
    sha256: str
    seconds: float


@lru_cache(maxsize=2)
def serving_runner(
    path: Path, backend: str, fmt: str, precision: str, details: str, outputs: tuple[str, ...]
) -> Runner:
    """A variant loaded once per worker process and kept for the job's next shards. ``details``
    (JSON, to be hashable) are the backend's facts, e.g. the GPU a TensorRT engine is bound to."""
    built = BuiltVariant(path, fmt, precision, runtime="", details=json.loads(details))
    return all_backends()[backend].load(built, list(outputs))


def runner_for(variant: Variant, path: Path, outputs: list[str]) -> Runner:
    """The variant's runner in sample layout: the native model's is so already (workers/sources)."""
    details = json.dumps(variant.details, sort_keys=True)
    runner = serving_runner(path, variant.backend, variant.format, variant.precision, details, tuple(outputs))
    if variant.backend == NATIVE:
        return runner
    signature = variant.signature or {}
    specs = [
        TensorSpec(item["name"], tuple(item["shape"]), item["dtype"], item.get("batch_axis", 0))
        for item in signature.get("inputs", [])
    ]
    return in_sample_layout(runner, specs, outputs, signature.get("output_batch_axes", {}))


def score_shard(
    options: InferOptions,
    start: int,
    stop: int,
    target: Path,
    runner: Runner,
    stop_requested: Callable[[], bool] = lambda: False,
) -> ScoredPart:
    """Score rows [start, stop) into ``target``; removes it again if anything goes wrong."""
    began = time.perf_counter()
    dataset, inputs = options.dataset, options.inputs
    writer: pq.ParquetWriter | None = None
    pending: list[pa.Table] = []  # scored, not yet written: at most one row group
    pending_rows = rows = 0
    try:
        for batch in read_shard(dataset, start, stop, options.batch_size, inputs, options.keep):
            if stop_requested():
                raise Cancelled("cancelled")
            table = output_table(batch, runner(batch.features), options.output_columns)
            pending.append(table)
            pending_rows += table.num_rows
            rows += table.num_rows
            if pending_rows >= ROW_GROUP_ROWS:
                writer = _write(writer, target, pending)
                pending, pending_rows = [], 0
        writer = _write(writer, target, pending)
        writer.close()
        fsync_file(target)
    except BaseException:
        if writer is not None:
            writer.close()
        target.unlink(missing_ok=True)
        raise
    return ScoredPart(target, rows, sha256_of(target), time.perf_counter() - began)


def _write(writer: pq.ParquetWriter | None, target: Path, tables: list[pa.Table]) -> pq.ParquetWriter:
    if writer is None:
        writer = pq.ParquetWriter(target, tables[0].schema)
    if tables:
        writer.write_table(pa.concat_tables(tables))
    return writer


def output_table(batch: Batch, outputs: list[np.ndarray], names: list[str]) -> pa.Table:
    """Row index, kept columns, then one column per model output: a number per row, or a
    fixed-size list of the row's values flattened."""
    rows = len(next(iter(batch.features.values())))
    columns: dict[str, pa.Array] = {ROW_COLUMN: pa.array(np.arange(batch.first_row, batch.first_row + rows))}
    if batch.kept is not None:
        columns.update({name: batch.kept.column(name).combine_chunks() for name in batch.kept.column_names})
    for name, values in zip(names, outputs, strict=True):
        flat = np.ascontiguousarray(values).reshape(rows, -1)
        columns[name] = (
            pa.array(flat[:, 0])
            if flat.shape[1] == 1
            else pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])
        )
    return pa.table(columns)


@dataclass(frozen=True)
class ClassRate:
    lane_rate: float  # rows per second of one lane
    busy_lanes: int


def wait_for_faster(
    rates: dict[str, ClassRate], hardware: str, pending_rows: int, shard_rows: int
) -> float | None:
    """Seconds this hardware class's lane should step back before claiming again, or None.

    Near the end of a job a slow class taking one more shard would finish it after the faster
    classes have cleared everything else; it lets them take the rest, and looks again after the
    time it would have needed (in case they stall). Measured rates of this job decide.
    """
    mine = rates.get(hardware)
    if mine is None or mine.lane_rate <= 0 or pending_rows <= 0:
        return None
    # Only classes at work now count: one that stopped (finished, or lost its workers) clears nothing.
    others = sum(r.lane_rate * r.busy_lanes for hw, r in rates.items() if hw != hardware)
    if others <= 0:
        return None
    my_seconds = min(shard_rows, pending_rows) / mine.lane_rate
    their_seconds = pending_rows / others
    return my_seconds if my_seconds > their_seconds else None
