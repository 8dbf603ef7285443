"""Recognise and sanity-check a model file on the client, before anything is stored or queued.

Nothing here imports TensorFlow: a submitting machine needs only the base install.
"""

from __future__ import annotations

import enum
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

from farm.core.errors import (
    CorruptModelError,
    ModelNotFoundError,
    UnsupportedModelError,
    UsageError,
    first_line,
)
from farm.core.tfproto import graph_def_class

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


class ModelFormat(str, enum.Enum):
    FROZEN_GRAPH = "frozen_graph"
    SAVED_MODEL = "saved_model"
    KERAS = "keras"
    ONNX = "onnx"
    TORCH_EXPORT = "torch_export"  # torch.export.save: an ExportedProgram (.pt2)
    TORCHSCRIPT = "torchscript"  # torch.jit.save (.pt): deprecated upstream, still read
    SKOPS = "skops"  # scikit-learn estimators and pipelines saved by skops.io.dump
    XGBOOST = "xgboost"  # XGBoost's own model file (.json, .ubj)
    LIGHTGBM = "lightgbm"  # LightGBM's own model file (.txt)
    PICKLE = "pickle"  # pickle or joblib: runs code on load, so only with --allow-pickle


# Formats whose loading unpickles: arbitrary code from the file runs on the worker that loads it.
UNPICKLING_FORMATS = (ModelFormat.PICKLE,)
# The modules a .skops file may hold types of; anything else is refused (farm.core.skopsfile).
TRUSTED_MODULES = ("sklearn", "xgboost", "lightgbm", "numpy", "scipy")


@dataclass(frozen=True)
class TensorSpec:
    """One model input as a worker runs it: read from the model, with --inputs shapes applied.

    The farm itself (sample files, calibration, verification, scoring) holds every input in
    *sample layout*: one sample per row, on axis 0. Most models take that layout; a recurrent
    state batched on another axis (``(2, N, 64)``, ``batch_axis`` 1) has the sample axis moved
    there when fed (workers/layout.py), and a scalar input (a sample rate; ``batch_axis`` None)
    is fed one value, which every sample of a batch must share."""

    name: str  # tensor name, as the ONNX variant also names it ("image:0")
    shape: tuple[int | None, ...]  # as the model takes it; None for an unknown dimension
    dtype: str  # numpy dtype name
    batch_axis: int | None = 0  # where the model's batch is; None for a scalar input

    @property
    def sample_shape(self) -> tuple[int | None, ...]:
        """The shape in sample layout: the batch first, then the model's other dimensions."""
        if self.batch_axis is None:
            return (None,)
        axis = self.batch_axis
        return (self.shape[axis], *self.shape[:axis], *self.shape[axis + 1 :])

    def with_sample_shape(self, sample_shape: tuple[int | None, ...]) -> TensorSpec:
        """This spec with the dimensions given in sample layout (the batch first)."""
        if self.batch_axis is None:
            return self
        rest = list(sample_shape[1:])
        rest.insert(self.batch_axis, sample_shape[0])
        return replace(self, shape=tuple(rest))


@dataclass(frozen=True)
class TensorArg:
    """A tensor named on the command line, optionally with its shape (None for an unknown dim)."""

    name: str
    shape: tuple[int | None, ...] | None = None

    def to_json(self) -> dict:
        return {"name": self.name, "shape": None if self.shape is None else list(self.shape)}

    @classmethod
    def from_json(cls, data: dict) -> TensorArg:
        shape = data.get("shape")
        return cls(data["name"], None if shape is None else tuple(shape))


