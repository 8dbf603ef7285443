"""Calibration data files (``--calib``): ``.npy``, ``.npz`` or Parquet, one sample per row.

Read on the client (to refuse a bad file before anything is queued) and on the worker. The result
maps input names to arrays whose first axis is the sample; a lone array (``.npy``, or a one-array
``.npz``) is keyed ``""``, meaning "the model's only input".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from farm.errors import ToolchainMissingError, UsageError

SUFFIXES = (".npy", ".npz", ".parquet")
ONLY_INPUT = ""


def read_calibration(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise UsageError(f"calibration file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise UsageError(f"calibration file {path.name}: expected {', '.join(SUFFIXES)}")
    try:
        arrays = _READERS[suffix](path)
    except (UsageError, ToolchainMissingError):
        raise
    except Exception as exc:  # numpy and pyarrow raise many kinds on a damaged file
        raise UsageError(f"calibration file {path.name} could not be read ({type(exc).__name__})") from exc
    return _checked(path.name, arrays)


def _read_npy(path: Path) -> dict[str, np.ndarray]:
    return {ONLY_INPUT: np.load(path, allow_pickle=False)}


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    if len(arrays) == 1:
        return {ONLY_INPUT: next(iter(arrays.values()))}
    return arrays


def _read_parquet(path: Path) -> dict[str, np.ndarray]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ToolchainMissingError("reading Parquet needs pyarrow: pip install pyarrow") from exc
    table = pq.read_table(path)
    # A column holds one input; each row is a sample, a scalar or a (nested) list of numbers.
    arrays = {name: np.asarray(table.column(name).to_pylist()) for name in table.column_names}
    if len(arrays) == 1:
        return {ONLY_INPUT: next(iter(arrays.values()))}
    return arrays


_READERS = {".npy": _read_npy, ".npz": _read_npz, ".parquet": _read_parquet}


def _checked(name: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not arrays:
        raise UsageError(f"calibration file {name} holds no arrays")
    counts = set()
    for key, array in arrays.items():
        label = f"{name}[{key}]" if key else name
        if array.dtype.kind not in "fiub" or array.ndim == 0:
            raise UsageError(f"calibration file {label}: expected numbers, one sample per row")
        counts.add(len(array))
    if len(counts) > 1:
        raise UsageError(f"calibration file {name}: its arrays hold different sample counts {sorted(counts)}")
    if counts.pop() < 2:
        raise UsageError(f"calibration file {name}: needs at least 2 samples (calibration and held-out)")
    return arrays
