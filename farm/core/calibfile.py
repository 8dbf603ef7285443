"""Sample files (``--calib`` and ``--eval``): ``.npy``, ``.npz`` or Parquet, one sample per row.

Read on the client (to refuse a bad file before anything is queued) and on the worker. Inputs map
input names to arrays whose first axis is the sample; a lone array (``.npy``, or a one-array
``.npz``) is keyed ``""``, meaning "the model's only input". Labels, the true class of each sample,
ride along as the ``.npz`` array ``labels`` or the Parquet column ``label``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from farm.core.errors import ToolchainMissingError, UsageError
from farm.core.modelfile import TensorSpec, shape_text

SUFFIXES = (".npy", ".npz", ".parquet")
ONLY_INPUT = ""
NPZ_LABELS = "labels"
PARQUET_LABELS = "label"


@dataclass(frozen=True)
class SampleFile:
    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None  # one class index per sample, or None
    label: str = "the sample file"  # how messages name it: "--calib file calib.npz"

    def arrays_for(self, specs: list[TensorSpec]) -> dict[str, np.ndarray]:
        """Each input's samples as the model takes them, in sample layout (one sample per row;
        see TensorSpec): cast to its dtype, and flat samples reshaped to its shape. Refuses,
        naming the file and the input, an array that is missing or whose dtype or shape cannot
        feed the input. The client runs this before queueing; the worker runs it again on the
        model as loaded."""
        return {spec.name: _fitted(self._array_for(spec, specs), spec, self.label) for spec in specs}

    def _array_for(self, spec: TensorSpec, specs: list[TensorSpec]) -> np.ndarray:
        if ONLY_INPUT in self.inputs and len(specs) != 1:
            names = ", ".join(s.name for s in specs)
            raise UsageError(f"{self.label} holds one array; the model has inputs {names}")
        key = samples_key(spec.name, self.inputs, len(specs))
        if key is None:
            have = ", ".join(sorted(self.inputs))
            raise UsageError(f"{self.label} has no array for input {spec.name} (it has: {have})")
        return self.inputs[key]


def samples_key(name: str, keys: Collection[str], inputs: int) -> str | None:
    """The array of a sample file that feeds input ``name``: the file's lone array when the model
    has one input, else the one named like the input or its TensorFlow node (``image`` for
    ``image:0``); None when there is none."""
    if ONLY_INPUT in keys:
        return ONLY_INPUT if inputs == 1 else None
    return next((key for key in (name, name.split(":")[0]) if key in keys), None)


def _fitted(array: np.ndarray, spec: TensorSpec, label: str) -> np.ndarray:
    # same_kind: float64 feeds float32 and integers feed floats, but floats never feed integer
    # inputs (token ids, class indices), where the cast would silently truncate.
    if not np.can_cast(array.dtype, np.dtype(spec.dtype), "same_kind"):
        raise UsageError(
            f"{label}: samples for input {spec.name} are {array.dtype}, the model takes {spec.dtype}"
        )
    if spec.batch_axis is None and array.ndim == 1 and len(array) and not (array == array[0]).all():
        raise UsageError(f"{label}: input {spec.name} is a scalar, one value for all: its samples differ")
    wanted, given = spec.sample_shape[1:], array.shape[1:]
    if len(given) == len(wanted) and all(w is None or w == g for w, g in zip(wanted, given, strict=True)):
        return np.ascontiguousarray(array.astype(spec.dtype))
    known = tuple(dim for dim in wanted if dim is not None)
    if len(known) == len(wanted) and int(np.prod(given)) == int(np.prod(known)):  # (n, 64) feeds (n, 8, 8)
        return np.ascontiguousarray(array.reshape((len(array), *known)).astype(spec.dtype))
    raise UsageError(
        f"{label}: samples for input {spec.name} have shape {shape_text(given)}, "
        f"the model takes {shape_text(wanted)}"
    )


def read_samples(path: Path, flag: str = "--calib") -> SampleFile:
    """The file given to ``flag``; every message names the flag, so the user knows which file."""
    if not path.is_file():
        raise UsageError(f"{flag} file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise UsageError(f"{flag} file {path.name}: expected {', '.join(SUFFIXES)}")
    try:
        arrays, labels_key = _READERS[suffix](path)
    except (UsageError, ToolchainMissingError):
        raise
    except Exception as exc:  # numpy and pyarrow raise many kinds on a damaged file
        raise UsageError(f"{flag} file {path.name} could not be read ({type(exc).__name__})") from exc
    labels = arrays.pop(labels_key, None)
    if len(arrays) == 1:
        arrays = {ONLY_INPUT: next(iter(arrays.values()))}
    return _checked(SampleFile(arrays, labels, f"{flag} file {path.name}"))


def _read_npy(path: Path) -> tuple[dict[str, np.ndarray], str]:
    return {ONLY_INPUT: np.load(path, allow_pickle=False)}, NPZ_LABELS


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], str]:
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}, NPZ_LABELS


def _read_parquet(path: Path) -> tuple[dict[str, np.ndarray], str]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ToolchainMissingError("reading Parquet needs pyarrow: pip install pyarrow") from exc
    table = pq.read_table(path)
    # A column holds one input; each row is a sample, a scalar or a (nested) list of numbers.
    return {name: np.asarray(table.column(name).to_pylist()) for name in table.column_names}, PARQUET_LABELS


_READERS = {".npy": _read_npy, ".npz": _read_npz, ".parquet": _read_parquet}


def _checked(samples: SampleFile) -> SampleFile:
    name = samples.label
    if not samples.inputs:
        raise UsageError(f"{name} holds no input arrays")
    counts = set()
    for key, array in samples.inputs.items():
        label = f"{name}[{key}]" if key else name
        if array.dtype.kind not in "fiub" or array.ndim == 0:
            raise UsageError(f"{label}: expected numbers, one sample per row")
        counts.add(len(array))
    if samples.labels is not None:
        _check_labels(name, samples.labels)
        counts.add(len(samples.labels))
    if len(counts) > 1:
        raise UsageError(f"{name}: its arrays hold different sample counts {sorted(counts)}")
    if counts.pop() < 2:
        raise UsageError(f"{name}: needs at least 2 samples (calibration and held-out)")
    return samples


def _check_labels(name: str, labels: np.ndarray) -> None:
    whole = labels.dtype.kind in "iu" or (labels.dtype.kind == "f" and np.all(np.mod(labels, 1) == 0))
    if labels.ndim != 1 or not whole or (labels.size and labels.min() < 0):
        raise UsageError(
            f"{name}: labels must be one class index (0, 1, 2, ...) per sample, "
            f"got {labels.dtype} of shape {labels.shape}"
        )
