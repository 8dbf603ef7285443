"""The artifact store, one body against both kinds: a folder, and a real S3-compatible server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from farm.core.artifacts import FOLDER_MARKER, ArtifactStore, FolderStore, ObjectStore, open_store, sha256_of
from farm.core.errors import FarmError, ServiceUnavailableError, UsageError
from farm.core.settings import FarmSettings
from tests.conftest import S3Server, free_port


def test_folder_hash_depends_on_names_and_contents(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "v").write_bytes(b"weights")
    first = sha256_of(folder)
    assert first == sha256_of(folder)
    (folder / "variables" / "v").write_bytes(b"weights2")
    assert sha256_of(folder) != first


@pytest.fixture(params=["folder", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    if request.param == "folder":
        yield FolderStore(tmp_path / "store")
    else:
        server = request.getfixturevalue("aws_env")
        yield ObjectStore(server.url(f"store-{uuid.uuid4().hex[:8]}"), tmp_path / "cache")


def _saved_model_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "classifier_savedmodel"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph bytes")
    (folder / "variables" / "variables.data-00000-of-00001").write_bytes(b"weights" * 1000)
    return folder


def test_models_are_stored_once_under_their_hash(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "model.pb"
    source.write_bytes(b"model bytes")
    digest = sha256_of(source)
    assert not store.exists(f"models/{digest}/model.pb")
    key = store.put_model(source, digest)
    assert key == f"models/{digest}/model.pb"
    assert store.exists(key)
    assert store.local(key, digest).read_bytes() == b"model bytes"
    assert store.put_model(source, digest) == key


def test_a_folder_model_round_trips_whole(store: ArtifactStore, tmp_path: Path) -> None:
    folder = _saved_model_folder(tmp_path)
    digest = sha256_of(folder)
    key = store.put_model(folder, digest)
    local = store.local(key, digest)
    assert sha256_of(local) == digest
    assert not (local / FOLDER_MARKER).exists()
    store.copy_out(key, digest, tmp_path / "out" / "copy")
    assert sha256_of(tmp_path / "out" / "copy") == digest


def test_the_folder_store_leaves_no_temporary_names(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "store")
    source = tmp_path / "model.pb"
    source.write_bytes(b"model bytes")
    key = store.put_model(source, sha256_of(source))
    assert [p.name for p in store.path(key).parent.iterdir()] == ["model.pb"]


def test_an_object_store_downloads_once_into_the_cache_by_sha256(aws_env: S3Server, tmp_path: Path) -> None:
    store = ObjectStore(aws_env.url("cached"), tmp_path / "cache")
    source = tmp_path / "variant.onnx"
    source.write_bytes(b"onnx bytes")
    digest = sha256_of(source)
    store.put(source, "variants/j1/cpu/cpu-fp32/model.onnx")
    first = store.local("variants/j1/cpu/cpu-fp32/model.onnx", digest)
    assert first == tmp_path / "cache" / digest / "model.onnx"
    store.fs.rm(f"{store.root}/variants/j1/cpu/cpu-fp32/model.onnx")  # the cache alone serves now
    assert store.local("variants/j1/cpu/cpu-fp32/model.onnx", digest).read_bytes() == b"onnx bytes"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [digest]  # no staging left behind


def test_an_object_store_refuses_bytes_that_do_not_match_their_sha256(
    aws_env: S3Server, tmp_path: Path
) -> None:
    store = ObjectStore(aws_env.url("tampered"), tmp_path / "cache")
    source = tmp_path / "model.onnx"
    source.write_bytes(b"what was recorded")
    digest = sha256_of(source)
    source.write_bytes(b"what the store holds")
    store.put(source, "variants/x/model.onnx")
    with pytest.raises(FarmError, match="does not match its sha256"):
        store.local("variants/x/model.onnx", digest)
    assert not (tmp_path / "cache" / digest).exists()


def test_a_missing_object_says_which(aws_env: S3Server, tmp_path: Path) -> None:
    store = ObjectStore(aws_env.url("empty"), tmp_path / "cache")
    with pytest.raises(FarmError, match=r"artifact models/nothing/model\.pb is not in"):
        store.local("models/nothing/model.pb", "0" * 64)


def test_an_unreachable_object_store_is_a_service_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    store = ObjectStore("s3://nowhere/prefix", tmp_path / "cache")
    with pytest.raises(ServiceUnavailableError, match="artifact store s3://nowhere/prefix failed") as raised:
        store.exists("models/a/model.pb")
    assert raised.value.service == "artifact store" and raised.value.retryable  # an outage: retried


@pytest.mark.parametrize("key", ["../escape.pb", "/etc/passwd", "models/../../x", "", "a\\..\\b"])
def test_keys_cannot_leave_the_store(store: ArtifactStore, key: str, tmp_path: Path) -> None:
    source = tmp_path / "m.pb"
    source.write_bytes(b"x")
    with pytest.raises(UsageError, match="would leave the artifact store"):
        store.put(source, key)


def test_settings_pick_the_store_by_its_root(tmp_path: Path) -> None:
    folder = open_store(FarmSettings(home=tmp_path, artifact_root="relative/store"))
    assert isinstance(folder, FolderStore) and folder.root.is_absolute()
    obj = open_store(FarmSettings(home=tmp_path, artifact_root="memory://bucket/prefix/"))
    assert isinstance(obj, ObjectStore) and obj.location == "memory://bucket/prefix"
    assert obj.cache == tmp_path / "cache" / "artifacts"
