"""Fixtures of the integration tests beyond the shared ones in tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.samples import write_mlp_onnx


@pytest.fixture(scope="session")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small scikit-learn-shaped MLP as ONNX: fast to convert and to score."""
    return write_mlp_onnx(tmp_path_factory.mktemp("mlp") / "mlp.onnx")
