"""A scoring job's output, one body against both kinds: a folder, and a prefix on a real
S3-compatible server. The end-to-end test (a worker killed mid-shard, every row once) is
tests/integration/test_infer.py."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from farm.core.errors import NotFoundError, ServiceUnavailableError, UsageError
from farm.core.output import (
    MANIFEST,
    OWNER,
    PROBE,
    FolderOutput,
    ObjectOutput,
    ScoringOutput,
    open_output,
    part_name,
)
from tests.conftest import S3Server, free_port


@pytest.fixture(params=["folder", "s3"])
def output(request: pytest.FixtureRequest, tmp_path: Path) -> ScoringOutput:
    if request.param == "folder":
        return open_output(str(tmp_path / "out"), tmp_path / "scratch")
    server: S3Server = request.getfixturevalue("aws_env")
    return open_output(server.url(f"out-{uuid.uuid4().hex[:8]}"), tmp_path / "scratch")


def _names(output: ScoringOutput) -> set[str]:
    if isinstance(output, FolderOutput):
        return {path.name for path in output.folder.iterdir()}
    assert isinstance(output, ObjectOutput)
    output.fs.invalidate_cache()
    return {key.rsplit("/", 1)[-1] for key in output.fs.find(output.root)}


def test_a_part_is_staged_on_this_host_and_published_whole_under_its_final_name(
    output: ScoringOutput, tmp_path: Path
) -> None:
    output.refuse_unusable(overwrite=False)  # empty: usable
    output.claim("job-a")
    assert output.owner() == "job-a" and _names(output) == {OWNER}
    staged = output.staging("job-a", 3, "lease-1")
    staged.write_bytes(b"scores")
    output.publish(staged, 3)
    assert not staged.exists() and _names(output) == {OWNER, part_name(3)}
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    assert output.fetch_part(3, fetched).read_bytes() == b"scores"
    with pytest.raises(NotFoundError, match="has not finished every shard"):
        output.read_manifest()
    dead = output.staging("job-a", 4, "lease-of-a-killed-attempt")
    dead.write_bytes(b"half")
    # Another job's attempt staged at the same place (a lane of a job that took the output over,
    # or of the one it was taken from): not the manifest writer's to clear.
    others = output.staging("job-b", 4, "its-lease")
    others.write_bytes(b"b's part")
    output.write_manifest({"job": "job-a", "rows": 1})
    assert output.has_manifest() and output.read_manifest() == {"job": "job-a", "rows": 1}
    assert not dead.exists() and others.exists()  # the job's dead attempts on this host go, only they
    others.unlink()
    assert _names(output) == {OWNER, part_name(3), MANIFEST}


def test_another_jobs_output_is_replaced_only_when_asked_and_foreign_files_never(
    output: ScoringOutput,
) -> None:
    output.claim("job-a")
    staged = output.staging("job-a", 0, "l")
    staged.write_bytes(b"a's scores")
    output.publish(staged, 0)
    with pytest.raises(UsageError, match=r"holds the output of job job-a; --overwrite replaces it$"):
        output.refuse_unusable(overwrite=False)
    output.refuse_unusable(overwrite=True)
    output.claim("job-b")  # job a's parts go; the mark is b's
    assert output.owner() == "job-b" and _names(output) == {OWNER}
    if isinstance(output, FolderOutput):
        (output.folder / "notes.txt").write_text("mine")
    else:
        assert isinstance(output, ObjectOutput)
        output.fs.pipe_file(f"{output.root}/notes.txt", b"mine")
    with pytest.raises(UsageError, match=r"holds files not from farm \(notes.txt\)"):
        output.refuse_unusable(overwrite=True)


def test_a_bucket_that_does_not_exist_is_refused_at_submit(aws_env: S3Server, tmp_path: Path) -> None:
    output = open_output(f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/out", tmp_path)
    with pytest.raises(UsageError, match=r"--out s3://no-such-bucket-\w+/out: not writable"):
        output.refuse_unusable(overwrite=False)


def test_an_unreachable_store_is_unavailable_not_the_users_fault(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    output = open_output("s3://bucket/out", tmp_path)
    with pytest.raises(ServiceUnavailableError, match="output store s3://bucket/out failed") as raised:
        output.owner()
    assert raised.value.service == "output store" and raised.value.retryable


def test_a_probe_left_by_an_interrupted_submit_does_not_make_the_prefix_foreign(
    aws_env: S3Server, tmp_path: Path
) -> None:
    output = open_output(aws_env.url(f"out-{uuid.uuid4().hex[:8]}"), tmp_path)
    assert isinstance(output, ObjectOutput)
    output.fs.pipe_file(f"{output.root}/{PROBE}0123.tmp", b"")  # a submit killed between put and remove
    output.refuse_unusable(overwrite=False)


def test_an_object_store_farm_has_not_been_tested_on_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--out memory://x: write to a folder or an object store \(s3://"):
        open_output("memory://x", tmp_path)
