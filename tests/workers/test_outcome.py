"""A task's outcome from the variants it recorded: served when one verified variant exists."""

from __future__ import annotations

from db.models import TaskState, Variant
from workers.outcome import task_outcome


def variant(backend: str, precision: str, passed: bool, failure: str | None = None) -> Variant:
    return Variant(
        job_id="j", task_id="t", hardware="cpu", backend=backend, format="onnx", precision=precision,
        artifact_key="k", sha256="s", size_bytes=1, passed=passed, failure=failure, max_abs_error=0.0,
        max_rel_error=0.0, nan_count=0, inf_count=0, atol=0.0, rtol=0.0,
    )  # fmt: skip


NATIVE = variant("native", "fp32", True)
GOOD_FP32 = variant("cpu", "fp32", True)
BAD_INT8 = variant(
    "cpu", "int8", False, "accuracy 85.00% is 12.00 points below the original's 97.00% (at most 1)"
)


def test_a_failed_variant_beside_a_verified_one_is_a_warning() -> None:
    outcome = task_outcome([NATIVE, GOOD_FP32, BAD_INT8], [], strict=False)
    assert outcome.state is TaskState.SUCCEEDED and outcome.error is None
    assert outcome.warnings == [f"cpu int8 failed verification: {BAD_INT8.failure}"]


def test_strict_turns_any_warning_into_the_tasks_failure() -> None:
    outcome = task_outcome(
        [NATIVE, GOOD_FP32, BAD_INT8], ["cpu fp16: TFLite fp16 conversion failed"], strict=True
    )
    assert outcome.state is TaskState.FAILED and outcome.warnings == []
    assert outcome.error is not None and outcome.error.startswith("--strict: cpu int8 failed verification")
    assert "TFLite fp16 conversion failed" in outcome.error
    assert task_outcome([NATIVE, GOOD_FP32], [], strict=True).state is TaskState.SUCCEEDED


def test_no_verified_variant_fails_the_task_and_the_baseline_does_not_count() -> None:
    outcome = task_outcome([NATIVE, BAD_INT8], [], strict=False)
    assert outcome.state is TaskState.FAILED
    assert outcome.error == f"no verified variant: cpu int8 failed verification: {BAD_INT8.failure}"
    assert task_outcome([NATIVE], [], strict=False).error == "no verified variant: none was built"
