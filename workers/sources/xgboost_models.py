"""XGBoost models as sources, from XGBoost's own files (``.json``, ``.ubj``) or a pickled
scikit-learn wrapper; converted by onnxmltools. The objective decides classifier or regressor."""

from __future__ import annotations

import json
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

FORMATS = (ModelFormat.XGBOOST,)
CLASSIFIER_OBJECTIVES = ("binary:logistic", "multi:softprob", "multi:softmax")
REGRESSOR_OBJECTIVES = ("reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror", "reg:logistic")


def load(path: Path, fmt: ModelFormat, request: SourceRequest) -> SourceModel:
    import xgboost as xgb

    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(path.read_bytes()))  # the format is read from the content
    except Exception as exc:
        raise ModelError(f"{path.name}: XGBoost could not load it ({first_line(exc)})") from exc
    return tabular_source(booster_model(booster), request)


def booster_model(booster: Any) -> TabularModel:
    import xgboost as xgb

    learner = json.loads(booster.save_config())["learner"]
    objective = learner["objective"]["name"]
    classes = int(learner["learner_model_param"].get("num_class", "0")) or 2
    classifier = is_classifier_objective("XGBoost", objective, CLASSIFIER_OBJECTIVES, REGRESSOR_OBJECTIVES)

    def predict(features: np.ndarray) -> list[np.ndarray]:
        if not classifier:
            return regression_output(booster.inplace_predict(features))
        if objective == "binary:logistic":
            return predicted_classes(booster.inplace_predict(features))
        margins = booster.inplace_predict(features, predict_type="margin").reshape(len(features), classes)
        return predicted_classes(_softmax(margins))

    def to_onnx() -> Any:
        return onnxmltools_export("convert_xgboost", booster, booster.num_features())

    runtime = f"xgboost {xgb.__version__} (Booster.inplace_predict)"
    return TabularModel("xgboost", runtime, booster.num_features(), classifier, predict, to_onnx)


def _softmax(margins: np.ndarray) -> np.ndarray:
    shifted = np.exp(margins - margins.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
