"""XGBoost models as sources, from XGBoost's own files (``.json``, ``.ubj``) or a pickled
scikit-learn wrapper; converted by onnxmltools. The objective decides classifier or regressor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from farm.core.errors import ConversionError, ModelError, UnsupportedModelError, first_line
from farm.core.modelfile import ModelFormat
from workers.sources.base import SourceModel, SourceRequest
from workers.sources.tabular import FEATURES, TabularModel, class_outputs, regression_output, tabular_source

FORMATS = (ModelFormat.XGBOOST,)
# onnxmltools writes ai.onnx.ml tree ensembles under this default-domain opset at most.
MLTOOLS_OPSET = 15
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
    if objective not in CLASSIFIER_OBJECTIVES + REGRESSOR_OBJECTIVES:
        known = ", ".join(CLASSIFIER_OBJECTIVES + REGRESSOR_OBJECTIVES)
        raise UnsupportedModelError(f"XGBoost objective {objective} is not one farm converts ({known})")
    classifier = objective in CLASSIFIER_OBJECTIVES

    def predict(features: np.ndarray) -> list[np.ndarray]:
        if not classifier:
            return regression_output(booster.inplace_predict(features))
        if objective == "binary:logistic":
            positive = booster.inplace_predict(features)
            probabilities = np.stack([1 - positive, positive], axis=1)
        else:
            margins = booster.inplace_predict(features, predict_type="margin").reshape(len(features), classes)
            probabilities = _softmax(margins)
        return class_outputs(probabilities.argmax(axis=1), probabilities)

    def to_onnx() -> Any:
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType

        try:
            return onnxmltools.convert_xgboost(
                booster,
                initial_types=[(FEATURES, FloatTensorType([None, booster.num_features()]))],
                target_opset=MLTOOLS_OPSET,
            )
        except Exception as exc:
            raise ConversionError(f"onnxmltools cannot convert it: {first_line(exc)}") from exc

    runtime = f"xgboost {xgb.__version__} (Booster.inplace_predict)"
    return TabularModel("xgboost", runtime, booster.num_features(), classifier, predict, to_onnx)


def _softmax(margins: np.ndarray) -> np.ndarray:
    shifted = np.exp(margins - margins.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
