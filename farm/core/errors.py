"""farm's exceptions. The CLI turns each into one line on stderr and its exit code. A worker
fails a task at once on an error that is not ``retryable`` (the model's, the data's or the
request's fault: a retry would fail the same way), and retries it, with backoff, on one that is
(a service or the worker's host is at fault: a later try, or another worker, may succeed).

FarmError                         exit  retryable
├── UsageError                    2     no    bad arguments: unknown --hw, malformed --inputs
├── ModelError                    3     no    the model file itself
│   ├── ModelNotFoundError
│   ├── UnsupportedModelError           not a model format farm reads
│   └── CorruptModelError               does not parse: a corrupt or malformed file
├── NotFoundError                 6     no    no such job
├── ConversionError               7     no    a backend failed on a model (recorded per variant)
├── DataError                     8     no    a dataset to score: missing, unreadable, empty, wrong columns
└── InfrastructureError           5     yes   the fleet is at fault, not the input
    ├── ToolchainMissingError     4     yes   an optional extra is not installed (on a worker: the
    │                                         task goes back to its queue for a worker that has it)
    ├── ServiceUnavailableError   5     yes   the database, the broker or the artifact store cannot
    │                                         be reached (``service`` says which)
    ├── ArtifactIntegrityError    5     yes   an artifact's bytes do not match their sha256
    └── HostResourceError         5     yes   the worker's host ran out of memory or disk

``retryable`` is True exactly for InfrastructureError and its subclasses. Anything that is not a
FarmError is a programming error: an "internal error" (exit 70), never retried.
"""

from __future__ import annotations

import sys
from typing import NoReturn

INTERNAL_ERROR_EXIT = 70  # an error farm did not foresee: a bug to report


class FarmError(Exception):
    exit_code = 1
    retryable = False  # the input's fault: fail at once


class UsageError(FarmError):
    exit_code = 2


class ModelError(FarmError):
    exit_code = 3


class ModelNotFoundError(ModelError):
    pass


class UnsupportedModelError(ModelError):
    pass


class CorruptModelError(ModelError):
    pass


class NotFoundError(FarmError):
    exit_code = 6


class ConversionError(FarmError):
    exit_code = 7


class DataError(FarmError):
    exit_code = 8


class InfrastructureError(FarmError):
    exit_code = 5
    retryable = True  # the fleet's fault: a later try, or another worker, may succeed


class ToolchainMissingError(InfrastructureError):
    exit_code = 4


class ServiceUnavailableError(InfrastructureError):
    exit_code = 5

    def __init__(self, message: str, *, service: str) -> None:
        super().__init__(message)
        self.service = service  # "database", "broker" or "artifact store": which one is away

    def __reduce__(self) -> tuple[object, ...]:  # pickled (a pool process's error) with its service
        return _service_unavailable, (str(self), self.service)


def _service_unavailable(message: str, service: str) -> ServiceUnavailableError:
    return ServiceUnavailableError(message, service=service)


class ArtifactIntegrityError(InfrastructureError):
    exit_code = 5


class HostResourceError(InfrastructureError):
    exit_code = 5


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message: enough for a one-line error, never a traceback."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def exit_in_one_line(message: str, exit_code: int) -> NoReturn:
    """How every farm program refuses: one ``error:`` line on stderr, a non-zero exit."""
    sys.stderr.write(f"error: {message}\n")
    sys.exit(exit_code)
