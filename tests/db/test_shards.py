from __future__ import annotations

from db import shards
from db.engine import session_scope, upgrade_schema
from db.models import Job, ShardState, TaskState


def _job(url: str, ranges: list[tuple[int, int]]) -> str:
    upgrade_schema(url)
    job = Job(kind="infer", model_name="m", model_key="k", model_sha256="s", model_format="onnx")
    with session_scope(url) as session:
        session.add(job)
        session.flush()
        shards.create_shards(session, job.id, ranges)
    return job.id


def test_each_shard_is_claimed_by_one_lease_and_finished_only_by_it(database_url: str) -> None:
    job_id = _job(database_url, [(0, 10), (10, 20)])
    with session_scope(database_url) as session:
        first = shards.claim_shard(session, job_id, "lease-a", "cpu", "w1", 3)
        second = shards.claim_shard(session, job_id, "lease-b", "fpga", "w2", 3)
        assert shards.claim_shard(session, job_id, "lease-c", "cpu", "w3", 3) is None  # nothing left
    assert first and second and first.index == 0 and second.index == 1
    with session_scope(database_url) as session:
        assert not shards.finish_shard(session, first.id or 0, "lease-b", 10, "x", 1.0, 1)  # not its lease
        assert shards.finish_shard(session, first.id or 0, "lease-a", 10, "x", 1.0, 1)
        assert not shards.finish_shard(session, first.id or 0, "lease-a", 10, "x", 1.0, 1)  # once only
        assert shards.count_in_state(session, job_id, ShardState.DONE) == (1, 10)


def test_a_redelivered_lease_takes_up_its_shard_until_the_attempts_run_out(database_url: str) -> None:
    job_id = _job(database_url, [(0, 10), (10, 20)])
    with session_scope(database_url) as session:
        claims = []
        for _ in range(3):
            shard = shards.claim_shard(session, job_id, "lease-a", "cpu", "w", 2)
            claims.append((shard.index, shard.attempts) if shard else None)
    assert claims == [(0, 1), (0, 2), (1, 1)]  # the third delivery gives up on shard 0
    with session_scope(database_url) as session:
        found = shards.shards_of(session, job_id)
        assert (found[0].state, found[0].error) == (
            "failed",
            "gave up after 2 attempts: the worker died each time",
        )


def test_cancel_stops_pending_shards_and_retry_reopens_all_but_the_done(database_url: str) -> None:
    job_id = _job(database_url, [(0, 10), (10, 20), (20, 30)])
    with session_scope(database_url) as session:
        running = shards.claim_shard(session, job_id, "lease-a", "cpu", "w", 3)
        assert running is not None
        shards.finish_shard(session, running.id or 0, "lease-a", 10, "x", 1.0, 1)
        assert shards.cancel_job(session, session.get_one(Job, job_id)) == 2
        assert shards.claim_shard(session, job_id, "lease-b", "cpu", "w", 3) is None
    with session_scope(database_url) as session:
        job = session.get_one(Job, job_id)
        assert shards.infer_job_state(job, shards.shards_of(session, job_id)) is TaskState.CANCELLED
        assert shards.reopen_unfinished(session, job) == 2
        assert shards.infer_job_state(job, shards.shards_of(session, job_id)) is TaskState.RUNNING
