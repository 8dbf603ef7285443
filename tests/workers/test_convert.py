"""The conversion's plumbing without Celery: a worker keeps the last model it loaded."""

from __future__ import annotations

import gc
from pathlib import Path

from farm.modelfile import ModelFormat
from workers.convert import loaded_source


def test_a_worker_keeps_its_last_source_and_export_until_another_model_comes(
    sample_models: dict[str, Path],
) -> None:
    keras = ("keras-sha", sample_models["keras"], ModelFormat.KERAS, (), ())
    first = loaded_source(*keras)
    exported = first.onnx()
    assert loaded_source(*keras) is first  # the next task for another hardware class
    assert first.onnx() == exported and exported.is_file()  # exported once, kept with the source
    scratch = first.scratch

    other = loaded_source("graph-sha", sample_models["frozen_graph"], ModelFormat.FROZEN_GRAPH, (), ())
    assert other is not first and other.scratch != scratch
    del first
    gc.collect()
    assert not scratch.exists(), "the evicted source's scratch folder is removed with it"
    loaded_source.cache_clear()
