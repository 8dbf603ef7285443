"""The conversion's plumbing without Celery: a worker keeps the last model it loaded; the cache
key holds everything that shapes a variant and its verdict."""

from __future__ import annotations

import gc
import time
from pathlib import Path

import numpy as np
import pytest

from farm.core.errors import ConversionError
from farm.core.jobspec import ConvertOptions
from farm.core.modelfile import ModelFormat
from workers.convert import Attempt, ConversionRequest, cache_key, loaded_source, search_recipes
from workers.runtime import DEFAULT_RECIPE, BuiltVariant, Recipe, Runner
from workers.verify import DEFAULT_THRESHOLDS, Verification, verify


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
        {"max_channel_error": 0.5},
        {"output_kinds": {"y": "values"}},
        {"search": False},
    ):
        assert cache_key(_request(**changed), "cpu", "int8", "onnxruntime 1.31") != base, changed
    assert cache_key(_request(strict=True), "cpu", "int8", "onnxruntime 1.31") == base  # job-level only
    # A new verification policy never serves a verdict the old one gave.
    monkeypatch.setattr("workers.convert.POLICY_VERSION", "next")
    assert cache_key(_request(), "cpu", "int8", "onnxruntime 1.31") != base


# --- the recipe search ---------------------------------------------------------------------------
ORIGINAL = np.random.default_rng(4).normal(0, 1, (60, 4))
RECIPES = (DEFAULT_RECIPE, Recipe("finer"), Recipe("finest"))
NOISE = {"default": 0.5, "finer": 0.1, "finest": 0.01}  # each recipe's noise, a share of the spread


def _search(recipes: tuple[Recipe, ...], tmp_path: Path, budget_s: float = 60, fail: str = "") -> Attempt:
    """Search over recipes whose variants are the original plus their noise; ``fail`` names one
    whose conversion fails."""

    def build(recipe: Recipe, folder: Path) -> BuiltVariant:
        if recipe.name == fail:
            raise ConversionError(f"{recipe.name} cannot be built")
        return BuiltVariant(
            folder / f"{recipe.name}.onnx", "onnx", "int8", "test", details={"noise": NOISE[recipe.name]}
        )

    def load(built: BuiltVariant) -> Runner:
        noisy = ORIGINAL + np.random.default_rng(5).normal(0, built.details["noise"], ORIGINAL.shape)
        return lambda feeds: [noisy]

    def judge(runner: Runner) -> Verification:
        return verify("int8", ["y"], [ORIGINAL], runner({}), DEFAULT_THRESHOLDS["int8"])

    return search_recipes(recipes, build, load, judge, tmp_path, budget_s)


def test_the_search_keeps_the_first_recipe_that_passes_and_says_what_it_tried(tmp_path: Path) -> None:
    found = _search(RECIPES, tmp_path)
    assert found.recipe.name == "finer" and found.verification.passed
    assert found.built.details["recipe"] == "finer"
    [note] = found.search_notes
    assert note.startswith("recipe finer (passed); also tried: default (failed: channels 1, 2, 3 (axis 1)")
    assert "finest" not in note  # never built: the search stops at the first that passes


def test_without_a_passing_recipe_the_least_failing_is_kept_and_said(tmp_path: Path) -> None:
    found = _search(RECIPES[:1], tmp_path)
    assert found.recipe.name == "default" and not found.verification.passed and found.search_notes == []
    skipped = _search(RECIPES, tmp_path, fail="finer")
    assert skipped.recipe.name == "finest"
    assert "finer (could not be built or run: finer cannot be built)" in skipped.search_notes[0]
    with pytest.raises(ConversionError, match="default cannot be built"):
        _search(RECIPES[:1], tmp_path, fail="default")


def test_no_recipe_starts_after_the_search_budget(tmp_path: Path) -> None:
    started = time.monotonic()
    found = _search(RECIPES, tmp_path, budget_s=0)
    assert found.recipe.name == "default" and time.monotonic() - started < 30
    assert found.search_notes == []  # only the default was built
