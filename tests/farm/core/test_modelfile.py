from __future__ import annotations

from pathlib import Path

import pytest

from farm.core.errors import CorruptModelError, ModelNotFoundError, UnsupportedModelError, UsageError
from farm.core.modelfile import ModelFormat, TensorArg, detect_format, parse_tensor_arg


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
