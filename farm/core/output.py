"""The output folder of a batch-scoring job: one Parquet part per shard, named by the shard's
number so the parts in name order are the input's rows in order; a manifest written when every
shard is done; and an owner file naming the job, so no job writes over another's output unasked.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from farm.core.errors import NotFoundError, UsageError

ROW_COLUMN = "row"  # the input row number of each output row
MANIFEST = "_manifest.json"
OWNER = "_farm_job.json"


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def temporary_part(out: Path, index: int, lease: str) -> Path:
    """Where one attempt writes its part before publishing it under part_name."""
    return out / f".{part_name(index)}.{lease}.tmp"


def output_column(model_output: str) -> str:
    """``probabilities:0`` -> ``probabilities``: the first output of a graph op needs no index."""
    return model_output.removesuffix(":0")


def _is_ours(path: Path) -> bool:
    name = path.name
    return (
        name in (MANIFEST, OWNER)
        or (name.startswith("part-") and name.endswith(".parquet"))
        or (name.startswith(".") and name.endswith(".tmp"))
    )


def check_output(text: str, overwrite: bool) -> Path:
    """The output folder, refused when it cannot be written, is not a folder, holds files that
    are not a farm output, or holds another job's output without ``overwrite``."""
    if "://" in text and not text.startswith("file://"):
        raise UsageError(
            f"--out {text}: write the output to a local or mounted folder (object stores: not yet)"
        )
    out = Path(text.removeprefix("file://")).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        foreign = [p.name for p in out.iterdir() if not _is_ours(p)]
        if foreign or not (out / OWNER).exists():
            raise UsageError(
                f"--out {out}: holds files not from farm ({', '.join(foreign[:3]) or 'no owner'})"
            )
        if not overwrite:
            raise UsageError(f"--out {out}: holds the output of job {owner_of(out)}; --overwrite replaces it")
    existing = next(parent for parent in (out, *out.parents) if parent.exists())
    if not existing.is_dir():
        raise UsageError(f"--out {out}: {existing} is a file, not a folder")
    try:  # a real write, not os.access: root passes every access check, yet not on /proc or a read-only mount
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise UsageError(f"--out {out}: not writable ({existing}: {exc.strerror})") from exc
    return out


def claim_output(out: Path, job_id: str) -> None:
    """Empty the folder of any earlier farm output (check_output allowed it) and mark it this job's."""
    out.mkdir(parents=True, exist_ok=True)
    for path in out.iterdir():
        if _is_ours(path):
            path.unlink()
    (out / OWNER).write_text(json.dumps({"job": job_id}) + "\n")


def owner_of(out: Path) -> str:
    try:
        return str(json.loads((out / OWNER).read_text())["job"])
    except (OSError, ValueError, KeyError):
        return "?"


def read_manifest(out: Path) -> dict:
    try:
        return json.loads((out / MANIFEST).read_text())
    except OSError as exc:
        raise NotFoundError(f"{out}: no {MANIFEST}: the job has not finished every shard") from exc
