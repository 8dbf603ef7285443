"""Raw Celery for benchmarks/soak.py: one no-op task on Redis, configured as the farm's app is
(JSON only, acks_late, reject on worker lost, prefetch 1), counting its runs in Redis."""

from __future__ import annotations

import os

import redis
from celery import Celery

app = Celery("noop", broker=os.environ.get("SOAK_BROKER", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)
_counter = redis.Redis.from_url(app.conf.broker_url)


@app.task(name="noop")
def noop() -> None:
    _counter.incr(os.environ.get("SOAK_COUNTER", "soak-noop"))
