"""Small trained models shaped like the real ones INT8 quantizers get wrong, for the tests and
for trying verdicts by hand (`python -m farm.samples_kinds DIR`).

Each ``write_<kind>(folder)`` trains a tiny Keras model for a few seconds on synthetic but
structured data, so its outputs vary the way a real model's do (random weights give flat, centred
outputs that hide quantization damage), and writes ``<kind>.keras`` with ``<kind>_calib.npz``:
300 realistic inputs keyed by the input's name, drawn apart from the training data.

- ``detector``: YOLO-style, one output holding boxes in pixels (0 to 320) beside scores (0 to 1),
  so one INT8 scale for the whole tensor wipes the scores.
- ``face_stage``: an MTCNN-like stage with three heads: a 2-way softmax, box offsets, landmarks.
- ``sequence``: a text-line recogniser, ``[batch, time, classes]`` softmax per step.
- ``binary``: one sigmoid probability from 20 features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from farm.core.toolchains import import_tensorflow

CALIBRATION_SAMPLES = 300  # a fifth held out to verify: 60 samples, more than thin evidence
DETECTOR_INPUT = "image"
DETECTOR_SIZE = 32
DETECTOR_GRID = 8  # 8x8 cells, one anchor each: 64 anchors
DETECTOR_CLASSES = 3
BOX_PIXELS = 320.0  # boxes are given in the pixels of the full-size image the input was scaled from
FACE_INPUT = "crop"
FACE_SIZE = 24
SEQUENCE_INPUT = "text_line"
SEQUENCE_SHAPE = (32, 64)  # height, width: 16 steps of 4 pixels
SEQUENCE_STEPS = 16
SEQUENCE_CLASSES = 12  # class 0 is the blank
BINARY_INPUT = "features"
BINARY_FEATURES = 20


def _keras(seed: int) -> Any:
    import_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    return keras


def _save(folder: Path, name: str, model: Any, inputs: dict[str, Any]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"model": folder / f"{name}.keras", "calib": folder / f"{name}_calib.npz"}
    model.save(paths["model"])
    np.savez(paths["calib"], **inputs)
    return paths


# --- detector -----------------------------------------------------------------------------------


def rectangle_scenes(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noisy grey images with one to three coloured rectangles (red, green, blue: the classes).

    Returns the images and, per grid cell, the targets: the box (centre x, centre y, width,
    height, as fractions of the image) of the rectangle covering the cell's centre, or of the
    nearest one; and objectness plus one-hot class (zero where no rectangle covers the centre).
    """
    rng = np.random.default_rng(seed)
    size, grid = DETECTOR_SIZE, DETECTOR_GRID
    images = rng.uniform(0.1, 0.4, (count, 1, 1, 1)) + rng.normal(0, 0.05, (count, size, size, 3))
    boxes = np.zeros((count, grid, grid, 4))
    scores = np.zeros((count, grid, grid, 1 + DETECTOR_CLASSES))
    centres = (np.arange(grid) + 0.5) * size / grid
    cell_y, cell_x = np.meshgrid(centres, centres, indexing="ij")
    for index in range(count):
        nearest = np.full((grid, grid), np.inf)
        for _ in range(rng.integers(1, 4)):
            width, height = rng.integers(6, 17, 2)
            left, top = rng.integers(0, size - width + 1), rng.integers(0, size - height + 1)
            kind = rng.integers(DETECTOR_CLASSES)
            colour = rng.uniform(0.05, 0.3, 3)
            colour[kind] = rng.uniform(0.7, 1.0)
            images[index, top : top + height, left : left + width] = colour
            box = np.array([left + width / 2, top + height / 2, width, height]) / size
            covered = (cell_x >= left) & (cell_x < left + width) & (cell_y >= top) & (cell_y < top + height)
            distance = np.hypot(cell_x - box[0] * size, cell_y - box[1] * size) - 100.0 * covered
            closer = distance < nearest
            nearest[closer] = distance[closer]
            boxes[index][closer] = box
            scores[index][covered] = 0.0
            scores[index][covered, 0] = 1.0
            scores[index][covered, 1 + kind] = 1.0
    return np.clip(images, 0, 1).astype(np.float32), boxes.astype(np.float32), scores.astype(np.float32)


