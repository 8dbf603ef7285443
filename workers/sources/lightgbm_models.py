"""LightGBM models as sources, from LightGBM's own text file (``Booster.save_model``) or a pickled
scikit-learn wrapper; converted by onnxmltools. The objective decides classifier or regressor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from farm.core.errors import ModelError, first_line
from farm.core.modelfile import ModelFormat
from workers.sources.base import SourceModel, SourceRequest
from workers.sources.tabular import (
    TabularModel,
    is_classifier_objective,
    onnxmltools_export,
    predicted_classes,
    regression_output,
    tabular_source,
)

FORMATS = (ModelFormat.LIGHTGBM,)
CLASSIFIER_OBJECTIVES = ("binary", "multiclass")
REGRESSOR_OBJECTIVES = ("regression", "regression_l1", "huber", "fair", "quantile")


def load(path: Path, fmt: ModelFormat, request: SourceRequest) -> SourceModel:
    import lightgbm as lgb

    try:
        booster = lgb.Booster(model_file=str(path))
    except Exception as exc:
        raise ModelError(f"{path.name}: LightGBM could not load it ({first_line(exc)})") from exc
    return tabular_source(booster_model(booster), request)


def booster_model(booster: Any) -> TabularModel:
    import lightgbm as lgb

    dumped = booster.dump_model(num_iteration=0)  # the header only: no trees
    objective = str(dumped.get("objective", "")).split(" ")[0]
    classifier = is_classifier_objective("LightGBM", objective, CLASSIFIER_OBJECTIVES, REGRESSOR_OBJECTIVES)
    features = booster.num_feature()

    def predict(values: np.ndarray) -> list[np.ndarray]:
        raw = booster.predict(values)  # binary: the positive class's probability, one column
        return predicted_classes(raw) if classifier else regression_output(raw)

    def to_onnx() -> Any:
        return onnxmltools_export("convert_lightgbm", booster, features, zipmap=False)

    runtime = f"lightgbm {lgb.__version__} (Booster.predict)"
    return TabularModel("lightgbm", runtime, features, classifier, predict, to_onnx)
