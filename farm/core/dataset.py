"""Datasets to score: Parquet (a file, a folder or a glob), CSV and ``.npy``, local or at an fsspec
URL (``s3://`` with s3fs installed).

The client reads only what it must to plan: Parquet footers (row counts, row groups, schema), a
``.npy`` header; CSV has no footer, so its rows are counted by streaming it once. A worker reads
its own row range straight from storage, batch by batch, so its memory is bounded by the batch
and never by the dataset. pyarrow and numpy are imported inside the functions: the CLI imports
this module to parse options.
"""

from __future__ import annotations

import glob as globlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from farm.core.errors import DataError, UsageError, first_line

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".npy": "npy"}
NPY_COLUMN = "array"  # the one "column" of a .npy dataset: its rows


class DataFile(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str  # as its filesystem names it
    rows: int


class Dataset(BaseModel):
    """A dataset to score, planned from its metadata on the client; stored with the job."""

    model_config = ConfigDict(frozen=True)

    uri: str  # as the user gave it
    format: str  # parquet, csv or npy
    files: list[DataFile]
    columns: dict[str, str]  # name -> Arrow type, as text; npy: {"array": "<dtype>[<row shape>]"}
    widths: dict[str, int] = Field(default_factory=dict)  # features per row of each numeric column
    row_group_rows: int = 0  # the Parquet row group size when all are equal, else 0

    @property
    def rows(self) -> int:
        return sum(file.rows for file in self.files)


# --- planning, on the client ---------------------------------------------------------------------


def open_dataset(uri: str) -> Dataset:
    """The dataset at ``uri``, from its metadata; a DataError says what is wrong with it."""
    fs, paths = _expand(uri)
    formats = {SUFFIXES.get(Path(path).suffix.lower()) for path in paths}
    if None in formats or len(formats) != 1:
        odd = next((p for p in paths if Path(p).suffix.lower() not in SUFFIXES), paths[0])
        raise DataError(f"{odd}: not a Parquet, CSV or NPY file (.parquet, .pq, .csv, .npy)")
    data_format = formats.pop()
    assert data_format is not None
    try:
        dataset = _READERS[data_format](fs, uri, paths)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{uri}: cannot read it as {data_format} ({first_line(exc)})") from exc
    if dataset.rows == 0:
        raise DataError(f"{uri}: the dataset is empty (0 rows)")
    return dataset


def filesystem(uri: str) -> tuple[Any, str]:
    """An fsspec filesystem and the path on it; local paths need no fsspec."""
    if "://" not in uri or uri.startswith("file://"):
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem(), str(Path(uri.removeprefix("file://")).expanduser().absolute())
    import fsspec

    try:
        return fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        raise DataError(f"{uri}: cannot open this URL ({first_line(exc)})") from exc


def _expand(uri: str) -> tuple[Any, list[str]]:
    fs, path = filesystem(uri)
    try:
        if globlib.has_magic(path):
            paths = sorted(fs.glob(path))
        elif fs.isdir(path):
            paths = sorted(
                p for p in fs.find(path) if Path(p).suffix.lower() in SUFFIXES and not _hidden(p, path)
            )
        elif fs.exists(path):
            paths = [path]
        else:
            raise DataError(f"{uri}: no such file or folder")
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{uri}: cannot list it ({first_line(exc)})") from exc
    if not paths:
        raise DataError(f"{uri}: no Parquet, CSV or NPY files there")
    return fs, paths


def _hidden(path: str, root: str) -> bool:
    # Spark, Hive and farm itself keep metadata in _ and . files beside the data.
    return any(part.startswith(("_", ".")) for part in Path(path).relative_to(root).parts)


def _parquet(fs: Any, uri: str, paths: list[str]) -> Dataset:
    import pyarrow.parquet as pq

    files, schema, group_sizes = [], None, set()
    for path in paths:
        with fs.open(path, "rb") as handle:
            metadata = pq.read_metadata(handle)
        if schema is None:
            schema = metadata.schema.to_arrow_schema()
        elif not metadata.schema.to_arrow_schema().equals(schema):
            raise DataError(f"{path}: its columns differ from those of {paths[0]}")
        files.append(DataFile(path=path, rows=metadata.num_rows))
        group_sizes |= {metadata.row_group(i).num_rows for i in range(metadata.num_row_groups - 1)}
    assert schema is not None
    widths = _widths(schema, lambda: _first_rows(fs, paths[0]))
    row_group = group_sizes.pop() if len(group_sizes) == 1 else 0
    columns = _types(schema)
    return Dataset(
        uri=uri, format="parquet", files=files, columns=columns, widths=widths, row_group_rows=row_group
    )


def _csv(fs: Any, uri: str, paths: list[str]) -> Dataset:
    files, schema = [], None
    for path in paths:
        rows = 0
        with fs.open(path, "rb") as handle:
            reader = csv_reader(handle)
            schema = schema or reader.schema
            for batch in reader:
                rows += batch.num_rows
        files.append(DataFile(path=path, rows=rows))
    assert schema is not None
    widths = _widths(schema, lambda: None)
    return Dataset(uri=uri, format="csv", files=files, columns=_types(schema), widths=widths)


def _npy(fs: Any, uri: str, paths: list[str]) -> Dataset:
    if len(paths) > 1:
        raise DataError(f"{uri}: score one .npy file at a time (or use Parquet for a folder of files)")
    with fs.open(paths[0], "rb") as handle:
        header = npy_header(handle, paths[0])
    rows, *row_shape = header.shape
    width = 1
    for dim in row_shape:
        width *= dim
    columns = {NPY_COLUMN: f"{header.dtype.name}{list(row_shape)}"}
    files = [DataFile(path=paths[0], rows=rows)]
    return Dataset(uri=uri, format="npy", files=files, columns=columns, widths={NPY_COLUMN: width})


_READERS = {"parquet": _parquet, "csv": _csv, "npy": _npy}


def _types(schema: pa.Schema) -> dict[str, str]:
    return {name: str(schema.field(name).type) for name in schema.names}


def _widths(schema: pa.Schema, first_rows: Any) -> dict[str, int]:
    """Features per row of each numeric column: 1 for a number, n for a list of n numbers (a
    variable-length list column is measured on the first row; every batch is checked again)."""
    import pyarrow as pa

    widths: dict[str, int] = {}
    sample = None
    for name in schema.names:
        kind = schema.field(name).type
        if pa.types.is_fixed_size_list(kind) and _numeric(kind.value_type):
            widths[name] = kind.list_size
        elif (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and _numeric(kind.value_type):
            sample = sample if sample is not None else first_rows()
            if sample is not None and sample.num_rows:
                widths[name] = len(sample.column(name)[0])
        elif _numeric(kind):
            widths[name] = 1
    return widths


def _numeric(kind: pa.DataType) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)


def _first_rows(fs: Any, path: str) -> pa.RecordBatch | None:
    import pyarrow.parquet as pq

    with fs.open(path, "rb") as handle:
        parquet = pq.ParquetFile(handle)
        return next(parquet.iter_batches(batch_size=1), None)


class InputMapping(BaseModel):
    """Which columns feed one model input, and the per-row shape and dtype the model wants."""

    model_config = ConfigDict(frozen=True)

    name: str
    columns: list[str]
    shape: list[int]  # one row's shape, the batch dimension left out
    dtype: str


def map_inputs(
    dataset: Dataset,
    model_inputs: list[dict[str, Any]],
    columns: list[str],
    named: dict[str, list[str]],
    keep: list[str],
) -> list[InputMapping]:
    """Decide and check which columns feed which model input: their count, width and dtype must
    fit the model before anything is queued. ``model_inputs`` are {name, shape, dtype}."""
    for column in [*columns, *(c for cs in named.values() for c in cs), *keep]:
        if column not in dataset.columns:
            raise DataError(f"no column {column!r} in {dataset.uri} (it has: {', '.join(dataset.columns)})")
    if dataset.format == "npy" and (columns or named or keep):
        raise UsageError(".npy data has no columns: leave out --columns, --input and --keep")
    by_name = {spec["name"]: spec for spec in model_inputs}
    if named:
        unknown = set(named) - set(by_name)
        if unknown:
            known = ", ".join(by_name)
            raise UsageError(f"the model has no input {', '.join(sorted(unknown))} (it has: {known})")
        missing = set(by_name) - set(named)
        if missing:
            raise UsageError(
                f"no columns given for input {', '.join(sorted(missing))} (--input NAME=col,...)"
            )
        chosen = named
    elif len(by_name) > 1:
        raise UsageError(
            f"the model has {len(by_name)} inputs ({', '.join(by_name)}): name the columns of each "
            "with --input NAME=col1,col2"
        )
    else:
        name = next(iter(by_name))
        chosen = {name: columns or [c for c in dataset.columns if c not in keep]}
    return [_mapping(dataset, by_name[name], cols) for name, cols in chosen.items()]


def _mapping(dataset: Dataset, spec: dict[str, Any], columns: list[str]) -> InputMapping:
    import numpy as np

    name, dtype = spec["name"], np.dtype(spec["dtype"])
    row_shape = list(spec["shape"])[1:]
    if any(dim is None for dim in row_shape):
        raise DataError(
            f"input {name} has unknown dimensions {spec['shape']}: give its shape when converting"
        )
    wanted = int(np.prod(row_shape)) if row_shape else 1
    for column in columns:
        if column not in dataset.widths:
            raise DataError(
                f"column {column!r} is {dataset.columns[column]}, not numbers (input {name}: {dtype.name})"
            )
        have = _column_dtype(dataset, column)
        if not np.can_cast(have, dtype, "same_kind"):
            raise DataError(
                f"column {column!r} holds {have.name}, which input {name} ({dtype.name}) cannot take"
            )
    width = sum(dataset.widths[column] for column in columns)
    if width != wanted:
        named = ", ".join(columns) if len(columns) <= 4 else f"{columns[0]} ... {columns[-1]}"
        raise DataError(
            f"input {name} takes {wanted} values per row (shape {spec['shape']}), but the "
            f"{len(columns)} columns ({named}) give {width}: pick them with --columns, or --keep the others"
        )
    return InputMapping(name=name, columns=columns, shape=[int(dim) for dim in row_shape], dtype=dtype.name)


def _column_dtype(dataset: Dataset, column: str) -> np.dtype:
    import numpy as np
    import pyarrow as pa

    if dataset.format == "npy":
        return np.dtype(dataset.columns[column].split("[")[0])
    text = dataset.columns[column]
    # "fixed_size_list<item: float>[20]" or "list<item: double>": the element type decides.
    if "<" in text:
        text = text.split(":", 1)[1].split(">")[0].strip()
    return np.dtype(pa.type_for_alias(text).to_pandas_dtype())


def csv_reader(handle: IO[bytes], columns: list[str] | None = None, types: dict | None = None) -> Any:
    import pyarrow.csv as csv

    convert = csv.ConvertOptions(include_columns=columns, column_types=types) if columns else None
    return csv.open_csv(handle, convert_options=convert)


def npy_header(handle: IO[bytes], path: str) -> Any:
    import numpy as np

    try:
        version = np.lib.format.read_magic(handle)
        read_header = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read_header(handle)
    except ValueError as exc:
        raise DataError(f"{path}: not a .npy array ({first_line(exc)})") from exc
    if fortran or not shape or dtype.hasobject:
        raise DataError(f"{path}: needs a C-ordered numeric array with a row dimension")
    return NpyHeader(tuple(shape), dtype, handle.tell())


@dataclass(frozen=True)
class NpyHeader:
    shape: tuple[int, ...]
    dtype: np.dtype
    data_offset: int
