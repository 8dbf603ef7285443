"""Load a submitted model as the *source*: the reference every variant is verified against.

One module per source framework (``*_models.py``), each exposing ``FORMATS`` (the
farm.core.modelfile formats it reads) and ``load(path, fmt, request)``. Adding a framework is one
module here and its formats in farm/core/modelfile.py; frameworks are imported only when a model of
theirs is loaded.
"""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import tempfile
import weakref
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from farm.core.modelfile import ModelFormat, TensorArg, TensorSpec
from workers.layout import in_sample_layout
from workers.sources.base import SourceModel, SourceRequest, fill_from_samples

__all__ = ["SourceModel", "SourceRequest", "load_source", "load_with_scratch"]


def load_source(
    path: Path,
    fmt: ModelFormat,
    inputs: list[TensorArg],
    outputs: list[str],
    scratch: Path,
    allow_pickle: bool = False,
    sample_shapes: dict[str, tuple[int, ...]] | None = None,
) -> SourceModel:
    """The model at ``path``; ``scratch`` is an existing folder for what is derived from it, which
    lives as long as the returned source (its ONNX export). ``sample_shapes``: the shapes of the
    job's sample arrays by input name, which fill the dimensions the model leaves unknown."""
    module = importlib.import_module(_readers()[fmt])
    source: SourceModel = module.load(path, fmt, SourceRequest(inputs, outputs, allow_pickle))
    source.inputs = [_scalar_if_rank_0(spec, source) for spec in source.inputs]
    fill_from_samples(source, sample_shapes or {})
    source.run = in_sample_layout(source.run, source.inputs, source.output_names, source.output_batch_axes)
    source.path = path
    source.format = fmt.value
    source.request = SourceRequest(inputs, outputs, allow_pickle)
    source.scratch = scratch
    return source


def load_with_scratch(
    path: Path,
    fmt: ModelFormat,
    inputs: list[TensorArg],
    outputs: list[str],
    prefix: str,
    allow_pickle: bool = False,
    sample_shapes: dict[str, tuple[int, ...]] | None = None,
) -> SourceModel:
    """load_source with a scratch folder of its own (``prefix``...), removed when the source goes."""
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        source = load_source(path, fmt, inputs, outputs, scratch, allow_pickle, sample_shapes)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    weakref.finalize(source, shutil.rmtree, scratch, ignore_errors=True)
    return source


def _scalar_if_rank_0(spec: TensorSpec, source: SourceModel) -> TensorSpec:
    """A rank-0 input is a scalar (TorchScript's undeclared shapes excepted: not known yet)."""
    if spec.shape == () and spec.name not in source.shapes_unknown and spec.batch_axis is not None:
        return replace(spec, batch_axis=None)
    return spec


@lru_cache(maxsize=1)
def _readers() -> dict[ModelFormat, str]:
    """Each format's framework module, by name. The modules declare FORMATS before importing any
    framework (they import theirs inside ``load``), so reading the table is cheap."""
    readers: dict[ModelFormat, str] = {}
    for info in pkgutil.iter_modules(__path__):
        if not info.name.endswith("_models"):
            continue
        name = f"{__name__}.{info.name}"
        for fmt in importlib.import_module(name).FORMATS:
            readers[fmt] = name
    missing = set(ModelFormat) - set(readers)
    if missing:
        raise RuntimeError(f"no source module reads {sorted(f.value for f in missing)}")
    return readers
