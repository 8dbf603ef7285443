"""Publishing a folder (a SavedModel) into the folder artifact store: staged under a name of its
own and renamed into place, so clients submitting the same model at once never delete each
other's copy, and a reader that once saw the folder always sees all of it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from farm.core.artifacts import FolderStore, sha256_of

PUBLISHERS = 4


def _saved_model(folder: Path, files: int = 150, salt: str = "") -> Path:
    """A SavedModel-shaped folder with enough files that copying it takes a while."""
    (folder / "variables").mkdir(parents=True)
    (folder / "assets").mkdir()
    (folder / "saved_model.pb").write_bytes(b"graph" * 1000 + salt.encode())
    for i in range(files):
        (folder / "variables" / f"variables.data-{i:05d}-of-{files:05d}").write_bytes(bytes([i % 256]) * 2048)
    (folder / "variables" / "variables.index").write_bytes(b"index")
    return folder


PUBLISH = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from farm.core.artifacts import FolderStore

    root, model, sha, go, rounds = sys.argv[1:]
    while not Path(go).exists():
        time.sleep(0.001)
    store = FolderStore(Path(root))
    store.put_model(Path(model), sha)  # as `farm submit` stores it: skipped when the key exists
    for _ in range(int(rounds)):  # and stored again regardless, to widen the race
        store.put(Path(model), f"models/{sha}/{Path(model).name}")
    """
)


def test_clients_publishing_one_saved_model_at_once_never_remove_each_others_copy(tmp_path: Path) -> None:
    model = _saved_model(tmp_path / "classifier_savedmodel")
    sha = sha256_of(model)
    root = tmp_path / "artifacts"
    final = root / "models" / sha / model.name
    go = tmp_path / "go"
    publishers = [
        subprocess.Popen(
            [sys.executable, "-c", PUBLISH, str(root), str(model), sha, str(go), "2"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PUBLISHERS)
    ]
    seen_whole, problems = [], []
    stop = threading.Event()

    def read() -> None:  # a worker resolving the key while clients publish it
        while not stop.is_set():
            if not seen_whole:
                if final.exists():
                    seen_whole.append(True)
                continue
            try:
                if sha256_of(final) != sha:
                    problems.append("a partial folder under the final name")
            except OSError as exc:
                problems.append(f"the published folder vanished: {exc!r}")
            time.sleep(0.002)

    reader = threading.Thread(target=read)
    reader.start()
    go.touch()
    try:
        errors = [p.communicate(timeout=120)[1] for p in publishers]
    finally:
        stop.set()
        reader.join()
    assert [p.returncode for p in publishers] == [0] * PUBLISHERS, "\n".join(errors)
    assert problems == []
    assert sha256_of(final) == sha
    assert sorted(p.name for p in final.parent.iterdir()) == [model.name]  # no staging left behind


def test_publishing_the_same_folder_again_keeps_the_published_one(tmp_path: Path) -> None:
    model = _saved_model(tmp_path / "classifier_savedmodel", files=3)
    store = FolderStore(tmp_path / "artifacts")
    key = store.put(model, "models/abc/classifier_savedmodel")
    published = store.path(key)
    inode = published.stat().st_ino
    store.put(model, key)
    assert published.stat().st_ino == inode  # kept, not deleted and copied again
    assert sha256_of(published) == sha256_of(model)
    assert sorted(p.name for p in published.parent.iterdir()) == ["classifier_savedmodel"]


def test_publishing_different_content_under_a_folder_key_replaces_it_whole(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "artifacts")
    key = store.put(_saved_model(tmp_path / "a" / "m", files=3, salt="one"), "variants/j/cpu/m")
    second = _saved_model(tmp_path / "b" / "m", files=5, salt="two")
    store.put(second, key)
    assert sha256_of(store.path(key)) == sha256_of(second)
    assert sorted(p.name for p in store.path(key).parent.iterdir()) == ["m"]


def test_a_file_published_again_is_replaced_in_one_rename(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "artifacts")
    (tmp_path / "model.onnx").write_bytes(b"one")
    key = store.put(tmp_path / "model.onnx", "variants/j/cpu/model.onnx")
    (tmp_path / "model.onnx").write_bytes(b"two")
    started = time.monotonic()
    store.put(tmp_path / "model.onnx", key)
    assert store.path(key).read_bytes() == b"two" and time.monotonic() - started < 5
    assert [p.name for p in store.path(key).parent.iterdir()] == ["model.onnx"]
