"""Small TensorFlow models in every input format farm reads, for the demo and the tests.

``python -m farm.samples DIR`` writes ``classifier.pb``, ``classifier.keras``,
``classifier.h5`` and the SavedModel folder ``classifier_savedmodel`` into DIR, and a digit
classifier trained on real images: ``digits.keras`` with ``digits_calib.npz`` (training images and
their labels), ``digits_eval.npz`` (held-out images and labels) and ``digits_images.parquet``
(every image as a row to score, with its id and label).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from farm.core.toolchains import import_tensorflow

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
    paths["images"] = folder / "digits_images.parquet"
    model.save(paths["model"])
    np.savez(paths["calib"], digit=images[train], labels=digits.target[train])
    np.savez(paths["eval"], digit=images[held_out], labels=digits.target[held_out])
    _write_images_table(paths["images"], images, digits.target)
    return paths


def _write_images_table(target: Path, images: Any, labels: Any) -> None:
    """Every digit image as a row to score: ``id``, ``label`` and ``image`` (64 values)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    flat = pa.FixedSizeListArray.from_arrays(pa.array(images.reshape(-1)), 64)
    pq.write_table(pa.table({"id": np.arange(len(images)), "label": labels, "image": flat}), target)


def write_mlp_onnx(
    target: Path, features: int = 20, hidden: int = 64, classes: int = 10, seed: int = 3
) -> Path:
    """A tabular classifier as ONNX, built directly (no framework): dense, relu, dense, softmax,
    fixed random weights. Input ``features`` (batch, features) float32; output ``probabilities``."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = {
        "w1": rng.normal(0, 1 / np.sqrt(features), (features, hidden)).astype(np.float32),
        "b1": rng.normal(0, 0.1, hidden).astype(np.float32),
        "w2": rng.normal(0, 1 / np.sqrt(hidden), (hidden, classes)).astype(np.float32),
        "b2": rng.normal(0, 0.1, classes).astype(np.float32),
    }
    nodes = [
        helper.make_node("Gemm", ["features", "w1", "b1"], ["h"]),
        helper.make_node("Relu", ["h"], ["a"]),
        helper.make_node("Gemm", ["a", "w2", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", classes])],
        [numpy_helper.from_array(array, name) for name, array in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))
    return target


def write_feature_table(
    target: Path, rows: int, features: int = 20, seed: int = 5, row_group_rows: int = 65_536
) -> Path:
    """A Parquet table to score: float columns f0..f{features-1}, plus an ``id`` and a ``label``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    columns = {f"f{i}": rng.normal(0, 1, rows).astype(np.float32) for i in range(features)}
    table = pa.table(
        {"id": np.arange(rows, dtype=np.int64) + 1_000_000, **columns, "label": rng.integers(0, 10, rows)}
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, target, row_group_size=row_group_rows)
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
    paths["onnx"] = write_onnx_export(paths["frozen_graph"], folder / "classifier.onnx")
    return paths


def write_onnx_export(frozen_graph: Path, target: Path) -> Path:
    """The frozen graph as ONNX, exported as a worker exports it (input named ``image:0``)."""
    from farm.core.modelfile import ModelFormat
    from workers.sources import load_source

    load_source(frozen_graph, ModelFormat.FROZEN_GRAPH, [], [], target.parent).write_onnx(target)
    return target


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    for kind, path in {**write_all_formats(target), **write_digits_classifier(target)}.items():
        print(f"{kind:13} {path}")
