"""The artifact store: models, calibration files and variants under keys (``models/<sha256>/model.pb``),
in a local folder or an object store (``FARM_ARTIFACT_ROOT=s3://bucket/prefix``, any fsspec URL).

Writers make a key appear whole or not at all: the folder store copies under a staging name of its
own beside the final name and renames (a folder already there with the same content is kept, so
clients storing the same SavedModel at once never remove each other's copy); the object store
uploads each file with one PUT (atomic on S3) and a folder's completion marker last. Readers ask
for ``local(key, sha256)``: the folder store's own file, or for an object store a download into
this host's cache under the artifact's sha256, checked against it, so each host fetches each
artifact once and every host of a fleet resolves the same key.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from farm.core.errors import (
    ArtifactIntegrityError,
    FarmError,
    ServiceUnavailableError,
    ToolchainMissingError,
    UsageError,
    first_line,
)

if TYPE_CHECKING:
    from farm.core.settings import FarmSettings

CHUNK = 1 << 20
# The object store's client stack: their exceptions are the store's (or the way to it) failing.
TRANSPORT_MODULES = frozenset({"botocore", "aiobotocore", "aiohttp", "s3fs", "fsspec", "urllib3", "requests"})
FOLDER_MARKER = ".farm-complete"  # written last into an uploaded folder: the folder is whole


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


def is_url(location: str) -> bool:
    return "://" in location


def open_store(settings: FarmSettings) -> ArtifactStore:
    """The store ``FARM_ARTIFACT_ROOT`` names: a folder, or an object store by URL."""
    root = settings.artifact_root
    if is_url(root):
        return ObjectStore(root, settings.cache_dir / "artifacts")
    return FolderStore(Path(root))


class ArtifactStore(ABC):
    location: str

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def put(self, source: Path, key: str) -> str:
        """Store a file or folder under ``key``; readers see all of it or none of it."""

    @abstractmethod
    def local(self, key: str, sha256: str) -> Path:
        """A path on this host holding the artifact, to read (never to write)."""

    def put_model(self, source: Path, sha256: str) -> str:
        """Store a submitted model (file or folder) under its sha256; a second put is free."""
        key = f"models/{sha256}/{source.name}"
        if not self.exists(key):
            self.put(source, key)
        return key

    def copy_out(self, key: str, sha256: str, target: Path) -> None:
        copy_atomically(self.local(key, sha256), target)


class FolderStore(ArtifactStore):
    """A folder: local, or shared storage mounted at the same key layout on every host."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def path(self, key: str) -> Path:
        return self.root / checked_key(key)

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def put(self, source: Path, key: str) -> str:
        copy_atomically(source, self.path(key))
        return key

    def local(self, key: str, sha256: str) -> Path:
        return self.path(key)


