"""A conversion task's lease, on SQLite and PostgreSQL: the Celery id of the delivery that claimed
it. A redelivery of that same message takes the task up again; any other live delivery does not,
and only the holder records variants or finishes the task."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlmodel import Session

from db import store
from db.engine import session_scope, upgrade_schema
from db.models import Job, Task, TaskState, Variant


def _task(database_url: str) -> str:
    upgrade_schema(database_url)
    job = Job(
        kind="convert",
        model_name="m.onnx",
        model_key="models/x/m.onnx",
        model_sha256="x" * 64,
        model_format="onnx",
    )
    with session_scope(database_url) as session:
        [task] = store.create_job(session, job, ["cpu"], "convert")
    return task.id


def _read(database_url: str, task_id: str) -> Task:
    with session_scope(database_url) as session:
        return session.get_one(Task, task_id)


def test_a_running_task_is_not_claimed_by_another_live_delivery(database_url: str) -> None:
    task_id = _task(database_url)
    with session_scope(database_url) as session:
        first = store.claim_task(session, task_id, "cpu@a", lease="celery-a")
    assert first is not None and first[1].lease == "celery-a"
    with session_scope(database_url) as session:
        assert store.claim_task(session, task_id, "cpu@b", lease="celery-b") is None
    task = _read(database_url, task_id)
    assert (task.state, task.lease, task.worker, task.attempts) == ("running", "celery-a", "cpu@a", 1)


def test_a_redelivery_of_the_same_message_takes_the_task_up_again(database_url: str) -> None:
    task_id = _task(database_url)
    with session_scope(database_url) as session:
        assert store.claim_task(session, task_id, "cpu@a", lease="celery-a") is not None
    # Its worker died; the broker hands the same message (same Celery id) to another worker.
    with session_scope(database_url) as session:
        again = store.claim_task(session, task_id, "cpu@b", lease="celery-a")
    assert again is not None
    task = _read(database_url, task_id)
    assert (task.state, task.lease, task.worker, task.attempts) == ("running", "celery-a", "cpu@b", 2)


def test_only_the_lease_holder_finishes_the_task(database_url: str) -> None:
    task_id = _task(database_url)
    with session_scope(database_url) as session:
        store.claim_task(session, task_id, "cpu@a", lease="celery-a")
    with session_scope(database_url) as session:
        assert not store.finish_task(session, task_id, TaskState.FAILED, "not mine", lease="celery-b")
    assert _read(database_url, task_id).state == TaskState.RUNNING
    with session_scope(database_url) as session:
        assert store.finish_task(session, task_id, TaskState.SUCCEEDED, warnings=["w"], lease="celery-a")
    with session_scope(database_url) as session:  # finished: the holder cannot finish it twice either
        assert not store.finish_task(session, task_id, TaskState.FAILED, "late", lease="celery-a")
        assert store.claim_task(session, task_id, "cpu@a", lease="celery-a") is None
    task = _read(database_url, task_id)
    assert (task.state, task.error, task.warnings) == ("succeeded", None, ["w"])
    assert task.finished_at is not None


def test_variants_are_recorded_only_while_holding_the_lease(database_url: str) -> None:
    task_id = _task(database_url)
    with session_scope(database_url) as session:
        store.claim_task(session, task_id, "cpu@a", lease="celery-a")
    with session_scope(database_url) as session:
        assert not store.holds_task(session, task_id, "celery-b")
        assert store.holds_task(session, task_id, "celery-a")
        session.add(_variant(session, task_id))
    with session_scope(database_url) as session:
        store.finish_task(session, task_id, TaskState.SUCCEEDED, lease="celery-a")
    with session_scope(database_url) as session:
        assert not store.holds_task(session, task_id, "celery-a")  # finished: nothing more recorded
        assert len(store.variants_of_task(session, task_id)) == 1


def test_a_task_never_sent_is_failed_without_a_lease(database_url: str) -> None:
    # The client fails the tasks the broker refused: no delivery ever held them.
    task_id = _task(database_url)
    with session_scope(database_url) as session:
        store.fail_unsent_tasks(session, [task_id], "could not be queued")
    task = _read(database_url, task_id)
    assert (task.state, task.error, task.lease) == ("failed", "could not be queued", None)


def test_of_many_live_deliveries_racing_exactly_one_builds(database_url: str) -> None:
    """Deliveries with different Celery ids claiming at once: one holds the task, the others
    neither claim it nor finish it, and the holder's finish lands."""
    task_id = _task(database_url)
    deliveries = [f"celery-{i}" for i in range(6)]
    start = threading.Barrier(len(deliveries))
    finished: list[str] = []

    def deliver(lease: str) -> None:
        start.wait()
        with session_scope(database_url) as session:
            claimed = store.claim_task(session, task_id, f"cpu@{lease}", lease=lease)
        with session_scope(database_url) as session:
            state = TaskState.SUCCEEDED if claimed else TaskState.FAILED
            if store.finish_task(session, task_id, state, None if claimed else "a rival", lease=lease):
                finished.append(lease)

    with ThreadPoolExecutor(len(deliveries)) as pool:
        for future in [pool.submit(deliver, lease) for lease in deliveries]:
            future.result()
    task = _read(database_url, task_id)
    assert finished == [task.lease]
    assert (task.state, task.attempts, task.error) == ("succeeded", 1, None)


def _variant(session: Session, task_id: str) -> Variant:
    task = session.get_one(Task, task_id)
    return Variant(
        job_id=task.job_id,
        task_id=task_id,
        hardware="cpu",
        backend="cpu",
        format="onnx",
        precision="fp32",
        artifact_key="variants/a",
        sha256="s" * 64,
        size_bytes=1,
        passed=True,
        max_abs_error=0.0,
        max_rel_error=0.0,
        nan_count=0,
        inf_count=0,
        atol=0.0,
        rtol=0.0,
    )


def test_a_task_requeued_by_its_holder_goes_back_to_queued_saying_why(database_url: str) -> None:
    task_id = _task(database_url)
    with session_scope(database_url) as session:
        store.claim_task(session, task_id, "gpu@a", lease="celery-a")
    with session_scope(database_url) as session:
        assert not store.requeue_task(session, task_id, "celery-b", "not mine")
        assert store.requeue_task(session, task_id, "celery-a", "requeued: gpu@a cannot build it")
    task = _read(database_url, task_id)
    assert (task.state, task.worker, task.error) == ("queued", None, "requeued: gpu@a cannot build it")
    with session_scope(database_url) as session:  # the retried message, on a worker that can
        assert store.claim_task(session, task_id, "gpu@b", lease="celery-a") is not None
    task = _read(database_url, task_id)
    assert (task.state, task.worker, task.error, task.attempts) == ("running", "gpu@b", None, 2)
