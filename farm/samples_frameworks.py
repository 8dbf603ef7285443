"""Small models of every framework farm takes beyond TensorFlow, trained here in seconds, for the
tests and benchmarks/tabular.py: scikit-learn, XGBoost and LightGBM models on one tabular task,
a PyTorch network as an ExportedProgram and as TorchScript, and ONNX models as real exports come:
weights in Constant nodes, and height and width left open."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

FEATURES = 8
CLASSES = 3
SEED = 19


def tabular_task(rows: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows (float32) and their class, from one fixed generator: every call with the same
    seed draws from the same task, so a model trained on one draw scores another."""
    from sklearn.datasets import make_classification

    features, labels = make_classification(
        rows, FEATURES, n_informative=5, n_classes=CLASSES, random_state=seed, shuffle=False
    )
    return features.astype(np.float32), labels


def write_tabular(folder: Path, rows: int = 2_000, trees: int = 30) -> dict[str, Path]:
    """A random forest (.skops), a scaler + MLP pipeline (.joblib, a pickle), an
    XGBoost classifier (.json), a LightGBM regressor (.txt); calibration samples; a Parquet table
    to score (f0..f7 and an id)."""
    import joblib
    import lightgbm as lgb
    import skops.io as sio
    import xgboost as xgb
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folder.mkdir(parents=True, exist_ok=True)
    features, labels = tabular_task(1_500)
    paths = {name: folder / file for name, file in TABULAR_FILES.items()}
    forest = RandomForestClassifier(trees, max_depth=8, random_state=0, n_jobs=1).fit(features, labels)
    sio.dump(forest, paths["forest"])
    network = MLPClassifier((32,), max_iter=400, random_state=0)
    joblib.dump(make_pipeline(StandardScaler(), network).fit(features, labels), paths["pipeline"])
    xgb.XGBClassifier(n_estimators=trees, max_depth=4, n_jobs=1).fit(features, labels).save_model(
        paths["xgboost"]
    )
    regressor = lgb.LGBMRegressor(n_estimators=trees, verbose=-1, n_jobs=1).fit(
        features, labels.astype(float)
    )
    regressor.booster_.save_model(str(paths["lightgbm"]))
    np.save(paths["calib"], features[:300])
    write_feature_rows(paths["data"], rows)
    return paths


TABULAR_FILES = {
    "forest": "forest.skops",
    "pipeline": "pipeline.joblib",
    "xgboost": "boosted.json",
    "lightgbm": "regressor.txt",
    "calib": "features.npy",
    "data": "rows.parquet",
}


def write_feature_rows(target: Path, rows: int, seed: int = SEED + 1) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    features, _ = tabular_task(rows, seed)
    columns = {f"f{index}": features[:, index] for index in range(FEATURES)}
    pq.write_table(pa.table({"id": np.arange(rows, dtype=np.int64), **columns}), target)
    return target


def write_torch(folder: Path) -> dict[str, Path]:
    """A small convolutional classifier (NCHW 3x16x16, batch left open) saved by torch.export.save
    and by torch.jit.save, with calibration samples."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    module = _torch_classifier(torch).eval()
    example = torch.randn(4, 3, 16, 16)
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(module, (example,), dynamic_shapes={"image": {0: batch}})
    paths = {"pt2": folder / "classifier.pt2", "torchscript": folder / "classifier_ts.pt"}
    torch.export.save(program, str(paths["pt2"]))
    torch.jit.save(torch.jit.trace(module, example), str(paths["torchscript"]))
    paths["calib"] = folder / "images.npy"
    np.save(paths["calib"], np.random.default_rng(3).random((150, 3, 16, 16), dtype=np.float32))
    paths["pickled"] = folder / "pickled.pt"
    torch.save(module.state_dict(), paths["pickled"])  # what torch.save(model) writes too: a pickle
    return paths


def _torch_classifier(torch: Any) -> Any:
    """A class defined where torch is imported, so that importing this module needs no torch."""

    class Classifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.head = torch.nn.Linear(8, 4)

        def forward(self, image: Any) -> Any:
            features = torch.relu(self.conv(image)).mean(dim=(2, 3))
            return torch.softmax(self.head(features), dim=-1)

    return Classifier()


def write_open_shape_onnx(folder: Path) -> dict[str, Path]:
    """An ONNX classifier as many exporters write one: weights in Constant nodes, and height and
    width left open (N,3,?,?); with calibration samples of 3x12x12 images."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(4)

    def constant(name: str, values: np.ndarray) -> Any:
        return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(values, name))

    nodes = [
        constant("conv_w", rng.normal(0, 0.3, (6, 3, 3, 3)).astype(np.float32)),
        constant("dense_w", rng.normal(0, 4.0, (6, 4)).astype(np.float32)),  # clear decisions
        helper.make_node("Conv", ["image", "conv_w"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "dense_w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["scores"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "open_shape",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    paths = {"model": folder / "open_shape.onnx", "calib": folder / "open_shape_calib.npy"}
    onnx.save(model, paths["model"])
    # Images whose colour differs from one to the next, as real ones do (pure noise would pool
    # to nearly one value, and leave the classifier nothing to decide).
    colours = rng.random((150, 3, 1, 1)) * 2
    np.save(paths["calib"], (colours + 0.2 * rng.random((150, 3, 12, 12))).astype(np.float32))
    return paths


def write_recurrent_onnx(folder: Path) -> dict[str, Path]:
    """A recurrent step as voice-activity models are exported: features ``x`` (N,16), a state
    ``state`` batched on axis 1 (2,N,8) and a scalar sample rate ``sr``; it gives class scores
    (N,4) and the next state (2,N,8). With a sample file in the farm's convention: one row per
    sample for every input, the state as (samples,2,8), the sample rate once per sample."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(6)
    weights = [
        numpy_helper.from_array(rng.normal(0, 0.6, (16, 8)).astype(np.float32), "w_in"),
        numpy_helper.from_array(rng.normal(0, 2.0, (8, 4)).astype(np.float32), "w_out"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "axis_0"),
        numpy_helper.from_array(np.array(16000.0, dtype=np.float32), "reference_rate"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w_in"], ["drive"]),
        helper.make_node("ReduceSum", ["state", "axis_0"], ["memory"], keepdims=0),
        helper.make_node("Cast", ["sr"], ["rate"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["rate", "reference_rate"], ["rate_scale"]),
        helper.make_node("Mul", ["memory", "rate_scale"], ["scaled_memory"]),
        helper.make_node("Add", ["drive", "scaled_memory"], ["pre"]),
        helper.make_node("Tanh", ["pre"], ["hidden"]),
        helper.make_node("MatMul", ["hidden", "w_out"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["scores"], axis=-1),
        helper.make_node("Unsqueeze", ["hidden", "axis_0"], ["hidden_1"]),
        helper.make_node("Concat", ["hidden_1", "hidden_1"], ["next_state"], axis=0),
    ]
    graph = helper.make_graph(
        nodes,
        "recurrent_step",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "batch", 8]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
        ],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("next_state", TensorProto.FLOAT, [2, "batch", 8]),
        ],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    paths = {"model": folder / "recurrent.onnx", "calib": folder / "recurrent_calib.npz"}
    onnx.save(model, paths["model"])
    samples = 150
    np.savez(
        paths["calib"],
        x=rng.normal(0, 1, (samples, 16)).astype(np.float32),
        state=rng.normal(0, 0.5, (samples, 2, 8)).astype(np.float32),  # sample first, then (2, 8)
        sr=np.full(samples, 16000, dtype=np.int64),  # one value, given per sample
    )
    return paths
