"""Small TensorFlow models in every input format farm reads, for the demo and the tests.

``python -m workers.samples DIR`` writes ``classifier.pb``, ``classifier.keras``,
``classifier.h5`` and the SavedModel folder ``classifier_savedmodel`` into DIR, and a digit
classifier trained on real images: ``digits.keras`` with ``digits_calib.npz`` (training images and
their labels) and ``digits_eval.npz`` (held-out images and labels).
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


DIGITS_INPUT = "digit"


def write_digits_classifier(folder: Path, epochs: int = 12) -> dict[str, Path]:
    """A small CNN trained on scikit-learn's bundled digits (8x8 grey images, 1,797 of them, no
    download): about 97% accurate on the 540 held out. Real data, so INT8 verdicts mean something."""
    import_tensorflow()
    import keras
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]
    order = np.random.default_rng(0).permutation(len(images))
    train, held_out = order[:-540], order[-540:]
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), name=DIGITS_INPUT)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="digit_class")(x))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(images[train], digits.target[train], epochs=epochs, batch_size=32, verbose=0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"model": folder / "digits.keras", "calib": folder / "digits_calib.npz"}
    paths["eval"] = folder / "digits_eval.npz"
    model.save(paths["model"])
    np.savez(paths["calib"], digit=images[train], labels=digits.target[train])
    np.savez(paths["eval"], digit=images[held_out], labels=digits.target[held_out])
    return paths


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
    target = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    for kind, path in {**write_all_formats(target), **write_digits_classifier(target)}.items():
        print(f"{kind:13} {path}")
