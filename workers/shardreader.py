"""Reading one shard of a dataset on a worker: its row range straight from storage, batch by
batch, as model inputs. Only the row groups the range lies in are read (Parquet); a CSV is read
from its start (it has no index to seek by); a ``.npy`` is read from its offset."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from farm.core.dataset import Dataset, InputMapping, csv_reader, filesystem, npy_header
from farm.core.errors import DataError


@dataclass(frozen=True)
class Batch:
    first_row: int  # the dataset's row number of its first row
    features: dict[str, np.ndarray]  # by model input
    kept: pa.Table | None  # the --keep columns, passed through


def read_shard(
    dataset: Dataset, start: int, stop: int, batch_size: int, inputs: list[InputMapping], keep: list[str]
) -> Iterator[Batch]:
    """Rows [start, stop) in batches of at most ``batch_size``, as model inputs."""
    fs, _ = filesystem(dataset.uri)
    if dataset.format == "npy":
        yield from _npy_batches(fs, dataset.files[0].path, start, stop, batch_size, inputs[0])
        return
    needed = list(dict.fromkeys([c for mapping in inputs for c in mapping.columns] + keep))
    offset = 0
    for file in dataset.files:
        low, high = max(start, offset), min(stop, offset + file.rows)
        if low < high:
            tables = (
                _parquet_rows(fs, file.path, low - offset, high - offset, batch_size, needed)
                if dataset.format == "parquet"
                else _csv_rows(fs, file.path, low - offset, high - offset, needed, dataset.columns)
            )
            first = low
            for table in tables:
                for piece in range(0, table.num_rows, batch_size):
                    chunk = table.slice(piece, batch_size)
                    features = {m.name: _features(chunk, m) for m in inputs}
                    yield Batch(first, features, chunk.select(keep) if keep else None)
                    first += chunk.num_rows
        offset += file.rows


def _parquet_rows(
    fs: Any, path: str, low: int, high: int, batch_size: int, columns: list[str]
) -> Iterator[pa.Table]:
    """Rows [low, high) of one Parquet file, reading only the row groups they lie in."""
    with fs.open(path, "rb") as handle:
        parquet = pq.ParquetFile(handle)
        groups, first_group_row, position = [], None, 0
        for index in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(index).num_rows
            if position + rows > low and position < high:
                groups.append(index)
                first_group_row = position if first_group_row is None else first_group_row
            position += rows
        skip, left = low - (first_group_row or 0), high - low
        for batch in parquet.iter_batches(batch_size=batch_size, row_groups=groups, columns=columns):
            if skip >= batch.num_rows:
                skip -= batch.num_rows
                continue
            batch = batch.slice(skip, left)
            skip, left = 0, left - batch.num_rows
            yield pa.Table.from_batches([batch])
            if left <= 0:
                return


def _csv_rows(
    fs: Any, path: str, low: int, high: int, columns: list[str], types: dict[str, str]
) -> Iterator[pa.Table]:
    """Rows [low, high) of a CSV file: read from its start, since CSV has no index to seek by."""
    position = 0
    with fs.open(path, "rb") as handle:
        reader = csv_reader(handle, columns, {c: pa.type_for_alias(types[c]) for c in columns})
        for batch in reader:
            end = position + batch.num_rows
            if end > low:
                yield pa.Table.from_batches([batch.slice(max(low - position, 0), high - max(low, position))])
            position = end
            if position >= high:
                return


def _features(table: pa.Table, mapping: InputMapping) -> np.ndarray:

    parts = [_column_values(table.column(name), name) for name in mapping.columns]
    values = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    return values.reshape((table.num_rows, *mapping.shape)).astype(mapping.dtype, copy=False)


def _column_values(column: pa.ChunkedArray, name: str) -> np.ndarray:
    """A column as a (rows, features) array; refuses missing values and ragged lists."""
    if column.null_count:
        raise DataError(f"column {name!r} has {column.null_count} missing values in this shard")
    array = column.combine_chunks()
    rows = len(array)
    if (
        pa.types.is_fixed_size_list(array.type)
        or pa.types.is_list(array.type)
        or pa.types.is_large_list(array.type)
    ):
        values = array.flatten().to_numpy(zero_copy_only=False)
        if rows and values.size % rows:
            raise DataError(f"column {name!r} holds lists of different lengths")
        if not pa.types.is_fixed_size_list(array.type):
            lengths = np.diff(array.offsets.to_numpy())
            if rows and (lengths != lengths[0]).any():
                raise DataError(f"column {name!r} holds lists of different lengths")
        return values.reshape(rows, -1)
    return array.to_numpy(zero_copy_only=False).reshape(rows, 1)


def _npy_batches(
    fs: Any, path: str, start: int, stop: int, batch_size: int, mapping: InputMapping
) -> Iterator[Batch]:

    with fs.open(path, "rb") as handle:
        header = npy_header(handle, path)
        row_bytes = header.dtype.itemsize * int(np.prod(header.shape[1:], dtype=np.int64))
        handle.seek(header.data_offset + start * row_bytes)
        for first in range(start, stop, batch_size):
            rows = min(batch_size, stop - first)
            values = np.frombuffer(handle.read(rows * row_bytes), dtype=header.dtype)
            features = values.reshape((rows, *mapping.shape)).astype(mapping.dtype, copy=False)
            yield Batch(first, {mapping.name: features}, None)
