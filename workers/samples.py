"""Small TensorFlow models in every input format farm reads, for the demo and the tests.

``python -m workers.samples DIR`` writes ``classifier.pb``, ``classifier.keras``,
``classifier.h5`` and the SavedModel folder ``classifier_savedmodel`` into DIR.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from workers.backends.base import import_tensorflow

INPUT_SHAPE = (16, 16, 3)
INPUT_NAME = "image"


def build_classifier(seed: int = 7) -> Any:
    """A small CNN classifier with fixed random weights: conv, batch norm, pooling, dense, softmax."""
    import_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=INPUT_SHAPE, name=INPUT_NAME)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="classifier")


def write_frozen_graph(model: Any, target: Path) -> Path:
    tf = import_tensorflow()
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec((None, *INPUT_SHAPE), tf.float32, name=INPUT_NAME)
    function = tf.function(lambda image: model(image, training=False)).get_concrete_function(spec)
    graph_def = convert_variables_to_constants_v2(function).graph.as_graph_def()
    target.write_bytes(graph_def.SerializeToString())
    return target


def write_all_formats(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    model = build_classifier()
    paths = {
        "frozen_graph": folder / "classifier.pb",
        "keras": folder / "classifier.keras",
        "h5": folder / "classifier.h5",
        "saved_model": folder / "classifier_savedmodel",
    }
    write_frozen_graph(model, paths["frozen_graph"])
    model.save(paths["keras"])
    model.save(paths["h5"])
    model.export(str(paths["saved_model"]), verbose=False)
    return paths


if __name__ == "__main__":
    for kind, path in write_all_formats(Path(sys.argv[1] if len(sys.argv) > 1 else ".")).items():
        print(f"{kind:13} {path}")
