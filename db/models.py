"""Tables of the job store. A conversion Job has one Task per hardware class; a Task yields
Variants; a Variant has BenchmarkResults (one per measured batch size). An inference Job has
Shards: row ranges of its dataset, each scored by whichever hardware class claims it first."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Column, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return uuid.uuid4().hex[:12]


class TaskState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED)


class TaskKind(str, enum.Enum):
    CONVERT = "convert"
    INFER = "infer"


class ShardState(str, enum.Enum):
    PENDING = "pending"  # waiting for a lane of any hardware class to claim it
    RUNNING = "running"  # claimed under a lease (the Celery id of the message scoring it)
    DONE = "done"  # its part is in place under the final name, with rows and checksum recorded
    FAILED = "failed"  # bad data, or its worker died on every attempt
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self is not ShardState.PENDING and self is not ShardState.RUNNING


class Job(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    kind: str = Field(max_length=32)
    model_name: str = Field(max_length=255)
    model_key: str = Field(max_length=512, description="Artifact key of the submitted model.")
    model_sha256: str = Field(index=True, max_length=64)
    model_format: str = Field(max_length=32)
    inputs: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    outputs: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    options: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSON, nullable=False, server_default="{}"),
        description="ConvertOptions or InferOptions (farm/core/jobspec.py), by kind.",
    )
    created_at: datetime = Field(default_factory=utcnow, index=True)
    cancelled_at: datetime | None = Field(default=None, description="When `farm cancel` stopped it.")


class Task(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    job_id: str = Field(foreign_key="job.id", index=True, max_length=32)
    hardware: str = Field(max_length=32)
    kind: str = Field(max_length=32)
    # A plain string column, not a database enum: new states need no ALTER TYPE on PostgreSQL.
    state: str = Field(default=TaskState.QUEUED.value, sa_column=Column(String(16), nullable=False))
    attempts: int = 0
    worker: str | None = Field(default=None, max_length=255)
    celery_id: str | None = Field(default=None, max_length=64, description="Of the message the client sent.")
    lease: str | None = Field(
        default=None,
        max_length=64,
        description="Celery id of the delivery holding it: only that delivery records and finishes it.",
    )
    error: str | None = Field(default=None, sa_column=Column(Text))
    warnings: list[str] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False, server_default="[]"),
        description="What went wrong without failing the task: variants that failed verification.",
    )
    queued_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Variant(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="job.id", index=True, max_length=32)
    task_id: str = Field(foreign_key="task.id", index=True, max_length=32)
    hardware: str = Field(max_length=32)
    backend: str = Field(default="", max_length=32, description="Its backend; 'native' for the baseline.")
    format: str = Field(max_length=32)
    precision: str = Field(max_length=16)
    cache_key: str = Field(default="", index=True, max_length=64)
    toolchain: str = Field(default="", max_length=512)
    reused_from: int | None = Field(default=None, description="The variant this one is a cached copy of.")
    build_s: float = Field(default=0.0, description="Seconds to convert and verify it.")
    benchmark_s: float = Field(default=0.0, description="Seconds its benchmark took.")
    artifact_key: str = Field(max_length=512)
    sha256: str = Field(max_length=64)
    size_bytes: int
    passed: bool
    failure: str | None = Field(
        default=None, sa_column=Column(Text), description="Why it failed verification."
    )
    gate: str = Field(
        default="", max_length=16, description="The rule that judged it: tolerance, agreement, accuracy."
    )
    policy: str = Field(default="", max_length=16, description="Version of the verification policy.")
    verified_on: str = Field(
        default="", max_length=16, description="synthetic, calibration (held out) or eval."
    )
    max_abs_error: float
    max_rel_error: float
    mean_error: float = Field(default=0.0, description="Mean |error| over the output's scale.")
    nan_count: int
    inf_count: int
    top1_agreement: float | None = None
    accuracy: float | None = Field(default=None, description="On the labelled held-out samples.")
    reference_accuracy: float | None = Field(default=None, description="The original's, same samples.")
    atol: float
    rtol: float
    min_top1: float = 0.0
    max_mean_error: float = 0.0
    max_accuracy_drop: float = 0.0
    verify_samples: int = 0
    verification: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False), description="Numbers per output."
    )
    notes: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    details: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSON, nullable=False, server_default="{}"),
        description="Backend facts, e.g. the GPU a TensorRT engine is bound to.",
    )
    signature: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSON, nullable=False, server_default="{}"),
        description="The model's inputs (name, shape, dtype) and output names, as batch scoring feeds it.",
    )
    created_at: datetime = Field(default_factory=utcnow)


class BenchmarkResult(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    variant_id: int = Field(foreign_key="variant.id", index=True)
    host: str = Field(max_length=255)
    hardware: str = Field(max_length=255, description="What the host's hardware is, in words.")
    runtime: str = Field(max_length=64)
    batch_size: int
    p50_ms: float
    p95_ms: float
    p99_ms: float = 0.0
    throughput_per_s: float
    runs: int
    stable: bool = Field(
        default=False, description="Three timing windows (or paired ratios) agreed within 10%."
    )
    # Timed side by side with the native baseline (none for the baseline itself): its windows
    # alternated with this variant's, and the speedup is the median of the paired ratios.
    baseline_p50_ms: float | None = None
    baseline_throughput_per_s: float | None = None
    speedup: float | None = None
    speedup_low: float | None = None
    speedup_high: float | None = None
    pairs: int = 0
    created_at: datetime = Field(default_factory=utcnow)


class Shard(SQLModel, table=True):
    """Rows [start, stop) of an inference job's dataset, scored into one output part."""

    __table_args__ = (UniqueConstraint("job_id", "index"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="job.id", index=True, max_length=32)
    index: int = Field(description="Its number: the output part part-<index>.parquet.")
    start: int
    stop: int
    state: str = Field(default=ShardState.PENDING.value, sa_column=Column(String(16), nullable=False))
    attempts: int = 0
    lease: str | None = Field(default=None, max_length=64, description="Celery id of the holding message.")
    hardware: str | None = Field(default=None, max_length=32)
    worker: str | None = Field(default=None, max_length=255)
    variant_id: int | None = None
    rows: int = Field(default=0, description="Rows in its part, once done.")
    sha256: str | None = Field(default=None, max_length=64, description="Of its part, once done.")
    seconds: float = Field(
        default=0.0, description="Reading, scoring and writing, by the attempt that finished."
    )
    error: str | None = Field(default=None, sa_column=Column(Text))
    started_at: datetime | None = None
    finished_at: datetime | None = None
