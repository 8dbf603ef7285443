"""scikit-learn estimators and pipelines as sources, through skl2onnx: from ``.skops`` files
(loaded trusting only scikit-learn, XGBoost, LightGBM, NumPy and SciPy types) and, when the job's
owner allowed it with --allow-pickle, from pickle and joblib files, which may also hold XGBoost and
LightGBM scikit-learn wrappers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from farm.core.errors import ConversionError, ModelError, UnsupportedModelError, UsageError, first_line
from farm.core.modelfile import TRUSTED_MODULES, ModelFormat, refuse_unpickling
from farm.core.skopsfile import is_trusted
from workers.sources.base import ONNX_OPSET, SourceModel, SourceRequest
from workers.sources.tabular import (
    FEATURES,
    TabularModel,
    class_outputs,
    numeric_classes,
    regression_output,
    tabular_source,
)

FORMATS = (ModelFormat.SKOPS, ModelFormat.PICKLE)


def load(path: Path, fmt: ModelFormat, request: SourceRequest) -> SourceModel:
    if fmt is ModelFormat.SKOPS:
        estimator = _load_skops(path)
    else:
        refuse_unpickling(fmt, path, request.allow_pickle)  # the client refused it too
        estimator = _load_pickle(path)
    return tabular_source(tabular_model(estimator), request)


def tabular_model(estimator: Any) -> TabularModel:
    """Any estimator the farm reads: XGBoost's and LightGBM's wrappers go to their own modules."""
    module = type(estimator).__module__.split(".", 1)[0]
    if module == "xgboost":
        from workers.sources.xgboost_models import booster_model

        return booster_model(estimator.get_booster())
    if module == "lightgbm":
        from workers.sources.lightgbm_models import booster_model as lightgbm_model

        return lightgbm_model(estimator.booster_)
    return _sklearn_model(estimator)


def _load_skops(path: Path) -> Any:
    import skops.io as sio

    try:
        found = sio.get_untrusted_types(file=str(path))
        refused = [name for name in found if not is_trusted(name, TRUSTED_MODULES)]
        if refused:
            raise UnsupportedModelError(f"{path.name}: holds types farm does not trust: {', '.join(refused)}")
        return sio.load(str(path), trusted=found)
    except UnsupportedModelError:
        raise
    except Exception as exc:
        raise ModelError(f"{path.name}: skops could not load it ({first_line(exc)})") from exc


def _load_pickle(path: Path) -> Any:
    import joblib

    try:
        return joblib.load(path)
    except Exception as exc:
        raise ModelError(f"{path.name}: could not unpickle it ({first_line(exc)})") from exc


def _sklearn_model(estimator: Any) -> TabularModel:
    import sklearn
    from sklearn.base import is_classifier, is_regressor

    if not (is_classifier(estimator) or is_regressor(estimator)):
        raise UsageError(
            f"a {type(estimator).__name__} is neither a classifier nor a regressor: "
            "farm converts scikit-learn models that predict"
        )
    features = getattr(estimator, "n_features_in_", None)
    if features is None:
        raise ModelError(f"the {type(estimator).__name__} is not fitted (no n_features_in_)")
    classifier = is_classifier(estimator)
    if classifier:
        numeric_classes(estimator.classes_, "scikit-learn")

    def predict(features_: np.ndarray) -> list[np.ndarray]:
        if classifier:
            return class_outputs(estimator.predict(features_), estimator.predict_proba(features_))
        return regression_output(estimator.predict(features_))

    def to_onnx() -> Any:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        try:
            return convert_sklearn(
                estimator,
                initial_types=[(FEATURES, FloatTensorType([None, int(features)]))],
                options={"zipmap": False} if classifier else None,
                target_opset=ONNX_OPSET,
            )
        except Exception as exc:
            raise ConversionError(f"skl2onnx cannot convert it: {first_line(exc)}") from exc

    reads = "predict, predict_proba" if classifier else "predict"
    return TabularModel(
        "scikit-learn",
        f"scikit-learn {sklearn.__version__} ({reads})",
        int(features),
        classifier,
        predict,
        to_onnx,
    )