def write_detector(folder: Path, epochs: int = 8, seed: int = 11) -> dict[str, Path]:
    """A YOLO-style detector: output ``detections`` (batch, 64 anchors, 4 + 1 + 3): box centre x,
    centre y, width, height in pixels of a 320-pixel image, then objectness and three class scores
    in 0..1, concatenated in one tensor the way exported detectors leave them for NMS.

    Trained on unit boxes (0..1, so the box loss does not drown the scores); the saved model
    scales them to pixels, which puts values up to 320 and up to 1 side by side in one tensor."""
    keras = _keras(seed)
    layers = keras.layers
    images, boxes, scores = rectangle_scenes(1200, seed)
    inputs = keras.Input((DETECTOR_SIZE, DETECTOR_SIZE, 3), name=DETECTOR_INPUT)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inputs)
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    unit_boxes = layers.Conv2D(4, 1, activation="sigmoid", name="unit_boxes")(x)
    box_scores = layers.Conv2D(1 + DETECTOR_CLASSES, 1, activation="sigmoid", name="scores")(x)
    trainer = keras.Model(inputs, [unit_boxes, box_scores])
    trainer.compile("adam", ["mse", "binary_crossentropy"])
    trainer.fit(images, [boxes, scores], epochs=epochs, batch_size=32, verbose=0)
    anchors = DETECTOR_GRID * DETECTOR_GRID
    pixels = layers.Rescaling(BOX_PIXELS, name="box_pixels")(unit_boxes)
    flat_boxes = layers.Reshape((anchors, 4))(pixels)
    flat_scores = layers.Reshape((anchors, 1 + DETECTOR_CLASSES))(box_scores)
    detections = layers.Concatenate(axis=-1, name="detections")([flat_boxes, flat_scores])
    model = keras.Model(inputs, detections, name="detector")
    calib, _, _ = rectangle_scenes(CALIBRATION_SAMPLES, seed + 1)
    return _save(folder, "detector", model, {DETECTOR_INPUT: calib})


# --- face stage ---------------------------------------------------------------------------------


