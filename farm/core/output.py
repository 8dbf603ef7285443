"""The output of a batch-scoring job: one Parquet part per shard, named by the shard's number so
the parts in name order are the input's rows in order; a manifest written when every shard is
done; and an owner mark naming the job, so no job writes over another's output unasked.

It lives in a local or mounted folder, or under an object-store prefix (``--out s3://bucket/out``,
needs ``farm[s3]``). Either way an attempt scores its shard into a temporary file of its own on
its host and publishes it under the part's final name in one step: a rename in a folder, one
PUT on an object store (whole or absent on S3). A reader never sees half a part.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import uuid
from abc import ABC, abstractmethod
from pathlib import Path, PurePosixPath
from typing import Any

from farm.core.artifacts import fsync_file, is_url, object_filesystem, object_is_file, object_store_errors
from farm.core.errors import FarmError, NotFoundError, UsageError, first_line
from farm.core.settings import FarmSettings

ROW_COLUMN = "row"  # the input row number of each output row
PROBE = ".farm-probe-"  # a test object written and removed at submit: never counted as content
MANIFEST = "_manifest.json"
OWNER = "_farm_job.json"


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def output_column(model_output: str) -> str:
    """``probabilities:0`` -> ``probabilities``: the first output of a graph op needs no index."""
    return model_output.removesuffix(":0")


def is_ours(name: str) -> bool:
    """Whether a file or object name is one a scoring job writes."""
    return (
        name in (MANIFEST, OWNER)
        or (name.startswith("part-") and name.endswith(".parquet"))
        or (name.startswith(".") and name.endswith(".tmp"))
    )


OBJECT_STORES = ("s3://",)  # the object stores a scoring job's output is tested on


def scoring_output(settings: FarmSettings, location: str) -> ScoringOutput:
    """A scoring job's output on this host: parts bound for an object store are staged (and
    fetched back) in this host's cache folder."""
    return open_output(location, settings.cache_dir / "parts")


def open_output(location: str, scratch: Path) -> ScoringOutput:
    """The output at ``location`` (a folder, ``file://`` URL or object store URL). ``scratch`` is
    a folder of this host's where attempts write their parts before publishing them to an object
    store (a folder output keeps them beside the parts)."""
    if location.startswith(OBJECT_STORES):
        return ObjectOutput(location.rstrip("/"), scratch)
    if is_url(location) and not location.startswith("file://"):
        known = ", ".join(f"{scheme}bucket/prefix" for scheme in OBJECT_STORES)
        raise UsageError(f"--out {location}: write to a folder or an object store ({known})")
    return FolderOutput(Path(location.removeprefix("file://")).expanduser().absolute())


class ScoringOutput(ABC):
    location: str  # as InferOptions.out stores it
    poll_s = 0.05  # how often a reader waiting for the manifest looks again

    @abstractmethod
    def refuse_unusable(self, overwrite: bool) -> None:
        """Refuse an output that cannot be written, holds things that are not a farm output, or
        holds another job's output without ``overwrite``."""

    @abstractmethod
    def claim(self, job_id: str) -> None:
        """Remove any earlier farm output (refuse_unusable allowed it) and mark it this job's."""

    @abstractmethod
    def owner(self) -> str | None:
        """The job whose output this is; None when no job has claimed it."""

    @abstractmethod
    def staging(self, job_id: str, index: int, lease: str) -> Path:
        """Where one attempt writes its part, on this host, before publishing it. Named by the job
        too: after `--overwrite` two jobs' attempts may share the place."""

    @abstractmethod
    def publish(self, staged: Path, index: int) -> None:
        """Put a staged part under its final name in one step, and check it is there."""

    @abstractmethod
    def fetch_part(self, index: int, into: Path) -> Path:
        """A readable local path of a published part (downloaded into ``into`` when remote)."""

    @abstractmethod
    def has_manifest(self) -> bool: ...

    @abstractmethod
    def _read_manifest_text(self) -> str: ...

    @abstractmethod
    def _write_manifest_text(self, text: str) -> None: ...

    def read_manifest(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self._read_manifest_text()))
        except FileNotFoundError as exc:
            raise NotFoundError(
                f"{self.location}: no {MANIFEST}: the job has not finished every shard"
            ) from exc

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """The output's table of contents, once every shard is done; attempts of the job that died
        leave their temporary parts behind on their host, and this one's are cleared away."""
        self._write_manifest_text(json.dumps(manifest, indent=1))
        self.remove_dead_attempts(str(manifest["job"]))

    @abstractmethod
    def remove_dead_attempts(self, job_id: str, index: int | None = None, keep: Path | None = None) -> None:
        """Temporary parts of the job's earlier attempts on this host (of part ``index``, or all)."""

    def refuse_others_output(self, overwrite: bool, foreign: list[str]) -> None:
        """What a folder and a prefix refuse alike, given what is in it that no job wrote."""
        owner = self.owner()
        if foreign or owner is None:
            listed = ", ".join(foreign[:3]) or "no owner"
            raise UsageError(f"--out {self.location}: holds files not from farm ({listed})")
        if not overwrite:
            taken = f"--out {self.location}: holds the output of job {owner}; --overwrite replaces it"
            raise UsageError(taken)


