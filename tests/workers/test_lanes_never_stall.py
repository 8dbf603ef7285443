"""A scoring lane never stalls its job: a lane that steps back for a faster class hands on through
a broker outage like any other lane, and a shard whose variant row is gone ends failed instead of
staying `running`. The task body runs in this process on a real job store and a real Redis."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from pathlib import Path

import pytest
import redis
from celery.result import EagerResult

import workers.scoring  # noqa: F401  (registers farm.infer_shard with every app)
from db import shards
from db.engine import session_scope, upgrade_schema
from db.models import Job, ShardState, TaskState
from farm.core.dataset import map_inputs, open_dataset
from farm.core.jobspec import InferOptions
from farm.core.redisserver import start_redis
from farm.core.settings import FarmSettings
from farm.samples import write_feature_table
from queues.app import FarmCelery, make_app
from queues.names import INFER_TASK, queue_for
from tests.conftest import free_port

FEATURES = [f"f{i}" for i in range(20)]
SIGNATURE = [{"name": "features", "shape": [None, 20], "dtype": "float32"}]
SHARD_ROWS = 1_000

pytestmark = pytest.mark.services  # starts a redis-server of its own


def scoring_job(url: str, tmp_path: Path, variants: dict[str, int], shard_count: int) -> str:
    """A scoring job as submit_infer stores it: options, and shards of SHARD_ROWS rows."""
    upgrade_schema(url)
    data = write_feature_table(tmp_path / "data.parquet", shard_count * SHARD_ROWS)
    dataset = open_dataset(str(data))
    options = InferOptions(
        dataset=dataset,
        out=str(tmp_path / "out"),
        inputs=map_inputs(dataset, SIGNATURE, FEATURES, {}, []),
        outputs=["probabilities"],
        output_columns=["probabilities"],
        variants=variants,
        shard_rows=SHARD_ROWS,
    )
    job = Job(
        kind="infer", model_name="mlp.onnx", model_key="k", model_sha256="s", model_format="onnx",
        options=options.model_dump(),
    )  # fmt: skip
    with session_scope(url) as session:
        session.add(job)
        session.flush()
        ranges = [(i * SHARD_ROWS, (i + 1) * SHARD_ROWS) for i in range(shard_count)]
        shards.create_shards(session, job.id, ranges)
    return job.id


def app_for(tmp_path: Path, broker_url: str, database_url: str) -> FarmCelery:
    return make_app(FarmSettings(home=tmp_path / "home", broker_url=broker_url, database_url=database_url))


def lanes_queued(broker_url: str, hardware: str) -> list[dict]:
    """The lane messages waiting on a class's queue, as the broker holds them."""
    raw = redis.Redis.from_url(broker_url).lrange(queue_for(hardware), 0, -1)
    return [json.loads(message) for message in raw]


def test_a_lane_that_steps_back_hands_on_once_the_broker_is_back(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = scoring_job(sqlite_url, tmp_path, {"cpu": 1, "fpga": 2}, shard_count=20)
    with session_scope(sqlite_url) as session:  # cpu clears 100,000 rows/s and is at work; fpga 100
        fast = shards.claim_shard(session, job_id, "cpu-0", "cpu", "w", 3)
        assert fast and shards.finish_shard(session, fast.id or 0, "cpu-0", SHARD_ROWS, "x", 0.01, 1)
        assert shards.claim_shard(session, job_id, "cpu-1", "cpu", "w", 3)
        slow = shards.claim_shard(session, job_id, "fpga-0", "fpga", "w", 3)
        assert slow and shards.finish_shard(session, slow.id or 0, "fpga-0", SHARD_ROWS, "x", 10.0, 2)
    broker_url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there yet
    app = app_for(tmp_path, broker_url, sqlite_url)
    results: list[EagerResult] = []
    caplog.set_level(logging.WARNING, logger="workers.scoring")

    def lane() -> None:
        results.append(app.tasks[INFER_TASK].apply(args=[job_id, "fpga"], task_id="fpga-1"))

    thread = threading.Thread(target=lane, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while thread.is_alive() and "the broker took no next lane" not in caplog.text:
        assert time.monotonic() < deadline, "the lane neither handed on nor said it waits for the broker"
        time.sleep(0.05)
    assert thread.is_alive(), f"the lane was lost with the broker away: {results[0].result!r}"

    port = int(broker_url.rsplit(":", 1)[1].split("/")[0])
    broker = start_redis(port, tmp_path / "redis")
    try:
        thread.join(60)
        assert not thread.is_alive(), "the lane did not hand on once the broker was back"
        assert results[0].successful(), results[0].result
        assert str(results[0].result).startswith("stepped back"), results[0].result
        [message] = lanes_queued(broker_url, "fpga")  # the next lane, sent for after the pause
        assert message["headers"]["task"] == INFER_TASK and message["headers"]["eta"]
        assert json.loads(base64.b64decode(message["body"]))[0] == [job_id, "fpga"]
    finally:
        broker.terminate()
        broker.wait(15)
    with session_scope(sqlite_url) as session:  # it claimed nothing
        assert shards.count_in_state(session, job_id, ShardState.RUNNING) == (1, SHARD_ROWS)


def test_a_shard_whose_variant_is_gone_ends_failed_and_the_job_ends(
    sqlite_url: str, redis_url: str, tmp_path: Path
) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    job_id = scoring_job(sqlite_url, tmp_path, {"cpu": 424242}, shard_count=2)  # no such variant row
    app = app_for(tmp_path, redis_url, sqlite_url)

    first = app.tasks[INFER_TASK].apply(args=[job_id, "cpu"], task_id="lane-1")
    assert first.successful(), first.result
    with session_scope(sqlite_url) as session:
        claimed = shards.shards_of(session, job_id)[0]
    assert claimed.state == "failed" and claimed.error, (
        f"the shard claimed without its variant is left {claimed.state}: {first.result!r}"
    )
    [handed_on] = lanes_queued(redis_url, "cpu")  # the job's other shard still gets a lane
    second = app.tasks[INFER_TASK].apply(args=[job_id, "cpu"], task_id=handed_on["headers"]["id"])
    assert second.successful(), second.result

    with session_scope(sqlite_url) as session:
        ended = shards.shards_of(session, job_id)
        state = shards.infer_job_state(session.get_one(Job, job_id), ended)
    assert [s.state for s in ended] == ["failed", "failed"], [(s.state, s.error) for s in ended]
    for shard in ended:
        assert "variant 424242" in (shard.error or ""), shard.error
    assert state is TaskState.FAILED
