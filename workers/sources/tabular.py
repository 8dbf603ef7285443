"""What scikit-learn, XGBoost and LightGBM models share as sources: one float input of feature
columns, and plain tensor outputs, the same from the library and from every variant:

- a classifier: ``label`` (the predicted class, int64) and ``probabilities`` (one column per class,
  float32; no ZipMap), as ``predict`` and ``predict_proba`` give them;
- a regressor: ``prediction`` (one float32 column), as ``predict`` gives it.

The native baseline is the library's own predict on the worker, so batch scoring may serve it
where it beats ONNX Runtime (tree ensembles often do).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from farm.core.errors import ConversionError, ModelError, UnsupportedModelError, first_line
from farm.core.modelfile import TensorSpec
from workers.sources.base import SourceModel, SourceRequest, rename_outputs, select_outputs

FEATURES = "features"
CLASSIFIER_OUTPUTS = ["label", "probabilities"]
REGRESSOR_OUTPUTS = ["prediction"]
# What the converters call their outputs, and the names farm gives them.
CONVERTER_OUTPUT_NAMES = {
    "variable": "prediction",
    "output_label": "label",
    "output_probability": "probabilities",
}


@dataclass(frozen=True)
class TabularModel:
    framework: str  # "scikit-learn"
    runtime: str  # "scikit-learn 1.9.1 (predict, predict_proba)"
    features: int  # columns of the one input
    classifier: bool
    predict: Callable[[np.ndarray], list[np.ndarray]]  # the outputs, as CLASSIFIER/REGRESSOR_OUTPUTS
    to_onnx: Callable[[], Any]  # an onnx ModelProto with the converter's output names


def tabular_source(model: TabularModel, request: SourceRequest) -> SourceModel:
    shape = _input_shape(model, request)
    outputs = CLASSIFIER_OUTPUTS if model.classifier else REGRESSOR_OUTPUTS
    selected = select_outputs(outputs, request.outputs)

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        results = dict(zip(outputs, model.predict(np.asarray(feeds[FEATURES], np.float32)), strict=True))
        return [results[name] for name in selected]

    def write_onnx(target: Path) -> None:
        import onnx

        proto = model.to_onnx()
        rename_outputs(proto, CONVERTER_OUTPUT_NAMES)
        _one_opset_per_domain(proto)
        kept = [output for output in proto.graph.output if output.name in selected]
        for output in kept:  # a row per sample (LightGBM's converter declares one label in all)
            dims = output.type.tensor_type.shape.dim
            if dims:
                dims[0].dim_param = "N"
        del proto.graph.output[:]
        proto.graph.output.extend(kept)
        onnx.save(proto, str(target))

    spec = TensorSpec(FEATURES, shape, "float32")
    source = SourceModel([spec], selected, run, write_onnx, model.runtime, framework=model.framework)
    source.tabular = True
    return source


def _one_opset_per_domain(proto: Any) -> None:
    """skl2onnx may import the default domain twice; ONNX Runtime's quantizer refuses that."""
    versions: dict[str, int] = {}
    for opset in proto.opset_import:
        versions[opset.domain] = max(versions.get(opset.domain, 0), opset.version)
    del proto.opset_import[:]
    for domain, version in versions.items():
        proto.opset_import.add(domain=domain, version=version)


def _input_shape(model: TabularModel, request: SourceRequest) -> tuple[int | None, ...]:
    for arg in request.inputs:
        if arg.name != FEATURES:
            raise ModelError(f"no input named {arg.name} (a tabular model has one: {FEATURES})")
        if arg.shape is not None and (len(arg.shape) != 2 or arg.shape[1] not in (None, model.features)):
            raise ModelError(f"--inputs {arg.name}: the model takes {model.features} feature columns")
    return (None, model.features)


def class_outputs(labels: np.ndarray, probabilities: np.ndarray) -> list[np.ndarray]:
    """``label`` and ``probabilities`` as every variant gives them."""
    return [np.asarray(labels).astype(np.int64), np.asarray(probabilities, np.float32)]


def regression_output(values: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(values, np.float32).reshape(-1, 1)]


def numeric_classes(classes: np.ndarray, framework: str) -> None:
    """ONNX variants give the class itself as ``label``: farm compares and scores numbers."""
    if np.asarray(classes).dtype.kind not in "iub":
        shown = ", ".join(map(str, list(classes)[:3]))
        raise ModelError(
            f"the {framework} classifier's classes are not integers ({shown}, ...): encode them "
            "as 0, 1, 2, ... (sklearn.preprocessing.LabelEncoder) and fit it again"
        )


def is_classifier_objective(
    library: str, objective: str, classifiers: tuple[str, ...], regressors: tuple[str, ...]
) -> bool:
    """Whether a booster's objective makes it a classifier; one farm does not convert is refused."""
    if objective not in classifiers + regressors:
        known = ", ".join(classifiers + regressors)
        raise UnsupportedModelError(f"{library} objective {objective} is not one farm converts ({known})")
    return objective in classifiers


def predicted_classes(probabilities: np.ndarray) -> list[np.ndarray]:
    """``label`` and ``probabilities`` from a booster's class probabilities; a binary booster's
    one column (the positive class's) becomes two."""
    if probabilities.ndim == 1:
        probabilities = np.stack([1 - probabilities, probabilities], axis=1)
    return class_outputs(probabilities.argmax(axis=1), probabilities)


# onnxmltools writes ai.onnx.ml tree ensembles under this default-domain opset at most.
MLTOOLS_OPSET = 15


def onnxmltools_export(converter: str, booster: Any, features: int, **options: Any) -> Any:
    """A booster as ONNX by onnxmltools' ``converter`` (convert_xgboost, convert_lightgbm)."""
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    try:
        return getattr(onnxmltools, converter)(
            booster,
            initial_types=[(FEATURES, FloatTensorType([None, features]))],
            target_opset=MLTOOLS_OPSET,
            **options,
        )
    except Exception as exc:
        raise ConversionError(f"onnxmltools cannot convert it: {first_line(exc)}") from exc
