"""LightGBM models as sources, from LightGBM's own text file (``Booster.save_model``) or a pickled
scikit-learn wrapper; converted by onnxmltools. The objective decides classifier or regressor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from farm.core.errors import ConversionError, ModelError, UnsupportedModelError, first_line
from farm.core.modelfile import ModelFormat
from workers.sources.base import SourceModel, SourceRequest
from workers.sources.tabular import FEATURES, TabularModel, class_outputs, regression_output, tabular_source
from workers.sources.xgboost_models import MLTOOLS_OPSET

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
    if objective not in CLASSIFIER_OBJECTIVES + REGRESSOR_OBJECTIVES:
        known = ", ".join(CLASSIFIER_OBJECTIVES + REGRESSOR_OBJECTIVES)
        raise UnsupportedModelError(f"LightGBM objective {objective} is not one farm converts ({known})")
    classifier = objective in CLASSIFIER_OBJECTIVES
    features = booster.num_feature()

    def predict(values: np.ndarray) -> list[np.ndarray]:
        raw = booster.predict(values)
        if not classifier:
            return regression_output(raw)
        probabilities = np.stack([1 - raw, raw], axis=1) if objective == "binary" else raw
        return class_outputs(probabilities.argmax(axis=1), probabilities)

    def to_onnx() -> Any:
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType

        try:
            return onnxmltools.convert_lightgbm(
                booster,
                initial_types=[(FEATURES, FloatTensorType([None, features]))],
                target_opset=MLTOOLS_OPSET,
                zipmap=False,
            )
        except Exception as exc:
            raise ConversionError(f"onnxmltools cannot convert it: {first_line(exc)}") from exc

    runtime = f"lightgbm {lgb.__version__} (Booster.predict)"
    return TabularModel("lightgbm", runtime, features, classifier, predict, to_onnx)
