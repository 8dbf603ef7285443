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
    # Fitted on a DataFrame, a pipeline may pick its columns by name (a ColumnTransformer): it is
    # given them named, and its ONNX export splits the one input into those columns.
    names = [str(name) for name in getattr(estimator, "feature_names_in_", [])]

    def predict(rows: np.ndarray) -> list[np.ndarray]:
        table = _frame(rows, names) if names else rows
        if classifier:
            return class_outputs(estimator.predict(table), estimator.predict_proba(table))
        return regression_output(estimator.predict(table))

    def to_onnx() -> Any:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        if names:
            initial = [(name, FloatTensorType([None, 1])) for name in names]
        else:
            initial = [(FEATURES, FloatTensorType([None, int(features)]))]
        try:
            proto = convert_sklearn(
                estimator,
                initial_types=initial,
                options={"zipmap": False} if classifier else None,
                target_opset=ONNX_OPSET,
            )
            return split_into_columns(proto, names) if names else proto
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


def _frame(rows: np.ndarray, names: list[str]) -> Any:
    import pandas as pd

    return pd.DataFrame(rows, columns=names)


def split_into_columns(proto: Any, names: list[str]) -> Any:
    """The model with one input, ``features`` (N, len(names)), whose columns feed the one-column
    inputs named ``names`` that skl2onnx gave it. Gather, whose meaning no opset changed, where
    Split's did (opset 13)."""
    from onnx import TensorProto, helper, numpy_helper

    del proto.graph.input[:]
    proto.graph.input.append(helper.make_tensor_value_info(FEATURES, TensorProto.FLOAT, [None, len(names)]))
    for index, name in reversed(list(enumerate(names))):
        column = numpy_helper.from_array(np.array([index], dtype=np.int64), f"{FEATURES}_column_{index}")
        proto.graph.initializer.append(column)
        proto.graph.node.insert(0, helper.make_node("Gather", [FEATURES, column.name], [name], axis=1))
    return proto
