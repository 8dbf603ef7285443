"""The error tree says which errors are the input's (fail at once) and which the fleet's (retry):
``retryable`` is True exactly under InfrastructureError, and errors.py's docstring draws every
class with its exit code and that answer."""

from __future__ import annotations

import pickle
import re

import farm.core.errors as errors
from farm.core.errors import FarmError, InfrastructureError, ServiceUnavailableError


def _all_classes() -> list[type[FarmError]]:
    found, todo = [], [FarmError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [cls for cls in found if cls.__module__ == errors.__name__]


def test_only_infrastructure_errors_are_retried() -> None:
    for cls in _all_classes():
        assert cls.retryable is issubclass(cls, InfrastructureError), cls.__name__


def test_the_fleets_errors_are_infrastructure_and_the_inputs_are_not() -> None:
    retried = {cls.__name__ for cls in _all_classes() if cls.retryable}
    assert {
        "ToolchainMissingError",  # the worker's host lacks an extra: another worker may have it
        "ServiceUnavailableError",
        "ArtifactIntegrityError",  # a checksum mismatch from the object store
        "HostResourceError",  # out of memory or disk
    } <= retried
    for user_error in ("UsageError", "ModelError", "CorruptModelError", "ConversionError", "DataError"):
        assert user_error not in retried


def test_the_docstring_draws_every_class_with_its_exit_code_and_retryability() -> None:
    doc = errors.__doc__ or ""
    drawn = {}
    for line in doc.splitlines():
        match = re.search(r"([A-Z]\w+Error)\s+(\d+)\s+(yes|no)\b", line)
        if match:
            drawn[match[1]] = (int(match[2]), match[3] == "yes")
    named = {name for name in re.findall(r"[├└]── (\w+Error)", doc)} | {"FarmError"}
    assert named == {cls.__name__ for cls in _all_classes()}
    for name, (exit_code, retryable) in drawn.items():
        cls = getattr(errors, name)
        assert (cls.exit_code, cls.retryable) == (exit_code, retryable), name


def test_a_service_error_says_which_service_even_after_pickling() -> None:
    error = ServiceUnavailableError("artifact store s3://b failed on k: timeout", service="artifact store")
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.service) == (ServiceUnavailableError, str(error), "artifact store")