class ObjectStore(ArtifactStore):
    """An object store through fsspec (``s3://`` needs ``farm[s3]``). The standard variables
    (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...) configure it as they do every S3 tool."""

    def __init__(self, url: str, cache: Path) -> None:
        self.location = url.rstrip("/")
        self.cache = cache
        self.fs, self.root = object_filesystem(self.location, "FARM_ARTIFACT_ROOT")

    def _remote(self, key: str) -> str:
        return f"{self.root}/{checked_key(key)}"

    def exists(self, key: str) -> bool:
        remote = self._remote(key)
        with self._errors(key):
            self.fs.invalidate_cache()  # another host may have written it since this process listed
            return self._is_file(remote) or self._is_file(f"{remote}/{FOLDER_MARKER}")

    def put(self, source: Path, key: str) -> str:
        remote = self._remote(key)
        with self._errors(key):
            if not source.is_dir():
                self.fs.put_file(str(source), remote)
                return key
            for file in sorted(p for p in source.rglob("*") if p.is_file()):
                self.fs.put_file(str(file), f"{remote}/{file.relative_to(source).as_posix()}")
            self.fs.pipe_file(f"{remote}/{FOLDER_MARKER}", b"")
        return key

    def local(self, key: str, sha256: str) -> Path:
        cached = self.cache / sha256 / PurePosixPath(checked_key(key)).name
        if cached.exists():
            return cached
        staging = self.cache / f".{sha256}.{uuid.uuid4().hex}.tmp"
        try:
            self._download(key, staging / cached.name)
            if sha256_of(staging / cached.name) != sha256:
                raise ArtifactIntegrityError(
                    f"artifact {key} in {self.location} does not match its sha256 {sha256[:12]} "
                    "(damaged in the store or on the way)"
                )
            cached.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):  # another process of this host won the race: same bytes
                os.replace(staging / cached.name, cached)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return cached

    def _download(self, key: str, target: Path) -> None:
        remote = self._remote(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._errors(key):
            if self._is_file(remote):
                self.fs.get_file(remote, str(target))
                return
            if not self._is_file(f"{remote}/{FOLDER_MARKER}"):
                raise FileNotFoundError(remote)
            for name in self.fs.find(remote):
                relative = PurePosixPath(name).relative_to(remote)
                if relative.name != FOLDER_MARKER:
                    (target / relative).parent.mkdir(parents=True, exist_ok=True)
                    self.fs.get_file(name, str(target / relative))

    def _is_file(self, remote: str) -> bool:
        return object_is_file(self.fs, remote)

    def _errors(self, key: str) -> contextlib.AbstractContextManager[None]:
        missing = f"artifact {key} is not in {self.location}"
        return object_store_errors("artifact store", self.location, key, missing)


def object_is_file(fs: Any, remote: str) -> bool:
    """Whether an object store holds a file under ``remote``. Not fs.isfile: it answers False when
    the store cannot be reached at all, where this raises (object_store_errors says what)."""
    try:
        return bool(fs.info(remote)["type"] == "file")
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def object_store_errors(service: str, location: str, key: str, missing: str) -> Iterator[None]:
    """An object store's failures as farm's: a missing key (``missing`` says so) is the caller's
    problem, and so is access denied; the store or the way to it failing (connection, throttling,
    a service error) is the store being unavailable, and retried. Anything else is a programming error and
    stays what it is: retrying a bug only repeats it."""
    try:
        yield
    except FarmError:
        raise
    except FileNotFoundError as exc:
        raise FarmError(missing) from exc
    except PermissionError as exc:  # denied: no retry can help, the credentials must change
        denied = f"{service} {location}: access denied on {key}: check its credentials (AWS_*)"
        raise UsageError(denied) from exc
    except Exception as exc:
        if not is_transport_error(exc):
            raise
        message = f"{service} {location} failed on {key}: {first_line(exc)}"
        raise ServiceUnavailableError(message, service=service) from exc


def is_transport_error(exc: BaseException) -> bool:
    """Whether an object store's exception is the store (or the network to it) failing: an OSError
    (s3fs turns S3's errors into those; connection resets and timeouts are too), or an exception
    of the storage client libraries (botocore, aiohttp, ...), which share no base to name."""
    if isinstance(exc, OSError):
        return True
    return any(cls.__module__.partition(".")[0] in TRANSPORT_MODULES for cls in type(exc).__mro__)


def object_filesystem(url: str, named_by: str) -> tuple[Any, str]:
    """The fsspec filesystem of an object store URL and the path of its root in it; ``named_by``
    is the setting or flag that gave the URL, for the error that names it."""
    import fsspec  # imported on first use: the CLI's import cost stays low

    try:
        # A fresh instance: fsspec would otherwise hand back one made under other AWS_* variables.
        fs, root = fsspec.core.url_to_fs(url, skip_instance_cache=True)
    except ImportError as exc:
        needs = exc.name or "s3fs"
        raise ToolchainMissingError(f"{named_by} {url} needs {needs}: pip install 'farm[s3]'") from exc
    except ValueError as exc:
        raise UsageError(f"{named_by} {url}: {first_line(exc)}") from exc
    return fs, root.rstrip("/")


def checked_key(key: str) -> str:
    """A key stays inside the store: relative, and no ``..`` (keys carry user-given file names)."""
    parts = PurePosixPath(key).parts
    if not parts or PurePosixPath(key).is_absolute() or ".." in parts or "\\" in key:
        raise UsageError(f"artifact key {key!r} would leave the artifact store")
    return key


def fsync_file(path: Path) -> None:
    """Flush a file's bytes to disk, before it is renamed into place."""
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def copy_atomically(source: Path, final: Path) -> None:
    """Copy a file or folder to ``final`` under a staging name of its own, then rename it into
    place: a reader never sees half a model, a crash leaves only a temporary name behind, and
    writers racing on one key (two clients submitting the same SavedModel) never delete each
    other's copy."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    try:
        if source.is_dir():
            shutil.copytree(source, staging)
            _publish_folder(staging, final)
        else:
            shutil.copyfile(source, staging)
            fsync_file(staging)
            os.replace(staging, final)
    finally:
        _remove(staging)


PUBLISH_TRIES = 20
_TAKEN = {errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR}


def _publish_folder(staging: Path, final: Path) -> None:
    """Rename a staged folder to its final name; the caller removes what is left of ``staging``.

    A folder cannot be renamed over one that holds files. One already there with the same content
    (keys under a sha256: the same model stored twice) is kept as it is, and the staging dropped;
    one with other content (a variant built again) is renamed aside first and removed after, so
    the key is briefly absent, never partial. A writer that finds the final name gone meanwhile
    (another moved it aside) tries again.
    """
    for _ in range(PUBLISH_TRIES):
        try:
            os.rename(staging, final)
            return
        except OSError as exc:
            if exc.errno not in _TAKEN:
                raise
        aside = final.with_name(f".{final.name}.{uuid.uuid4().hex}.old")
        try:
            if sha256_of(final) == sha256_of(staging):
                return
            os.rename(final, aside)
        except FileNotFoundError:
            continue
        _remove(aside)
    raise OSError(f"could not publish {final}: other writers kept replacing it")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
