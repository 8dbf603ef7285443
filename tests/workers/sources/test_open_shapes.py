"""Dimensions a model leaves open, taken from the samples: ONNX Runtime keeps the model dynamic,
TFLite is fixed to the samples' shape and says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from farm.core.calibfile import SampleFile
from farm.core.modelfile import ModelFormat
from farm.core.settings import FarmSettings
from workers.backends import all_backends
from workers.calibration import make_calibration
from workers.convert import verify_variant
from workers.sources import load_source


def test_a_keras_model_with_open_height_and_width_builds_on_tflite_at_the_samples_shape(
    tmp_path: Path,
) -> None:
    import keras

    inputs = keras.Input((None, None, 3), name="image")
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(pooled))
    path = tmp_path / "open.keras"
    model.save(path)
    samples = np.random.default_rng(2).random((40, 12, 12, 3), dtype=np.float32)

    source = load_source(path, ModelFormat.KERAS, [], [], tmp_path, sample_shapes={"": samples.shape})
    assert [spec.shape for spec in source.inputs] == [(None, 12, 12, 3)]
    calibration = make_calibration(source.inputs, SampleFile({"": samples}, None), None, 32, 8)
    for name in ("arm", "arm-ort"):
        backend = all_backends()[name]
        (tmp_path / name).mkdir()
        built = backend.convert(source, "fp32", calibration, tmp_path / name, FarmSettings())
        fixed = any("fixed to (?,12,12,3), the samples' shape" in note for note in built.notes)
        assert fixed == (name == "arm")  # TFLite plans for fixed shapes; ONNX Runtime stays dynamic
        runner = backend.load(built, source.output_names)
        assert verify_variant(source, calibration, runner, "fp32").passed
