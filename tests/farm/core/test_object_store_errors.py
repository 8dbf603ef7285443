"""Which object-store failures are retried: the store or the way to it failing (a service error,
retried), a checksum mismatch (an integrity error of the fleet, retried, never the user's), and a
programming error (never retried: it would only repeat). On a real S3-compatible server."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.core.artifacts import ObjectStore, sha256_of
from farm.core.errors import ArtifactIntegrityError
from tests.conftest import S3Server


def test_a_checksum_mismatch_is_an_integrity_error_to_retry(aws_env: S3Server, tmp_path: Path) -> None:
    store = ObjectStore(aws_env.url("integrity"), tmp_path / "cache")
    source = tmp_path / "model.onnx"
    source.write_bytes(b"what was recorded")
    digest = sha256_of(source)
    source.write_bytes(b"what the store holds")
    store.put(source, "variants/x/model.onnx")
    with pytest.raises(ArtifactIntegrityError, match="does not match its sha256") as raised:
        store.local("variants/x/model.onnx", digest)
    assert raised.value.retryable and raised.value.exit_code == 5


def test_a_programming_error_inside_the_store_is_not_called_an_outage(
    aws_env: S3Server, tmp_path: Path
) -> None:
    store = ObjectStore(aws_env.url("bugs"), tmp_path / "cache")
    with pytest.raises(AttributeError):
        store.put("model.onnx", "variants/x/model.onnx")  # type: ignore[arg-type]  # a str, not a Path
