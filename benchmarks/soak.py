"""Soak: many cached conversion submissions and many tiny inference shards across several worker
processes; every job must end and every count must add up. Prints the farm's tasks/s beside raw
Celery's no-op rate on the same machine and broker settings, and the farm's overhead per task.

    .venv/bin/python benchmarks/soak.py                        # 1,000 submissions, 10,000 shards
    .venv/bin/python benchmarks/soak.py --submissions 200 --shards 1000 --workers 2

tests/integration/test_soak.py runs the same load, smaller.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pyarrow.parquet as pq  # noqa: E402
import redis  # noqa: E402

from benchmarks.privatefarm import free_port  # noqa: E402
from db import shards, store  # noqa: E402
from db.engine import session_scope  # noqa: E402
from db.models import TaskState  # noqa: E402
from farm.client.infer import InferRequest, submit_infer  # noqa: E402
from farm.client.jobs import ConvertRequest, submit_convert  # noqa: E402
from farm.core.settings import FarmSettings  # noqa: E402
from farm.core.waiting import TimedOut, wait_until  # noqa: E402
from farm.samples import write_feature_table, write_mlp_onnx  # noqa: E402
from queues.app import make_app  # noqa: E402

WAIT_S = 3600


@dataclass
class SoakResult:
    submissions: int
    shards: int
    workers: int
    conversion_tasks_per_s: float
    shard_tasks_per_s: float
    jobs_succeeded: int
    variants_reused: int
    rows_scored_once: bool


def run_load(env: dict[str, str], work: Path, submissions: int, shard_count: int) -> SoakResult:
    """The load, against workers already serving cpu in ``env``; raises AssertionError when any
    count does not add up."""
    settings = FarmSettings(
        home=Path(env["FARM_HOME"]), broker_url=env["FARM_BROKER_URL"], database_url=env["FARM_DATABASE_URL"]
    )
    app = make_app(settings)
    model = write_mlp_onnx(work / "mlp.onnx")
    asked = ConvertRequest(model=model, hardware="cpu", precisions="fp32")
    first = submit_convert(settings, app, asked)  # built once; every later submission is cached
    _wait_converted(settings, [first.id])

    started = time.perf_counter()
    job_ids = [submit_convert(settings, app, asked).id for _ in range(submissions)]
    states = _wait_converted(settings, job_ids)
    conversion_s = time.perf_counter() - started
    with session_scope(settings.database_url) as session:
        variants = [store.variants_of(session, job_id) for job_id in job_ids]
    reused = sum(1 for job in variants for v in job if v.reused_from is not None)
    assert states == [TaskState.SUCCEEDED] * submissions, {s: states.count(s) for s in set(states)}
    assert all(len(job) == 2 for job in variants) and reused == 2 * submissions, "variants lost or doubled"

    data = write_feature_table(work / "rows.parquet", shard_count, row_group_rows=shard_count)
    request = InferRequest(
        source=first.id, data=str(data), out=str(work / "scores"), hardware="cpu", columns=FEATURES,
        keep=["id"], shard_rows=1, overwrite=True,
    )  # fmt: skip
    started = time.perf_counter()
    scoring = submit_infer(settings, app, request, convert_first=_no_conversion)
    done = _wait_scored(settings, scoring.job.id)
    scoring_s = time.perf_counter() - started
    assert [s.state for s in done] == ["done"] * shard_count, "a shard did not end done"
    assert all(s.attempts == 1 for s in done), "a shard ran twice"
    scored = pq.read_table(work / "scores").column("id").to_pylist()
    once = sorted(scored) == sorted(pq.read_table(data).column("id").to_pylist())
    assert once, "a row is missing or duplicated in the output"
    return SoakResult(
        submissions, shard_count, 0, submissions / conversion_s, shard_count / scoring_s,
        states.count(TaskState.SUCCEEDED), reused, once,
    )  # fmt: skip


FEATURES = [f"f{i}" for i in range(20)]


def _no_conversion(*_: object) -> str:
    raise AssertionError("the soak scores a finished conversion job")


def _wait_converted(settings: FarmSettings, job_ids: list[str]) -> list[TaskState]:
    """Every job's state once all have finished, or as they stand after WAIT_S."""

    def states() -> list[TaskState]:
        with session_scope(settings.database_url) as session:
            return [store.job_state(store.tasks_of(session, job_id)) for job_id in job_ids]

    with contextlib.suppress(TimedOut):
        wait_until(lambda: all(s.finished for s in states()), WAIT_S, "conversions finished", 0.2)
    return states()


