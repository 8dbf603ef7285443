from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as csv
import pyarrow.parquet as pq
import pytest

from farm.client.infer import default_shard_rows, shard_ranges
from farm.core.dataset import map_inputs, open_dataset
from farm.core.errors import DataError, UsageError
from workers.shardreader import read_shard

MODEL = [{"name": "x", "shape": [None, 3], "dtype": "float32"}]


def _table(first: int, rows: int) -> pa.Table:
    ids = np.arange(first, first + rows)
    return pa.table({"id": ids, "a": ids * 1.0, "b": ids * 2.0, "c": ids * 3.0})


def _rows(dataset, start: int, stop: int, batch: int = 7) -> tuple[list[int], np.ndarray]:  # type: ignore[no-untyped-def]
    mapping = map_inputs(dataset, MODEL, ["a", "b", "c"], {}, ["id"])
    batches = list(read_shard(dataset, start, stop, batch, mapping, ["id"]))
    assert all(len(b.features["x"]) <= batch for b in batches)
    first_rows = [b.first_row for b in batches]
    ids = [i for b in batches for i in b.kept.column("id").to_pylist()]
    assert first_rows[0] == start and ids == list(range(start, stop))
    return ids, np.concatenate([b.features["x"] for b in batches])


def test_a_parquet_folder_reads_any_row_range_across_files_and_row_groups(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    pq.write_table(_table(0, 50), folder / "part-0.parquet", row_group_size=10)
    pq.write_table(_table(50, 30), folder / "part-1.parquet", row_group_size=10)
    (folder / "_SUCCESS").write_text("")
    for uri in (str(folder), str(folder / "*.parquet")):
        dataset = open_dataset(uri)
        assert (dataset.format, dataset.rows, len(dataset.files), dataset.row_group_rows) == (
            "parquet",
            80,
            2,
            10,
        )
    for start, stop in ((0, 80), (13, 57), (45, 55), (79, 80)):
        ids, features = _rows(dataset, start, stop)
        np.testing.assert_array_equal(features, np.array([[i, 2 * i, 3 * i] for i in ids], dtype=np.float32))
        assert features.dtype == np.float32


def test_csv_and_npy_read_their_ranges(tmp_path: Path) -> None:
    csv.write_csv(_table(0, 40), tmp_path / "data.csv")
    dataset = open_dataset(str(tmp_path / "data.csv"))
    assert (dataset.format, dataset.rows) == ("csv", 40)
    _rows(dataset, 11, 33)

    np.save(tmp_path / "data.npy", np.arange(60, dtype=np.float64).reshape(20, 3))
    array = open_dataset(str(tmp_path / "data.npy"))
    assert (array.rows, array.widths) == (20, {"array": 3})
    mapping = map_inputs(array, MODEL, [], {}, [])
    batches = list(read_shard(array, 5, 12, 4, mapping, []))
    np.testing.assert_array_equal(
        np.concatenate([b.features["x"] for b in batches]).ravel(), np.arange(15, 36)
    )


def test_a_list_column_feeds_an_input_of_that_width_and_mismatches_are_refused(tmp_path: Path) -> None:
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(30, dtype=np.float32)), 3)
    pq.write_table(pa.table({"v": vectors, "name": ["n"] * 10}), tmp_path / "v.parquet")
    dataset = open_dataset(str(tmp_path / "v.parquet"))
    assert dataset.widths == {"v": 3}
    assert map_inputs(dataset, MODEL, ["v"], {}, ["name"])[0].columns == ["v"]
    with pytest.raises(DataError, match="column 'name' is string, not numbers"):
        map_inputs(dataset, MODEL, [], {}, [])
    with pytest.raises(UsageError, match="no columns given for input y"):
        map_inputs(
            dataset, [*MODEL, {"name": "y", "shape": [None, 1], "dtype": "float32"}], [], {"x": ["v"]}, []
        )
    with pytest.raises(UsageError, match="the model has 2 inputs"):
        map_inputs(dataset, [*MODEL, {"name": "y", "shape": [None, 1], "dtype": "float32"}], ["v"], {}, [])


def test_shards_cover_every_row_once_and_follow_even_row_groups(tmp_path: Path) -> None:
    pq.write_table(_table(0, 100_000), tmp_path / "d.parquet", row_group_size=4_096)
    dataset = open_dataset(str(tmp_path / "d.parquet"))
    rows = default_shard_rows(dataset)
    assert rows % 4_096 == 0 and 1_000 <= rows <= 100_000
    ranges = shard_ranges(dataset.rows, rows)
    assert ranges[0][0] == 0 and ranges[-1][1] == 100_000
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))


def test_a_dataset_at_an_fsspec_url_reads_like_a_local_one(tmp_path: Path) -> None:
    import fsspec

    pq.write_table(_table(0, 30), tmp_path / "local.parquet", row_group_size=8)
    with fsspec.open("memory://bucket/data.parquet", "wb") as handle:
        handle.write((tmp_path / "local.parquet").read_bytes())
    for uri in ("memory://bucket/data.parquet", f"file://{tmp_path / 'local.parquet'}"):
        dataset = open_dataset(uri)
        assert (dataset.rows, dataset.row_group_rows) == (30, 8)
        _rows(dataset, 5, 27)
