from __future__ import annotations

from pathlib import Path

from farm.artifacts import ArtifactStore, sha256_of


def test_folder_hash_depends_on_names_and_contents(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "v").write_bytes(b"weights")
    first = sha256_of(folder)
    assert first == sha256_of(folder)
    (folder / "variables" / "v").write_bytes(b"weights2")
    assert sha256_of(folder) != first


def test_models_are_stored_once_under_their_hash(tmp_path: Path) -> None:
    source = tmp_path / "model.pb"
    source.write_bytes(b"model bytes")
    store = ArtifactStore(tmp_path / "store")
    digest = sha256_of(source)
    key = store.put_model(source, digest)
    assert key == f"models/{digest}/model.pb"
    assert store.path(key).read_bytes() == b"model bytes"
    assert store.put_model(source, digest) == key
    leftovers = [p.name for p in store.path(key).parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
