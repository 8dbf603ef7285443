"""The Celery application, made from farm's settings by ``make_app`` (never at import time: the
client, each worker and each test make theirs from the settings they were handed).

Conversions are long and precious, so a message is acknowledged only after its task ends
(``acks_late``), put back if the worker process dies (``reject_on_worker_lost``), and a worker
takes one message at a time (prefetch 1). Only JSON crosses the broker: task arguments are ids
and artifact keys, never model bytes.
"""

from __future__ import annotations

from celery import Celery
from kombu.exceptions import KombuError

from farm.core.settings import FarmSettings
from queues.names import INFER_TASK, queue_for


class FarmCelery(Celery):  # Celery is untyped
    """A Celery app that carries the settings it was made from, so tasks read theirs from
    ``self.app.settings`` rather than from the environment."""

    settings: FarmSettings


def make_app(settings: FarmSettings) -> FarmCelery:
    app = FarmCelery("farm", broker=settings.broker_url)
    app.settings = settings
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        event_serializer="json",
        task_ignore_result=True,  # state lives in the job store, not in Celery results
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_time_limit=settings.task_time_limit_s,
        task_soft_time_limit=settings.task_soft_time_limit_s,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        # A task keeps running when the broker goes away: its state and output live in the job
        # store and the artifact store, and a later redelivery of its message finds it finished.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_soft_shutdown_timeout=settings.worker_soft_shutdown_s,
        # Bounded memory over a long run: TensorFlow and converters do not give all memory back.
        worker_max_tasks_per_child=settings.worker_max_tasks_per_child or None,
        worker_max_memory_per_child=settings.worker_max_memory_per_child_mb * 1024 or None,  # KiB
        worker_hijack_root_logger=False,
        task_default_queue="cpu",
        task_create_missing_queues=True,
    )
    return app


def broker_errors(app: Celery) -> tuple[type[BaseException], ...]:
    """What a call to the broker raises when the broker is away: kombu's own errors and the
    transport's (redis-py's ConnectionError is no OSError). Caught by type, never as Exception."""
    connection = app.connection_for_write()
    return (OSError, KombuError, *connection.connection_errors, *connection.channel_errors)


def send_lane(app: Celery, job_id: str, hardware: str, countdown: float | None = None) -> str:
    """Queue one lane of a batch-scoring job on a hardware class's queue; returns its Celery id."""
    return app.send_task(
        INFER_TASK, args=[job_id, hardware], queue=queue_for(hardware), countdown=countdown
    ).id

