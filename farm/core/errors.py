"""farm's exceptions. The CLI turns each into one line on stderr and its exit code.

FarmError                       exit 1
├── UsageError                  exit 2   bad arguments: unknown --hw, malformed --inputs
├── ModelError                  exit 3   the model file itself
│   ├── ModelNotFoundError
│   ├── UnsupportedModelError   not a model format farm reads
│   └── CorruptModelError       looks like a model, does not parse
├── ToolchainMissingError       exit 4   an optional extra is not installed
├── ServiceUnavailableError     exit 5   broker or database cannot be reached
├── NotFoundError               exit 6   no such job
├── ConversionError             exit 7   a backend failed on a model (recorded on the task)
└── DataError                   exit 8   a dataset to score: missing, unreadable, empty, wrong columns
"""

from __future__ import annotations

import sys
from typing import NoReturn

INTERNAL_ERROR_EXIT = 70  # an error farm did not foresee: a bug to report


class FarmError(Exception):
    exit_code = 1


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


class ToolchainMissingError(FarmError):
    exit_code = 4


class ServiceUnavailableError(FarmError):
    exit_code = 5


class NotFoundError(FarmError):
    exit_code = 6


class ConversionError(FarmError):
    exit_code = 7


class DataError(FarmError):
    exit_code = 8


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message: enough for a one-line error, never a traceback."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def exit_in_one_line(message: str, exit_code: int) -> NoReturn:
    """How every farm program refuses: one ``error:`` line on stderr, a non-zero exit."""
    sys.stderr.write(f"error: {message}\n")
    sys.exit(exit_code)
