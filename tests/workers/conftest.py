"""The sample Keras classifier as a source, and synthetic calibration for it, shared by the
backend and quantizer tests (once per test module)."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.core.modelfile import ModelFormat
from workers.calibration import Calibration, synthetic_calibration
from workers.sources import SourceModel, load_source


@pytest.fixture(scope="module")
def source(sample_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> SourceModel:
    return load_source(sample_models["keras"], ModelFormat.KERAS, [], [], tmp_path_factory.mktemp("source"))


@pytest.fixture(scope="module")
def calibration(source: SourceModel) -> Calibration:
    return synthetic_calibration(source.inputs, samples=16, held_out=16)
