"""Loading each format as the reference model, and converting it, without Celery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from farm.core.errors import ModelError
from farm.core.modelfile import ModelFormat, TensorArg
from farm.core.settings import FarmSettings
from workers.backends import all_backends
from workers.calibration import random_feeds, synthetic_calibration
from workers.convert import verify_variant
from workers.sources import load_source


def test_frozen_graph_inputs_and_outputs_are_detected(sample_models: dict[str, Path], tmp_path: Path) -> None:
    source = load_source(sample_models["frozen_graph"], ModelFormat.FROZEN_GRAPH, [], [], tmp_path)
    assert [(s.name, s.shape, s.dtype) for s in source.inputs] == [("image:0", (None, 16, 16, 3), "float32")]
    assert source.output_names == ["Identity:0"]


def test_named_tensors_with_and_without_index_suffix(sample_models: dict[str, Path], tmp_path: Path) -> None:
    source = load_source(
        sample_models["frozen_graph"],
        ModelFormat.FROZEN_GRAPH,
        [TensorArg("image", (2, 16, 16, 3))],
        ["Identity"],
        tmp_path,
    )
    assert source.inputs[0].name == "image:0" and source.inputs[0].shape == (2, 16, 16, 3)
    assert source.output_names == ["Identity:0"]
    with pytest.raises(ModelError, match="'nope:0' is not a node"):
        load_source(sample_models["frozen_graph"], ModelFormat.FROZEN_GRAPH, [], ["nope:0"], tmp_path)
    with pytest.raises(ModelError, match="no output named missing:0"):
        load_source(sample_models["keras"], ModelFormat.KERAS, [], ["missing"], tmp_path)


def test_all_tensorflow_formats_agree(sample_models: dict[str, Path], tmp_path: Path) -> None:
    formats = {
        "frozen_graph": ModelFormat.FROZEN_GRAPH,
        "saved_model": ModelFormat.SAVED_MODEL,
        "keras": ModelFormat.KERAS,
        "h5": ModelFormat.KERAS,
    }
    outputs = []
    for name, fmt in formats.items():
        source = load_source(sample_models[name], fmt, [], [], tmp_path)
        outputs.append(source.run(random_feeds(source.inputs, 2))[0])
    for other in outputs[1:]:
        np.testing.assert_allclose(other, outputs[0], atol=1e-6)
    assert outputs[0].shape == (2, 5)


def test_an_onnx_model_is_taken_as_already_converted(sample_models: dict[str, Path], tmp_path: Path) -> None:
    keras_source = load_source(sample_models["keras"], ModelFormat.KERAS, [], [], tmp_path)
    exported = tmp_path / "given.onnx"
    keras_source.write_onnx(exported)
    onnx_source = load_source(exported, ModelFormat.ONNX, [], [], tmp_path)
    assert [s.name for s in onnx_source.inputs] == ["image:0"]

    backend = all_backends()["cpu"]
    calibration = synthetic_calibration(onnx_source.inputs, samples=4, held_out=4)
    built = backend.convert(onnx_source, "fp32", calibration, tmp_path, FarmSettings())
    # Judged against the Keras original: the ONNX given was exported from it.
    runner = backend.load(built, onnx_source.output_names)
    result = verify_variant(keras_source, calibration, runner, "fp32")
    assert result.passed, result.summary()
    assert onnx_source.framework == "onnx" and keras_source.framework == "tensorflow"
