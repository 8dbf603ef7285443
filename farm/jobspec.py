"""What a job asks for beyond the model: stored with the job, read by the worker."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

_Options = TypeVar("_Options", bound="StoredOptions")


class StoredOptions:
    """A dataclass kept as JSON in Job.options; keys it does not know (from a newer farm) are ignored."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_json(cls: type[_Options], data: dict[str, Any]) -> _Options:
        fields = cls.__dataclass_fields__  # type: ignore[attr-defined]
        return cls(**{key: value for key, value in data.items() if key in fields})


# Thresholds a user may override; None keeps the precision's default (workers/verify.py).
THRESHOLD_NAMES = ("atol", "rtol", "min_top1", "max_mean_error", "max_accuracy_drop")


@dataclass(frozen=True)
class ConvertOptions(StoredOptions):
    precisions: list[str] = field(default_factory=list)  # empty: every precision each backend builds
    calib_key: str | None = None  # artifact key of the --calib file
    calib_sha256: str | None = None
    eval_key: str | None = None  # artifact key of the --eval file (labelled verification samples)
    eval_sha256: str | None = None
    atol: float | None = None
    rtol: float | None = None
    min_top1: float | None = None
    max_mean_error: float | None = None
    max_accuracy_drop: float | None = None  # percentage points
    force: bool = False  # rebuild even when a cached variant matches
    strict: bool = False  # a variant failing verification fails its task

    def threshold_overrides(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in THRESHOLD_NAMES}


@dataclass(frozen=True)
class InferOptions(StoredOptions):
    """A batch-scoring job: which data, which variant per hardware class, where the output goes."""

    dataset: dict[str, Any]  # farm.dataset.Dataset.to_json()
    out: str  # the output folder
    inputs: list[dict[str, Any]]  # farm.dataset.InputMapping.to_json(), one per model input
    outputs: list[str]  # the model's output names, in order
    output_columns: list[str]  # the output column of each, same order
    keep: list[str] = field(default_factory=list)  # columns passed through to the output
    variants: dict[str, int] = field(default_factory=dict)  # hardware class -> serving variant id
    batch_size: int = 256
    shard_rows: int = 0
    source_job: str | None = None  # the conversion job whose variants serve
