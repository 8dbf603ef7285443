"""The client reads a model's inputs without TensorFlow, as the worker will name them."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.core.errors import UsageError
from farm.core.modelfile import ModelFormat, TensorSpec, detect_format, parse_tensor_arg
from farm.core.signature import model_inputs
from farm.core.tfproto import graph_def_class

IMAGE = TensorSpec("image:0", (None, 16, 16, 3), "float32")


@pytest.mark.parametrize("model", ["frozen_graph", "saved_model", "keras", "onnx"])
def test_every_readable_format_gives_the_inputs_the_worker_feeds(
    sample_models: dict[str, Path], model: str
) -> None:
    from workers.sources import load_source

    path = sample_models[model]
    fmt = detect_format(path)
    assert model_inputs(path, fmt, []) == [IMAGE]
    loaded = load_source(path, fmt, [], [], path.parent)  # what a worker makes of the same file
    assert loaded.inputs == [IMAGE]


def test_a_shape_from_inputs_replaces_the_models_unknown_dimensions(sample_models: dict[str, Path]) -> None:
    named = [parse_tensor_arg("image:0:1,16,16,3")]
    specs = model_inputs(sample_models["keras"], ModelFormat.KERAS, named)
    assert specs == [TensorSpec("image:0", (1, 16, 16, 3), "float32")]


def test_formats_unreadable_without_tensorflow_are_left_to_the_worker(sample_models: dict[str, Path]) -> None:
    assert model_inputs(sample_models["h5"], ModelFormat.KERAS, []) is None
    graph = graph_def_class()()
    graph.ParseFromString(sample_models["frozen_graph"].read_bytes())
    inner = next(node.name for node in graph.node if node.op not in ("Placeholder", "Const"))
    # Any node may be fed in a frozen graph; its dtype and shape are TensorFlow's to infer.
    assert (
        model_inputs(sample_models["frozen_graph"], ModelFormat.FROZEN_GRAPH, [parse_tensor_arg(inner)])
        is None
    )


def test_onnx_initializers_listed_as_graph_inputs_are_not_inputs(tmp_path: Path) -> None:
    import onnx
    from onnx import helper

    from farm.samples import write_mlp_onnx

    model = onnx.load(str(write_mlp_onnx(tmp_path / "mlp.onnx")))
    weights = model.graph.initializer[0]  # older exporters list weights among the inputs
    model.graph.input.append(helper.make_tensor_value_info(weights.name, weights.data_type, weights.dims))
    onnx.save(model, str(tmp_path / "old.onnx"))
    assert model_inputs(tmp_path / "old.onnx", ModelFormat.ONNX, []) == [
        TensorSpec("features", (None, 20), "float32")
    ]


def test_onnx_input_names_are_matched_exactly(sample_models: dict[str, Path]) -> None:
    # The ONNX export keeps TensorFlow's "image:0"; "image" alone names nothing there.
    with pytest.raises(UsageError, match=r"--inputs image: the model has no such input \(it has: image:0\)"):
        model_inputs(sample_models["onnx"], ModelFormat.ONNX, [parse_tensor_arg("image")])
