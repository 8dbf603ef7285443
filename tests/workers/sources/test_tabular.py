"""Tabular sources in process: what the library predicts is the native baseline, the ONNX export
gives the same as plain tensors, and what cannot be converted says why."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from farm import samples_frameworks
from farm.core.errors import ModelError, UnsupportedModelError, UsageError
from farm.core.modelfile import ModelFormat, detect_format
from tests.conftest import built_once
from workers.sources import load_source
from workers.sources.base import rename_outputs


@pytest.fixture(scope="session")
def tabular(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return built_once(tmp_path_factory, "frameworks-tabular", samples_frameworks.write_tabular)


@pytest.mark.parametrize("name", ["forest", "pipeline", "xgboost", "lightgbm"])
def test_the_onnx_export_gives_what_the_library_predicts(
    tabular: dict[str, Path], tmp_path: Path, name: str
) -> None:
    import onnxruntime as ort

    path = tabular[name]
    source = load_source(path, detect_format(path), [], [], tmp_path, allow_pickle=True)
    assert [(spec.name, spec.shape) for spec in source.inputs] == [("features", (None, 8))]
    features, _ = samples_frameworks.tabular_task(200, seed=77)
    native = source.run({"features": features})
    session = ort.InferenceSession(str(source.onnx()), providers=["CPUExecutionProvider"])
    exported = session.run(source.output_names, {"features": features})
    assert [output.name for output in session.get_outputs()] == source.output_names
    if name == "lightgbm":  # a regressor
        assert source.output_names == ["prediction"] and native[0].shape == (200, 1)
        np.testing.assert_allclose(exported[0], native[0], rtol=1e-4, atol=1e-4)
        return
    assert source.output_names == ["label", "probabilities"]
    assert native[0].dtype == np.int64 and native[1].shape == (200, samples_frameworks.CLASSES)
    np.testing.assert_array_equal(exported[0], native[0])
    np.testing.assert_allclose(exported[1], native[1], atol=1e-5)


def test_a_pickle_is_not_unpickled_on_the_worker_without_its_flag(
    tabular: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="--allow-pickle"):
        load_source(tabular["pipeline"], ModelFormat.PICKLE, [], [], tmp_path)


def test_an_objective_farm_does_not_convert_is_named(tmp_path: Path) -> None:
    import xgboost as xgb

    features, labels = samples_frameworks.tabular_task(200)
    path = tmp_path / "poisson.json"
    xgb.XGBRegressor(n_estimators=3, objective="count:poisson").fit(features, labels).save_model(path)
    with pytest.raises(UnsupportedModelError, match="objective count:poisson is not one farm converts"):
        load_source(path, ModelFormat.XGBOOST, [], [], tmp_path)


def test_string_classes_are_refused_with_how_to_encode_them(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.tree import DecisionTreeClassifier

    features, labels = samples_frameworks.tabular_task(100)
    path = tmp_path / "named.skops"
    sio.dump(DecisionTreeClassifier().fit(features, np.array(["a", "b", "c"])[labels]), path)
    with pytest.raises(ModelError, match="LabelEncoder"):
        load_source(path, ModelFormat.SKOPS, [], [], tmp_path)


def test_renaming_an_output_renames_its_uses_inside_the_graph() -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["variable"]), helper.make_node("Neg", ["variable"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [
            helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 2]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2]),
        ],
    )
    model = helper.make_model(graph)
    rename_outputs(model, {"variable": "prediction", "unused": "other"})
    assert [output.name for output in model.graph.output] == ["prediction", "y"]
    assert list(model.graph.node[1].input) == ["prediction"]


def test_a_pipeline_fitted_on_a_dataframe_picks_its_columns_by_name(tmp_path: Path) -> None:
    import onnxruntime as ort
    import pandas as pd
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    features, labels = samples_frameworks.tabular_task(300)
    frame = pd.DataFrame(features[:, :3], columns=["age", "income", "visits"]).assign(
        visits=lambda f: f.visits > 0
    )
    columns = ColumnTransformer(
        [("numbers", StandardScaler(), ["age", "income"]), ("flags", OneHotEncoder(), ["visits"])]
    )
    path = tmp_path / "frame.skops"
    sio.dump(make_pipeline(columns, LogisticRegression()).fit(frame.astype(float), labels), path)

    source = load_source(path, ModelFormat.SKOPS, [], [], tmp_path)
    rows = frame.astype(np.float32).to_numpy()
    native = source.run({"features": rows})
    session = ort.InferenceSession(str(source.onnx()), providers=["CPUExecutionProvider"])
    exported = session.run(source.output_names, {"features": rows})
    np.testing.assert_array_equal(exported[0], native[0])
    np.testing.assert_allclose(exported[1], native[1], atol=1e-5)