def detect_format(path: Path) -> ModelFormat:
    """The format of the model at ``path``; raises a ModelError saying what is wrong with it."""
    if not path.exists():
        raise ModelNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        return _check_saved_model(path)
    checks = {
        ".pb": _check_frozen_graph,
        ".onnx": _check_onnx,
        ".keras": _check_keras_archive,
        ".h5": _check_hdf5,
        ".hdf5": _check_hdf5,
        ".pt2": _check_torch_export,
        ".pt": _check_torch_archive,
        ".pth": _check_torch_archive,
        ".skops": _check_skops,
        ".json": _check_xgboost_json,
        ".ubj": _check_xgboost_ubj,
        ".txt": _check_lightgbm,
        ".pkl": _pickle,
        ".pickle": _pickle,
        ".joblib": _pickle,
    }
    check = checks.get(path.suffix.lower())
    if check is None:
        raise UnsupportedModelError(
            f"{path}: not a model format farm reads "
            "(expected a frozen graph .pb, a SavedModel folder, .keras, .h5, .onnx, a PyTorch .pt2 or "
            "TorchScript .pt, a scikit-learn .skops, an XGBoost .json/.ubj or a LightGBM .txt)"
        )
    return check(path)


def _check_saved_model(path: Path) -> ModelFormat:
    if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
        return ModelFormat.SAVED_MODEL
    raise UnsupportedModelError(f"{path}: a folder, but not a SavedModel (no saved_model.pb inside)")


def _check_frozen_graph(path: Path) -> ModelFormat:
    if path.name == "saved_model.pb":
        raise UsageError(f"{path}: this is part of a SavedModel; submit its folder {path.parent} instead")
    graph = graph_def_class()()
    try:
        graph.ParseFromString(path.read_bytes())
    except Exception as exc:  # protobuf raises DecodeError, or RuntimeError from upb
        raise CorruptModelError(f"{path}: not a valid TensorFlow GraphDef (corrupt protobuf)") from exc
    if not graph.node or any(not node.op or not node.name for node in graph.node):
        raise CorruptModelError(f"{path}: not a valid TensorFlow GraphDef (no well-formed graph nodes)")
    return ModelFormat.FROZEN_GRAPH


def _check_onnx(path: Path) -> ModelFormat:
    import onnx

    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:
        raise CorruptModelError(f"{path}: not a valid ONNX model ({first_line(exc)})") from exc
    return ModelFormat.ONNX


def _zip_names(path: Path, what: str) -> list[str]:
    """The names in a zip archive (.keras, .pt2, TorchScript); CorruptModelError for any other file."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise CorruptModelError(f"{path}: not a valid {what} ({exc})") from exc


def _check_keras_archive(path: Path) -> ModelFormat:
    if "config.json" not in _zip_names(path, ".keras archive"):
        raise CorruptModelError(f"{path}: not a valid .keras archive (no config.json inside)")
    return ModelFormat.KERAS


def _check_hdf5(path: Path) -> ModelFormat:
    with path.open("rb") as handle:
        if handle.read(len(HDF5_MAGIC)) != HDF5_MAGIC:
            raise CorruptModelError(f"{path}: not a valid HDF5 Keras model (bad file signature)")
    return ModelFormat.KERAS


def _check_torch_export(path: Path) -> ModelFormat:
    names = _zip_names(path, "torch.export archive")
    if not any(name.endswith("models/model.json") or "serialized_exported_program" in name for name in names):
        raise CorruptModelError(f"{path}: not an ExportedProgram saved by torch.export.save")
    return ModelFormat.TORCH_EXPORT


PT2_HOW = "torch.export.save(torch.export.export(model, example_inputs), 'model.pt2')"


def _check_torch_archive(path: Path) -> ModelFormat:
    names = _zip_names(path, "PyTorch file")
    if any("/code/" in name for name in names):
        return ModelFormat.TORCHSCRIPT
    raise UnsupportedModelError(
        f"{path}: a pickled PyTorch model or state dict (torch.save), which farm does not load "
        f"(unpickling runs code); save an ExportedProgram instead: {PT2_HOW}"
    )


def _check_skops(path: Path) -> ModelFormat:
    from farm.core.skopsfile import untrusted_types

    refused = untrusted_types(path, TRUSTED_MODULES)
    if refused:
        allowed = ", ".join(TRUSTED_MODULES)
        raise UnsupportedModelError(
            f"{path}: holds types farm does not trust ({', '.join(refused[:5])}); "
            f"a .skops file may hold types of {allowed} only"
        )
    return ModelFormat.SKOPS


def _check_xgboost_json(path: Path) -> ModelFormat:
    import json

    try:
        document = json.loads(path.read_bytes())
    except (ValueError, OSError) as exc:
        raise CorruptModelError(f"{path}: not valid JSON ({first_line(exc)})") from exc
    if not isinstance(document, dict) or "learner" not in document:
        raise UnsupportedModelError(f"{path}: not a model format farm reads (JSON, but not an XGBoost model)")
    return ModelFormat.XGBOOST


def _check_xgboost_ubj(path: Path) -> ModelFormat:
    return _by_head(path, b"{", b"learner", ModelFormat.XGBOOST, "UBJSON, but not an XGBoost model")


def _check_lightgbm(path: Path) -> ModelFormat:
    return _by_head(path, b"tree\n", b"version=", ModelFormat.LIGHTGBM, "text, but not a LightGBM model")


def _by_head(path: Path, starts: bytes, holds: bytes, fmt: ModelFormat, otherwise: str) -> ModelFormat:
    """``fmt`` when the file's first 4 KiB start with ``starts`` and hold ``holds``."""
    with path.open("rb") as handle:
        head = handle.read(4096)
    if not head.startswith(starts) or holds not in head:
        raise UnsupportedModelError(f"{path}: not a model format farm reads ({otherwise})")
    return fmt