def face_crops(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Crops that hold a face half of the time: a skin-toned ellipse, off-centre and of varying size,
    with dark eyes, nose and mouth corners; the others hold blobs on noise.

    Returns the crops, the face/no-face label, the box offsets (face box edges minus the crop's,
    as fractions of the crop: zero for no face) and the five landmarks (x, y fractions: the crop's
    centre for no face), as an MTCNN stage is trained."""
    rng = np.random.default_rng(seed)
    size = FACE_SIZE
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    crops = rng.uniform(0.2, 0.6, (count, 1, 1, 3)) + rng.normal(0, 0.06, (count, size, size, 3))
    is_face = rng.random(count) < 0.5
    offsets = np.zeros((count, 4))
    landmarks = np.full((count, 10), 0.5)
    for index in range(count):
        if not is_face[index]:
            for _ in range(rng.integers(1, 4)):
                cy, cx = rng.uniform(0, size, 2)
                radius = rng.uniform(2, 7)
                blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
                crops[index] += blob[..., None] * rng.uniform(-0.4, 0.4, 3)
            continue
        cx, cy = size / 2 + rng.uniform(-3, 3, 2)
        half_w, half_h = rng.uniform(6, 10), rng.uniform(7, 11)
        face = ((xx - cx) / half_w) ** 2 + ((yy - cy) / half_h) ** 2 <= 1
        crops[index][face] = np.array([0.85, 0.65, 0.5]) * rng.uniform(0.8, 1.1)
        points = np.array(
            [
                [cx - 0.4 * half_w, cy - 0.3 * half_h],  # eyes
                [cx + 0.4 * half_w, cy - 0.3 * half_h],
                [cx, cy + 0.1 * half_h],  # nose
                [cx - 0.35 * half_w, cy + 0.5 * half_h],  # mouth corners
                [cx + 0.35 * half_w, cy + 0.5 * half_h],
            ]
        ) + rng.normal(0, 0.5, (5, 2))
        for px, py in points:
            crops[index] -= 0.5 * np.exp(-((yy - py) ** 2 + (xx - px) ** 2) / 1.5)[..., None]
        edges = np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h])
        offsets[index] = (edges - np.array([0, 0, size, size])) / size
        landmarks[index] = (points / size).reshape(-1)
    crops = np.clip(crops, 0, 1).astype(np.float32)
    labels = is_face.astype(np.int64)
    return crops, labels, offsets.astype(np.float32), landmarks.astype(np.float32)


def write_face_stage(folder: Path, epochs: int = 10, seed: int = 12) -> dict[str, Path]:
    """An MTCNN-like stage on 24x24 crops with three outputs: ``face_prob`` (batch, 2) softmax,
    ``box_offsets`` (batch, 4) and ``landmarks`` (batch, 10), both linear regressions."""
    keras = _keras(seed)
    layers = keras.layers
    crops, labels, offsets, landmarks = face_crops(1200, seed)
    inputs = keras.Input((FACE_SIZE, FACE_SIZE, 3), name=FACE_INPUT)
    x = layers.Conv2D(16, 3, activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu")(x)
    outputs = [
        layers.Dense(2, activation="softmax", name="face_prob")(x),
        layers.Dense(4, name="box_offsets")(x),
        layers.Dense(10, name="landmarks")(x),
    ]
    model = keras.Model(inputs, outputs, name="face_stage")
    model.compile("adam", ["sparse_categorical_crossentropy", "mse", "mse"], loss_weights=[1.0, 5.0, 5.0])
    model.fit(crops, [labels, offsets, landmarks], epochs=epochs, batch_size=32, verbose=0)
    calib = face_crops(CALIBRATION_SAMPLES, seed + 1)[0]
    return _save(folder, "face_stage", model, {FACE_INPUT: calib})


# --- sequence -----------------------------------------------------------------------------------


def text_lines(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Grey text lines: 16 slots of 4 pixels, each blank (class 0) or one of 11 fixed glyphs (dark
    strokes on paper, shifted up or down a little), with paper noise. Returns lines and classes."""
    glyphs = np.random.default_rng(99).random((SEQUENCE_CLASSES, 20, 3)) < 0.45  # seeded: same font
    rng = np.random.default_rng(seed)
    height, width = SEQUENCE_SHAPE
    lines = rng.uniform(0.75, 0.95, (count, 1, 1)) + rng.normal(0, 0.04, (count, height, width))
    classes = rng.integers(0, SEQUENCE_CLASSES, (count, SEQUENCE_STEPS))
    classes[rng.random((count, SEQUENCE_STEPS)) < 0.3] = 0
    for index, step in zip(*np.nonzero(classes), strict=True):
        top = 6 + rng.integers(-2, 3)
        ink = glyphs[classes[index, step]] * rng.uniform(0.5, 0.8)
        lines[index, top : top + 20, 4 * step : 4 * step + 3] -= ink
    return np.clip(lines, 0, 1)[..., None].astype(np.float32), classes


def write_sequence(folder: Path, epochs: int = 6, seed: int = 13) -> dict[str, Path]:
    """A text-line recogniser: (32, 64, 1) image in, ``chars`` (batch, 16 steps, 12 classes) out, a
    softmax per step, as CTC recognisers leave it. Convolutions, then one convolution as tall as
    the remaining feature map collapses the height, so each step reads one 4-pixel column."""
    keras = _keras(seed)
    layers = keras.layers
    lines, classes = text_lines(800, seed)
    inputs = keras.Input((*SEQUENCE_SHAPE, 1), name=SEQUENCE_INPUT)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(48, (SEQUENCE_SHAPE[0] // 4, 1), activation="relu")(x)  # height 8 -> 1
    x = layers.Reshape((SEQUENCE_STEPS, 48))(x)
    chars = layers.Dense(SEQUENCE_CLASSES, activation="softmax", name="chars")(x)
    model = keras.Model(inputs, chars, name="sequence")
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(lines, classes, epochs=epochs, batch_size=32, verbose=0)
    calib = text_lines(CALIBRATION_SAMPLES, seed + 1)[0]
    return _save(folder, "sequence", model, {SEQUENCE_INPUT: calib})


# --- binary -------------------------------------------------------------------------------------


def tabular_rows(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features on different scales (as unnormalised tables have) and a label that a linear rule
    of five of them decides, with label noise: separable, but not perfectly."""
    rng = np.random.default_rng(seed)
    scales = np.random.default_rng(98).uniform(0.5, 4.0, BINARY_FEATURES)
    features = rng.normal(0, 1, (count, BINARY_FEATURES)) * scales
    rule = features[:, :5] / scales[:5] @ np.array([1.5, -1.0, 0.8, 1.2, -0.6])
    labels = (rule + rng.normal(0, 0.5, count) > 0.3).astype(np.float32)
    return features.astype(np.float32), labels


def write_binary(folder: Path, epochs: int = 10, seed: int = 14) -> dict[str, Path]:
    """A binary classifier on 20 features: ``is_positive`` (batch, 1), a sigmoid probability."""
    keras = _keras(seed)
    features, labels = tabular_rows(3000, seed)
    inputs = keras.Input((BINARY_FEATURES,), name=BINARY_INPUT)
    x = keras.layers.Dense(16, activation="relu")(inputs)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="is_positive")(x)
    model = keras.Model(inputs, outputs, name="binary")
    model.compile("adam", "binary_crossentropy")
    model.fit(features, labels, epochs=epochs, batch_size=32, verbose=0)
    calib = tabular_rows(CALIBRATION_SAMPLES, seed + 1)[0]
    return _save(folder, "binary", model, {BINARY_INPUT: calib})


WRITERS = {
    "detector": write_detector,
    "face_stage": write_face_stage,
    "sequence": write_sequence,
    "binary": write_binary,
}


def write_all_kinds(folder: Path) -> dict[str, dict[str, Path]]:
    return {name: write(folder) for name, write in WRITERS.items()}


if __name__ == "__main__":
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    for kind, paths in write_all_kinds(target).items():
        print(f"{kind:11} {paths['model']}  {paths['calib']}")
