from __future__ import annotations

from pathlib import Path

import pytest

from farm.core.errors import CorruptModelError, ModelNotFoundError, UnsupportedModelError, UsageError
from farm.core.modelfile import (
    ModelFormat,
    TensorArg,
    TensorSpec,
    detect_format,
    parse_tensor_arg,
    refuse_unpickling,
)


def test_every_sample_format_is_recognised(sample_models: dict[str, Path]) -> None:
    assert detect_format(sample_models["frozen_graph"]) is ModelFormat.FROZEN_GRAPH
    assert detect_format(sample_models["saved_model"]) is ModelFormat.SAVED_MODEL
    assert detect_format(sample_models["keras"]) is ModelFormat.KERAS
    assert detect_format(sample_models["h5"]) is ModelFormat.KERAS


def test_onnx_is_accepted_and_checked(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
    )
    good = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), good)
    assert detect_format(good) is ModelFormat.ONNX
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\x01garbage")
    with pytest.raises(CorruptModelError, match="not a valid ONNX model"):
        detect_format(bad)


def test_problems_are_named(tmp_path: Path, junk_files: dict[str, Path]) -> None:
    with pytest.raises(ModelNotFoundError):
        detect_format(tmp_path / "absent.pb")
    with pytest.raises(UnsupportedModelError):
        detect_format(junk_files["text_file"])
    with pytest.raises(CorruptModelError):
        detect_format(junk_files["corrupt_pb"])
    fake_keras = tmp_path / "m.keras"
    fake_keras.write_text("zip? no")
    with pytest.raises(CorruptModelError, match=r"\.keras archive"):
        detect_format(fake_keras)
    fake_h5 = tmp_path / "m.h5"
    fake_h5.write_text("no signature")
    with pytest.raises(CorruptModelError, match="HDF5"):
        detect_format(fake_h5)


def test_saved_model_pb_points_at_its_folder(sample_models: dict[str, Path]) -> None:
    with pytest.raises(UsageError, match="submit its folder"):
        detect_format(sample_models["saved_model"] / "saved_model.pb")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("image", TensorArg("image")),
        ("image:0", TensorArg("image:0")),
        ("image:0:?,224,224,3", TensorArg("image:0", (None, 224, 224, 3))),
        ("x:[1,8]", TensorArg("x", (1, 8))),
        ("x:5,", TensorArg("x", (5,))),
        ("scope/x:1:-1,3", TensorArg("scope/x:1", (None, 3))),
    ],
)
def test_tensor_arguments(text: str, expected: TensorArg) -> None:
    assert parse_tensor_arg(text) == expected
    assert TensorArg.from_json(expected.to_json()) == expected


@pytest.mark.parametrize("text", ["x:0:a,b", "x:[]", ":1,2", "a b", "x:0,2"])
def test_bad_tensor_arguments(text: str) -> None:
    with pytest.raises(UsageError):
        parse_tensor_arg(text)


@pytest.fixture(scope="session")
def framework_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from farm import samples_frameworks
    from tests.conftest import built_once

    tabular = built_once(tmp_path_factory, "frameworks-tabular", samples_frameworks.write_tabular)
    torch_models = built_once(tmp_path_factory, "frameworks-torch", samples_frameworks.write_torch)
    return {**tabular, **{f"torch_{name}": path for name, path in torch_models.items()}}


def test_every_framework_format_is_recognised(framework_files: dict[str, Path]) -> None:
    assert detect_format(framework_files["forest"]) is ModelFormat.SKOPS
    assert detect_format(framework_files["pipeline"]) is ModelFormat.PICKLE
    assert detect_format(framework_files["xgboost"]) is ModelFormat.XGBOOST
    assert detect_format(framework_files["lightgbm"]) is ModelFormat.LIGHTGBM
    assert detect_format(framework_files["torch_pt2"]) is ModelFormat.TORCH_EXPORT
    assert detect_format(framework_files["torch_torchscript"]) is ModelFormat.TORCHSCRIPT


def test_a_pickled_pytorch_file_is_refused_with_how_to_export_it(framework_files: dict[str, Path]) -> None:
    with pytest.raises(UnsupportedModelError, match=r"torch\.export\.save\(torch\.export\.export"):
        detect_format(framework_files["torch_pickled"])


def test_pickle_is_loaded_only_when_allowed(framework_files: dict[str, Path]) -> None:
    path = framework_files["pipeline"]
    with pytest.raises(UsageError, match=r"runs code from the file .* --allow-pickle"):
        refuse_unpickling(ModelFormat.PICKLE, path, allowed=False)
    refuse_unpickling(ModelFormat.PICKLE, path, allowed=True)
    refuse_unpickling(ModelFormat.SKOPS, path, allowed=False)  # skops loads trusted types only


def test_a_skops_file_holding_an_untrusted_type_is_refused_by_name(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "custom.skops"
    sio.dump(FunctionTransformer(func=_custom_function), path)
    with pytest.raises(UnsupportedModelError, match=r"does not trust \(.*_custom_function"):
        detect_format(path)


def _custom_function(values: object) -> object:
    return values


def test_json_and_text_that_are_not_models_are_not_model_formats(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"name": "not a model"}')
    (tmp_path / "notes.txt").write_text("hello\n")
    for name in ("config.json", "notes.txt"):
        with pytest.raises(UnsupportedModelError, match="not a model format farm reads"):
            detect_format(tmp_path / name)


def test_sample_layout_moves_the_batch_first_and_back() -> None:
    state = TensorSpec("state", (2, None, 8), "float32", batch_axis=1)
    assert state.sample_shape == (None, 2, 8)
    assert state.with_sample_shape((None, 2, 8)).shape == (2, None, 8)
    assert TensorSpec("sr", (), "int64", batch_axis=None).sample_shape == (None,)
    image = TensorSpec("image", (None, 3, 8, 8), "float32")
    assert image.sample_shape == image.shape