def _pickle(path: Path) -> ModelFormat:
    return ModelFormat.PICKLE


def refuse_unpickling(fmt: ModelFormat, path: Path, allowed: bool) -> None:
    """A format that unpickles is loaded only when its owner said so with --allow-pickle."""
    if fmt in UNPICKLING_FORMATS and not allowed:
        raise UsageError(
            f"{path}: a pickle/joblib file runs code from the file on every worker that loads it; "
            "save it with skops.io.dump (.skops) instead, or pass --allow-pickle if you trust it"
        )


def shape_text(shape: tuple[int | None, ...]) -> str:
    """A shape as --inputs writes it: ``(?,16,16,3)``."""
    return "(" + ",".join("?" if dim is None else str(dim) for dim in shape) + ")"


def node_name(tensor: str) -> str:
    """The TensorFlow graph node a tensor name refers to: ``image`` for ``image:0`` (or ``^image``)."""
    return tensor.lstrip("^").split(":")[0]


def tensor_name(name: str) -> str:
    """A TensorFlow tensor name with its output index: ``image`` means ``image:0``."""
    return name if ":" in name else f"{name}:0"


def parse_tensor_arg(text: str) -> TensorArg:
    """Parse ``NAME[:shape]``: ``image``, ``image:0``, ``image:0:?,224,224,3`` or ``x:[1,8]``.

    A trailing all-digit part is a tensor index (``:0``), so a one-dimensional shape is
    written with brackets or a trailing comma: ``x:[5]`` or ``x:5,``.
    """
    text = text.strip()
    name, sep, last = text.rpartition(":")
    if not sep or last.isdigit():
        return TensorArg(_checked_name(text, text))
    return TensorArg(_checked_name(name, text), _parse_shape(last, text))


def _checked_name(name: str, original: str) -> str:
    if not name or any(ch.isspace() for ch in name):
        raise UsageError(f"bad tensor {original!r}: expected NAME[:shape], e.g. image:0:?,224,224,3")
    return name


def _parse_shape(text: str, original: str) -> tuple[int | None, ...]:
    dims = [dim.strip() for dim in text.strip("[]() ").split(",") if dim.strip()]
    if not dims:
        raise UsageError(f"bad shape in {original!r}: no dimensions")
    shape: list[int | None] = []
    for dim in dims:
        if dim in ("?", "-1", "None", "none"):
            shape.append(None)
        elif dim.isdigit() and int(dim) > 0:
            shape.append(int(dim))
        else:
            raise UsageError(f"bad shape in {original!r}: dimension {dim!r} is not a positive integer or ?")
    return tuple(shape)
