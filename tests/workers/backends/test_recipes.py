"""The recipes the search reaches last, built for real: arm's output head kept in float by TFLite's
quantization debugger, and fpga's AdaQuant fast finetune (the search itself: test_convert.py and
tests/integration/test_verdicts.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from farm import samples_kinds
from farm.core.modelfile import ModelFormat
from farm.core.settings import FarmSettings
from tests.conftest import built_once
from workers.backends import all_backends
from workers.backends.arm import ARM_RECIPES
from workers.backends.fpga import FPGA_RECIPES
from workers.calibration import Calibration
from workers.convert import verify_variant
from workers.runtime import Recipe
from workers.sources import SourceModel, load_source


def _kind(tmp_path_factory: pytest.TempPathFactory, name: str) -> tuple[SourceModel, Calibration]:
    paths = built_once(tmp_path_factory, f"kind-{name}", samples_kinds.WRITERS[name])
    source = load_source(paths["model"], ModelFormat.KERAS, [], [], tmp_path_factory.mktemp(name))
    samples = next(iter(np.load(paths["calib"]).values()))
    feed = source.inputs[0].name
    return source, Calibration({feed: samples[:32]}, {feed: samples[-60:]}, False, "calibration")


def _recipe(recipes: tuple[Recipe, ...], words: str) -> Recipe:
    return next(recipe for recipe in recipes if words in recipe.name)


@pytest.mark.slow  # builds and verifies whole variants: `make test` only
def test_arm_keeps_the_output_head_in_float_and_lists_it(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    source, calibration = _kind(tmp_path_factory, "detector")
    arm = all_backends()["arm"]
    built = arm.convert(source, "int8", calibration, tmp_path, FarmSettings(), _recipe(ARM_RECIPES, "head"))
    nodes = built.details["fp32_nodes"]
    # The output itself and the scores' sigmoid stay float: one INT8 scale no longer spans the tensor.
    assert "Identity" in nodes and any(node.endswith("scores_1/Sigmoid") for node in nodes), nodes
    assert built.notes[0].startswith(f"int8 with {len(nodes)} nodes kept in FP32 (mixed precision): Identity")
    result = verify_variant(source, calibration, arm.load(built, source.output_names), "int8")
    assert result.outputs[0].collapsed_channels == [] and result.outputs[0].disordered_channels == []


@pytest.mark.slow  # builds and verifies whole variants: `make test` only
def test_fpga_fast_finetune_builds_a_verified_variant(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    source, calibration = _kind(tmp_path_factory, "binary")
    fpga = all_backends()["fpga"]
    recipe = _recipe(FPGA_RECIPES, "AdaQuant")
    built = fpga.convert(source, "int8", calibration, tmp_path, FarmSettings(), recipe)
    assert (
        built.details["quantizer"]
        == "amd-quark XINT8, minmse power-of-two calibration, AdaQuant fast finetune"
    )
    result = verify_variant(source, calibration, fpga.load(built, source.output_names), "int8")
    assert result.passed, result.summary()
