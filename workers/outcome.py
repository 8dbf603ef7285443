"""What a conversion task's outcome is, given the variants it recorded (built or reused).

A hardware class is served when at least one of its variants passed verification: then the task
succeeds, and variants that failed (kept, with their numbers) and precisions that could not be
built are warnings. ``--strict`` turns any such warning into the task's failure. The outcome is
computed from the recorded rows, so a cached resubmission ends as the job it reuses did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from db.models import TaskState, Variant
from farm.core.targets import NATIVE


@dataclass(frozen=True)
class TaskOutcome:
    state: TaskState
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def task_outcome(variants: Sequence[Variant], build_errors: Sequence[str], strict: bool) -> TaskOutcome:
    targets = [v for v in variants if v.backend != NATIVE]
    problems = [
        f"{v.backend} {v.precision} failed verification: {v.failure or 'no reason recorded'}"
        for v in targets
        if not v.passed
    ] + list(build_errors)
    if not any(v.passed for v in targets):
        return TaskOutcome(
            TaskState.FAILED, "no verified variant: " + ("; ".join(problems) or "none was built")
        )
    if strict and problems:
        return TaskOutcome(TaskState.FAILED, "--strict: " + "; ".join(problems))
    return TaskOutcome(TaskState.SUCCEEDED, warnings=problems)
