"""Toolchain helpers every layer may use: importing TensorFlow quietly (or naming the extra to
install) and reading installed versions from package metadata, without importing anything heavy."""

from __future__ import annotations

import os
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from farm.core.errors import ToolchainMissingError


def import_tensorflow() -> Any:
    """TensorFlow, quiet, with tf2onnx beside it; or an error naming the extra to install."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
        import tf2onnx  # noqa: F401
    except ImportError as exc:
        raise ToolchainMissingError(
            f"converting TensorFlow models needs {exc.name}: pip install 'farm[tf]'"
        ) from exc
    tf.get_logger().setLevel("ERROR")
    return tf


# ONNX Runtime's CPU and GPU builds are two distributions of one module (never both installed).
ONNXRUNTIME = ("onnxruntime", "onnxruntime-gpu")


def package_versions(distributions: Iterable[str]) -> str:
    """``"onnxruntime 1.31.1, tf2onnx 1.17.0"`` for the installed ones; read from metadata, so
    nothing heavy is imported (a cache hit must stay fast)."""
    found = []
    for name in distributions:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            continue
    return ", ".join(found)
