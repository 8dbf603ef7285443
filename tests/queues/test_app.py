from __future__ import annotations

from farm.core.settings import FarmSettings
from queues.app import make_app
from queues.names import worker_name


def test_only_json_crosses_the_broker_and_work_survives_a_dead_worker() -> None:
    settings = FarmSettings(task_time_limit_s=600)
    conf = make_app(settings).conf
    assert conf.accept_content == ["json"] and conf.result_accept_content == ["json"]
    assert conf.task_serializer == conf.result_serializer == conf.event_serializer == "json"
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_time_limit == 600 and conf.task_soft_time_limit == 540
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.worker_send_task_events


def test_a_pickled_message_is_refused() -> None:
    import pickle

    from kombu.exceptions import ContentDisallowed
    from kombu.serialization import loads

    conf = make_app(FarmSettings()).conf
    payload = pickle.dumps({"evil": True})
    try:
        loads(payload, "application/x-python-serialize", "binary", accept=conf.accept_content)
    except ContentDisallowed:
        return
    raise AssertionError("pickle content was accepted")


def test_worker_names_carry_their_hardware() -> None:
    assert worker_name(["cpu"]) == "cpu@%h"
    assert worker_name(["cpu", "arm"]) == "cpu+arm@%h"
