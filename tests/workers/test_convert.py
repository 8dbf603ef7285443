"""The conversion's plumbing without Celery: a worker keeps the last model it loaded; the cache
key holds everything that shapes a variant and its verdict."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from farm.core.jobspec import ConvertOptions
from farm.core.modelfile import ModelFormat
from workers.convert import ConversionRequest, cache_key, loaded_source


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


def _request(**options: object) -> ConversionRequest:
    return ConversionRequest(
        "job", "cpu", "models/x/m.pb", "sha", ModelFormat.FROZEN_GRAPH, [], [], ConvertOptions(**options)
    )


def test_the_cache_key_covers_the_verdict_policy_and_everything_that_shapes_the_verdict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = cache_key(_request(), "cpu", "int8", "onnxruntime 1.31")
    assert cache_key(_request(), "cpu", "int8", "onnxruntime 1.31") == base
    for changed in (
        {"eval_sha256": "e"},
        {"calib_sha256": "c"},
        {"max_accuracy_drop": 2.0},
        {"min_top1": 0.5},
    ):
        assert cache_key(_request(**changed), "cpu", "int8", "onnxruntime 1.31") != base, changed
    assert cache_key(_request(strict=True), "cpu", "int8", "onnxruntime 1.31") == base  # job-level only
    # A new verification policy never serves a verdict the old one gave.
    monkeypatch.setattr("workers.convert.POLICY_VERSION", "next")
    assert cache_key(_request(), "cpu", "int8", "onnxruntime 1.31") != base