def _wait_scored(settings: FarmSettings, job_id: str) -> list:
    """The job's shards once it has finished, or as they stand after WAIT_S."""

    def found() -> tuple[list, bool]:
        with session_scope(settings.database_url) as session:
            shards_now = shards.shards_of(session, job_id)
            return shards_now, shards.infer_job_state(store.get_job(session, job_id), shards_now).finished

    with contextlib.suppress(TimedOut):
        wait_until(lambda: found()[1], WAIT_S, f"job {job_id} finished", 0.2)
    return found()[0]


def start_workers(env: dict[str, str], count: int) -> list[subprocess.Popen]:
    home = Path(env["FARM_HOME"])
    return [
        subprocess.Popen(
            [sys.executable, "-m", "farm", "worker", "--hw", "cpu", "--name", f"soak{i}@%h"],
            env=env,
            stdout=(home / f"soak-worker-{i}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for i in range(count)
    ]


def raw_celery_noop_rate(broker_url: str, tasks: int, processes: int) -> float:
    """Raw Celery with Redis, configured as the farm is (JSON, acks_late, prefetch 1): no-op
    tasks per second end to end, sent from here and counted in Redis by the worker."""
    counter = f"soak-noop-{os.getpid()}"
    os.environ.update(SOAK_BROKER=broker_url, SOAK_COUNTER=counter)  # the app below reads them too
    env = dict(os.environ)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "benchmarks.noop_app", "worker", "-c", str(processes),
         "--without-mingle", "--without-gossip", "-Q", "noop", "--loglevel", "WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        from benchmarks.noop_app import app, noop

        client = redis.Redis.from_url(broker_url)
        client.delete(counter)
        noop.apply_async(queue="noop")  # warm: wait until the worker answers
        _wait_count(client, counter, 1)
        started = time.perf_counter()
        for _ in range(tasks):
            noop.apply_async(queue="noop")
        _wait_count(client, counter, tasks + 1)
        app.close()
        return tasks / (time.perf_counter() - started)
    finally:
        worker.terminate()
        worker.wait(30)


def _wait_count(client: redis.Redis, key: str, target: int) -> None:
    deadline = time.monotonic() + 600
    while int(client.get(key) or 0) < target:
        assert time.monotonic() < deadline, "the no-op worker stopped counting"
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=1000)
    parser.add_argument("--shards", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes, one pool process each")
    parser.add_argument("--noop-tasks", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="farm-soak-") as folder:
        home = Path(folder)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
        env.update(
            FARM_HOME=str(home), FARM_BROKER_URL=f"redis://127.0.0.1:{port}/0",
            FARM_DATABASE_URL=f"sqlite:///{home / 'farm.db'}", FARM_CONFIG=str(home / "absent.toml"),
            FARM_BENCH_SECONDS="0.2", FARM_BENCH_WINDOW_S="0.02", FARM_BENCH_MAX_BATCH="4",
        )  # fmt: skip
        subprocess.run([sys.executable, "-m", "farm", "up", "--no-workers"], env=env, check=True)
        workers = start_workers(env, args.workers)
        try:
            time.sleep(5)
            result = run_load(env, home, args.submissions, args.shards)
            result.workers = args.workers
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(60)
        raw = raw_celery_noop_rate(env["FARM_BROKER_URL"], args.noop_tasks, args.workers)
        subprocess.run([sys.executable, "-m", "farm", "down"], env=env, check=False)
    overhead_ms = {
        "conversion": 1000 / result.conversion_tasks_per_s - 1000 / raw,
        "shard": 1000 / result.shard_tasks_per_s - 1000 / raw,
    }
    print(
        json.dumps(
            {**asdict(result), "raw_celery_noop_tasks_per_s": raw, "overhead_ms": overhead_ms}, indent=2
        )
    )
    print(
        f"cached conversions {result.conversion_tasks_per_s:.1f}/s, "
        f"1-row shards {result.shard_tasks_per_s:.1f}/s, raw Celery no-op {raw:.0f}/s: the farm adds "
        f"{overhead_ms['conversion']:.1f} ms per cached conversion, {overhead_ms['shard']:.1f} ms per shard"
    )


if __name__ == "__main__":
    main()