class FolderOutput(ScoringOutput):
    """A folder on this host, or one every host mounts at the same path."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.location = str(folder)

    def refuse_unusable(self, overwrite: bool) -> None:
        out = self.folder
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out}: exists and is not a folder")
        if out.is_dir() and any(out.iterdir()):
            self.refuse_others_output(overwrite, [p.name for p in out.iterdir() if not is_ours(p.name)])
        existing = next(parent for parent in (out, *out.parents) if parent.exists())
        if not existing.is_dir():
            raise UsageError(f"--out {out}: {existing} is a file, not a folder")
        # A real write, not os.access: root passes every access check, yet not on /proc or a read-only mount.
        try:
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError as exc:
            raise UsageError(f"--out {out}: not writable ({existing}: {exc.strerror})") from exc

    def claim(self, job_id: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for path in self.folder.iterdir():
            if is_ours(path.name):
                path.unlink()
        (self.folder / OWNER).write_text(json.dumps({"job": job_id}) + "\n")

    def owner(self) -> str | None:
        mark = self.folder / OWNER
        return _job_named_in(mark.read_text()) if mark.exists() else None

    def staging(self, job_id: str, index: int, lease: str) -> Path:
        return self.folder / _temporary_name(job_id, index, lease)

    def publish(self, staged: Path, index: int) -> None:
        final = self.folder / part_name(index)
        try:
            os.replace(staged, final)  # atomic: a reader sees all of the part or none
        except FileNotFoundError as exc:
            gone = f"{staged.name} was removed from {self.folder} before it could be published"
            raise FarmError(gone) from exc
        if not final.is_file():
            raise FarmError(f"{final.name} was gone from {self.folder} right after it was published")

    def fetch_part(self, index: int, into: Path) -> Path:
        return self.folder / part_name(index)

    def has_manifest(self) -> bool:
        return (self.folder / MANIFEST).exists()

    def _read_manifest_text(self) -> str:
        return (self.folder / MANIFEST).read_text()

    def _write_manifest_text(self, text: str) -> None:
        temporary = self.folder / f".{MANIFEST}.{os.getpid()}.tmp"
        temporary.write_text(text)
        fsync_file(temporary)
        os.replace(temporary, self.folder / MANIFEST)

    def remove_dead_attempts(self, job_id: str, index: int | None = None, keep: Path | None = None) -> None:
        _remove_temporaries(self.folder, job_id, index, keep)


class ObjectOutput(ScoringOutput):
    """A prefix in an object store through fsspec (``s3://`` needs ``farm[s3]``), configured by the
    standard variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...) as every S3 tool is.
    Attempts stage their parts in this host's ``scratch`` folder; nothing temporary is ever
    written to the store, so a dead attempt leaves nothing there to clean."""

    poll_s = 0.5  # each look is a request to the store

    def __init__(self, url: str, scratch: Path) -> None:
        self.location = url
        self.fs, self.root = object_filesystem(url, "--out")
        # One scratch folder per output; the names in it carry the job and the attempt's lease.
        self.scratch = scratch / hashlib.sha256(url.encode()).hexdigest()[:16]

    def _key(self, name: str) -> str:
        return f"{self.root}/{name}"

    def _is_file(self, name: str) -> bool:
        self.fs.invalidate_cache()  # another host may have written or removed it since
        return object_is_file(self.fs, self._key(name))

    def _names(self) -> list[str]:
        self.fs.invalidate_cache()  # another host may have written since this process listed
        try:
            return [PurePosixPath(path).relative_to(self.root).as_posix() for path in self.fs.find(self.root)]
        except FileNotFoundError:
            return []

    def refuse_unusable(self, overwrite: bool) -> None:
        with self._errors("the prefix"):
            names = [name for name in self._names() if not name.startswith(PROBE)]
        if names:
            self.refuse_others_output(overwrite, [name for name in names if not is_ours(name)])
        probe = self._key(f"{PROBE}{uuid.uuid4().hex}.tmp")
        with self._errors("a test object"):
            try:  # a real write: a missing bucket or a read-only credential refuses now, not on a worker
                self.fs.pipe_file(probe, b"")
            except FileNotFoundError as exc:
                raise UsageError(f"--out {self.location}: not writable ({first_line(exc)})") from exc
            finally:
                with contextlib.suppress(OSError):
                    self.fs.rm_file(probe)

    def claim(self, job_id: str) -> None:
        with self._errors("the prefix"):
            for name in self._names():
                if is_ours(name):
                    self.fs.rm_file(self._key(name))
            self.fs.pipe_file(self._key(OWNER), (json.dumps({"job": job_id}) + "\n").encode())

    def owner(self) -> str | None:
        with self._errors(OWNER):
            if not self._is_file(OWNER):
                return None
            return _job_named_in(bytes(self.fs.cat_file(self._key(OWNER))).decode())

    def staging(self, job_id: str, index: int, lease: str) -> Path:
        self.scratch.mkdir(parents=True, exist_ok=True)
        return self.scratch / _temporary_name(job_id, index, lease)

    def publish(self, staged: Path, index: int) -> None:
        key = self._key(part_name(index))
        if not staged.is_file():
            raise FarmError(f"{staged.name} was removed from {self.scratch} before it could be published")
        with self._errors(part_name(index)):
            self.fs.put_file(str(staged), key)  # one PUT under the final key
            if not self._is_file(part_name(index)):
                raise FarmError(f"{part_name(index)} was gone from {self.location} right after it was put")
        staged.unlink(missing_ok=True)

    def fetch_part(self, index: int, into: Path) -> Path:
        target = into / part_name(index)
        with self._errors(part_name(index)):
            self.fs.get_file(self._key(part_name(index)), str(target))
        return target

    def has_manifest(self) -> bool:
        with self._errors(MANIFEST):
            return self._is_file(MANIFEST)

    def _read_manifest_text(self) -> str:
        if not self.has_manifest():
            raise FileNotFoundError(MANIFEST)  # read_manifest says what that means
        with self._errors(MANIFEST):
            return bytes(self.fs.cat_file(self._key(MANIFEST))).decode()

    def _write_manifest_text(self, text: str) -> None:
        with self._errors(MANIFEST):
            self.fs.pipe_file(self._key(MANIFEST), text.encode())

    def remove_dead_attempts(self, job_id: str, index: int | None = None, keep: Path | None = None) -> None:
        _remove_temporaries(self.scratch, job_id, index, keep)

    def _errors(self, what: str) -> contextlib.AbstractContextManager[None]:
        return object_store_errors("output store", self.location, what, f"{what} is not in {self.location}")


def _job_named_in(owner_mark: str) -> str:
    try:
        return str(json.loads(owner_mark)["job"])
    except (ValueError, KeyError, TypeError):
        return "?"  # a mark damaged by hand: still a farm output, of no job known


def _temporary_name(job_id: str, index: int, lease: str) -> str:
    return f".{part_name(index)}.{job_id}.{lease}.tmp"


def _remove_temporaries(folder: Path, job_id: str, index: int | None, keep: Path | None) -> None:
    pattern = f".{part_name(index) if index is not None else 'part-*'}.{job_id}.*.tmp"
    if folder.is_dir():
        for leftover in folder.glob(pattern):
            if leftover != keep:
                leftover.unlink(missing_ok=True)
