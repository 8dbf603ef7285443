"""The artifact store: a folder (local, or shared storage in a multi-host farm) of content-addressed files.

Artifacts are named by keys relative to the store's root (``models/<sha256>/model.pb``), so
every host resolves the same key against its own mount point of the store.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path

CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a folder's files and their relative paths in sorted order."""
    digest = hashlib.sha256()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
            digest.update(sha256_of(file).encode())
        return digest.hexdigest()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / key

    def put_model(self, source: Path, sha256: str) -> str:
        """Store a submitted model (file or folder) under its sha256; a second put is free."""
        key = f"models/{sha256}/{source.name}"
        if not self.path(key).exists():
            copy_atomically(source, self.path(key))
        return key

    def put_file(self, source: Path, key: str) -> str:
        copy_atomically(source, self.path(key))
        return key


def fsync_file(path: Path) -> None:
    """Flush a file's bytes to disk, before it is renamed into place."""
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def copy_atomically(source: Path, final: Path) -> None:
    # Copy beside the destination, then rename: a reader never sees half a model, and a
    # crash leaves only a temporary name behind.
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    try:
        if source.is_dir():
            shutil.copytree(source, temporary)
        else:
            shutil.copyfile(source, temporary)
            fsync_file(temporary)
        if final.is_dir():
            shutil.rmtree(final)
        os.replace(temporary, final)
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        elif temporary.exists():
            temporary.unlink()
