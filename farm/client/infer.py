"""Client side of batch scoring: check a submission, cut the data into shards, queue the lanes;
cancel, retry, progress and the merged result.

Every check that can refuse a submission runs before anything is written or queued.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from celery import Celery
from sqlmodel import Session

from db import shards, store
from db.engine import ensure_schema, session_scope
from db.models import Job, ShardState, TaskKind, TaskState, Variant
from farm.client.cluster import require_broker
from farm.core.artifacts import copy_atomically, sha256_of
from farm.core.cost import ClassOffer, Objective, Plan, plan_classes, refuse_unpriced
from farm.core.dataset import Dataset, map_inputs, open_dataset
from farm.core.errors import (
    FarmError,
    InfrastructureError,
    NotFoundError,
    ServiceUnavailableError,
    UsageError,
    first_line,
)
from farm.core.jobspec import InferOptions
from farm.core.modelfile import detect_format
from farm.core.output import ROW_COLUMN, ScoringOutput, output_column, scoring_output
from farm.core.settings import FarmSettings
from farm.core.signature import model_inputs
from farm.core.targets import NATIVE, parse_hardware_list, parse_precisions
from farm.core.waiting import TimedOut, wait_until
from queues.app import broker_errors, send_lane

MIN_SHARD_ROWS = 1_000
MAX_SHARD_ROWS = 100_000
SHARDS_PER_JOB = 16  # enough for the classes to share a small job; fewer per-shard costs on a big one


@dataclass(frozen=True)
class InferRequest:
    """What `farm submit infer` was asked, as typed; checked by submit_infer."""

    source: str  # a conversion job id, or a model file
    data: str
    out: str
    hardware: str
    columns: list[str] = field(default_factory=list)
    inputs: dict[str, list[str]] = field(default_factory=dict)  # --input NAME=col1,col2
    keep: list[str] = field(default_factory=list)
    precision: str = ""
    batch_size: int = 256
    shard_rows: int = 0  # 0: chosen from the dataset's size
    overwrite: bool = False
    objective: str = "time"  # --objective: time or cost (farm.core.cost.Objective)
    deadline_s: float | None = None  # --deadline: seconds the job must finish within


def parse_named_inputs(items: list[str]) -> dict[str, list[str]]:
    named = {}
    for item in items:
        name, _, columns = item.partition("=")
        if not name.strip() or not columns.strip():
            raise UsageError(f"--input {item!r}: expected NAME=col1,col2,...")
        named[name.strip()] = [c.strip() for c in columns.split(",") if c.strip()]
    return named


def submit_infer(
    settings: FarmSettings,
    app: Celery,
    asked: InferRequest,
    convert_first: Callable[[Path, list[str], list[str]], str],
) -> Submitted:
    """``convert_first(model, hardware, precisions)`` converts a model file that has no verified
    variants for these classes yet, and returns the conversion job's id (the CLI waits for it)."""
    hardware = parse_hardware_list(asked.hardware)
    pins = parse_precision_pins(asked.precision, hardware)
    objective = parse_objective(asked.objective, asked.deadline_s)
    if objective is Objective.COST:  # before any conversion a model file would need first
        refuse_unpriced({hw: settings.cost_per_hour.get(hw) for hw in hardware})
    dataset = open_dataset(asked.data)
    out = scoring_output(settings, asked.out)
    out.refuse_unusable(asked.overwrite)
    require_broker(settings)
    ensure_schema(settings.database_url)
    _refuse_a_running_owner(settings, out)
    source_job_id = _conversion_job(settings, asked, dataset, hardware, pins, convert_first)
    with session_scope(settings.database_url) as session:
        source_job = store.get_job(session, source_job_id)
        variants = choose_variants(session, source_job, pins)
        speeds = measured_throughput(session, list(variants.values()))
    prices = settings.cost_per_hour
    offers = [ClassOffer(hw, speeds.get(v.id or 0, 0.0), prices.get(hw)) for hw, v in variants.items()]
    plan = plan_classes(offers, dataset.rows, objective, asked.deadline_s)
    variants = {hw: variants[hw] for hw in plan.classes}
    signature = _signature(variants)
    outputs = list(signature["outputs"])
    options = InferOptions(
        dataset=dataset,
        out=out.location,
        inputs=map_inputs(dataset, signature["inputs"], asked.columns, asked.inputs, asked.keep),
        outputs=outputs,
        output_columns=_output_columns(outputs, asked.keep),
        keep=asked.keep,
        variants={hw: v.id or 0 for hw, v in variants.items()},
        serving={hw: f"{v.backend} {v.precision}" for hw, v in variants.items()},
        batch_size=asked.batch_size,
        shard_rows=asked.shard_rows or default_shard_rows(dataset),
        source_job=source_job.id,
        objective=objective.value,
        deadline_s=asked.deadline_s,
        estimate={"seconds": plan.seconds, "cost": plan.cost},
    )
    job = Job(
        kind=TaskKind.INFER.value,
        model_name=source_job.model_name,
        model_key=source_job.model_key,
        model_sha256=source_job.model_sha256,
        model_format=source_job.model_format,
        inputs=signature["inputs"],
        outputs=[{"name": name} for name in outputs],
        options=options.model_dump(),
    )
    _refuse_a_running_owner(settings, out)  # again: a conversion first may have taken minutes
    out.claim(job.id)
    with session_scope(settings.database_url) as session:
        session.add(job)
        shards.create_shards(session, job.id, shard_ranges(dataset.rows, options.shard_rows))
    send_lanes(app, job.id, plan.classes)
    return Submitted(job, plan)


@dataclass(frozen=True)
class Submitted:
    job: Job
    plan: Plan  # the classes that score, the estimate, and the classes left out and why


def parse_objective(text: str, deadline_s: float | None) -> Objective:
    try:
        objective = Objective(text.strip().lower())
    except ValueError:
        known = ", ".join(o.value for o in Objective)
        raise UsageError(f"--objective {text}: not one of {known}") from None
    if deadline_s is not None and deadline_s <= 0:
        raise UsageError(f"--deadline {deadline_s:g}: give the seconds the job may take, more than 0")
    return objective


def _refuse_a_running_owner(settings: FarmSettings, out: ScoringOutput) -> None:
    """``--overwrite`` replaces a finished job's output, never one a job is still writing: its
    parts would go while its lanes still publish there."""
    owner = out.owner()
    if owner is None:
        return
    with session_scope(settings.database_url) as session:
        job = session.get(Job, owner)
        if job is None or job.kind != TaskKind.INFER.value:
            return
        state = shards.infer_job_state(job, shards.shards_of(session, owner))
    if state.finished:
        return
    if job.cancelled_at is not None:
        then = "is cancelled, and its running shards stop at their next batch: --overwrite once they have"
    else:
        then = f"is still {state.value} there: farm cancel {owner} (or let it finish), then --overwrite"
    raise UsageError(f"--out {out.location}: job {owner} {then}")


def _conversion_job(
    settings: FarmSettings,
    asked: InferRequest,
    dataset: Dataset,
    hardware: list[str],
    pins: dict[str, str | None],
    convert_first: Callable[[Path, list[str], list[str]], str],
) -> str:
    """The conversion job whose variants serve: the one named, or for a model file the newest
    with a verified variant on every class asked, or a new one converting it."""
    source = asked.source
    path = Path(source)
    if not path.exists():
        with session_scope(settings.database_url) as session:
            job = session.get(Job, source)
        if job is None:
            raise NotFoundError(f"{source}: neither a model file nor a job id (see `farm jobs`)")
        return source
    sha256 = sha256_of(path)
    with session_scope(settings.database_url) as session:
        for job in store.jobs_of_model(session, sha256, TaskKind.CONVERT.value):
            try:
                choose_variants(session, job, pins)
                return job.id
            except UsageError:
                continue
    _check_columns_fit(path, dataset, asked)  # before a conversion is stored or queued
    pinned = [] if None in pins.values() else sorted({p for p in pins.values() if p})
    return convert_first(path, hardware, pinned)


def _check_columns_fit(model: Path, dataset: Dataset, asked: InferRequest) -> None:
    """Refuse columns that cannot feed a model file's inputs, read here without TensorFlow (the
    checks the variants' signature gets after conversion). Inputs only the worker can read
    (signature.py returns None) are checked once the conversion has finished."""
    specs = model_inputs(model, detect_format(model), [])
    if specs is not None:
        inputs = [{"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype} for spec in specs]
        map_inputs(dataset, inputs, asked.columns, asked.inputs, asked.keep)


def parse_precision_pins(text: str, hardware: list[str]) -> dict[str, str | None]:
    """``--precision int8`` pins every class, ``cpu=fp32,fpga=int8`` each one named; a class
    left unpinned (None) scores with its fastest verified variant."""
    if "=" not in text:
        chosen = parse_precisions(text, hardware)
        if len(chosen) > 1:
            raise UsageError(
                f"--precision pins one precision, not {', '.join(chosen)} (or name one per class)"
            )
        return dict.fromkeys(hardware, chosen[0] if chosen else None)
    pins: dict[str, str | None] = dict.fromkeys(hardware)
    for item in filter(None, (part.strip() for part in text.split(","))):
        hw, _, precision = item.partition("=")
        if hw.strip() not in pins:
            raise UsageError(f"--precision {item}: {hw.strip()!r} is not one of --hw {','.join(hardware)}")
        pins[hw.strip()] = parse_precisions(precision, [hw.strip()])[0]
    return pins


def measured_throughput(session: Session, variants: list[Variant]) -> dict[int, float]:
    """Each variant's best benchmark throughput (rows per second, one machine), by variant id."""
    best: dict[int, float] = {}
    for result in store.benchmarks_of(session, [v.id for v in variants if v.id is not None]):
        best[result.variant_id] = max(best.get(result.variant_id, 0.0), result.throughput_per_s)
    return best


def choose_variants(session: Session, job: Job, pins: dict[str, str | None]) -> dict[str, Variant]:
    """For each hardware class, the verified variant of ``job`` with the best measured throughput
    (of ``precision`` when pinned); refuses a class that has none."""
    if job.kind != TaskKind.CONVERT.value:
        raise UsageError(f"job {job.id} is not a conversion job: name a finished conversion or a model file")
    state = store.job_state(store.tasks_of(session, job.id))
    if not state.finished:
        raise UsageError(f"job {job.id} is still {state.value}: score once the conversion has finished")
    variants = [v for v in store.variants_of(session, job.id) if v.passed and _can_serve(v)]
    speeds = measured_throughput(session, variants)
    chosen = {}
    for hw, precision in pins.items():
        candidates = [
            v for v in variants if v.hardware == hw and (precision is None or v.precision == precision)
        ]
        if not candidates:
            pinned = f" {precision}" if precision else ""
            raise UsageError(f"job {job.id} has no verified{pinned} {hw} variant to score with")
        chosen[hw] = max(candidates, key=lambda v: speeds.get(v.id or 0, 0.0))
    return chosen


def _can_serve(variant: Variant) -> bool:
    """Every verified variant serves; the native model too, once recorded with what loading it
    again takes (a tree ensemble's own predict can beat ONNX Runtime)."""
    return variant.backend != NATIVE or "model_format" in (variant.details or {})


def _signature(variants: dict[str, Variant]) -> dict:
    signature = next(iter(variants.values())).signature
    if not signature.get("inputs"):
        raise UsageError(
            "its variants were built before batch scoring existed: convert the model again with --force"
        )
    return signature


def _output_columns(outputs: list[str], keep: list[str]) -> list[str]:
    columns = [output_column(name) for name in outputs]
    clash = {ROW_COLUMN, *keep} & set(columns)
    if clash or len(set(columns)) != len(columns):
        raise UsageError(
            f"output column {', '.join(sorted(clash)) or 'names'} would be written twice: rename --keep"
        )
    return columns


def default_shard_rows(dataset: Dataset) -> int:
    """About SHARDS_PER_JOB shards, within bounds; whole Parquet row groups where they are even,
    so no two shards decode the same row group."""
    rows = min(MAX_SHARD_ROWS, max(MIN_SHARD_ROWS, math.ceil(dataset.rows / SHARDS_PER_JOB)))
    group = dataset.row_group_rows
    if group and group <= MAX_SHARD_ROWS:
        rows = max(group, (rows // group) * group)  # a smaller shard would still decode a whole group
    return rows


def shard_ranges(total: int, shard_rows: int) -> list[tuple[int, int]]:
    return [(start, min(start + shard_rows, total)) for start in range(0, total, shard_rows)]


def send_lanes(app: Celery, job_id: str, hardware: list[str]) -> None:
    """One lane per class: it multiplies itself onto every idle worker process of its class (see
    workers/scoring.py), so the client needs no count of the workers."""
    try:
        for hw in hardware:
            send_lane(app, job_id, hw)
    except broker_errors(app) as exc:  # the broker went away after answering a ping
        raise ServiceUnavailableError(
            f"the broker took no lanes of job {job_id} ({first_line(exc)}): "
            f"farm retry {job_id} once it is up",
            service="broker",
        ) from exc


# --- after submission ----------------------------------------------------------------------------


def cancel(settings: FarmSettings, job_id: str) -> tuple[int, int]:
    """Cancel a scoring job: returns (pending shards cancelled, running shards that will stop)."""
    ensure_schema(settings.database_url)
    with session_scope(settings.database_url) as session:
        job = _infer_job(session, job_id)
        if job.cancelled_at is not None:
            raise UsageError(f"job {job_id} is already cancelled")
        state = shards.infer_job_state(job, shards.shards_of(session, job_id))
        if state.finished:
            raise UsageError(f"job {job_id} already {state.value}")
        cancelled = shards.cancel_job(session, job)
        running, _ = shards.count_in_state(session, job_id, ShardState.RUNNING)
    return cancelled, running


def retry(settings: FarmSettings, app: Celery, job_id: str) -> int:
    """Score again every shard of a job that is not done; returns how many."""
    require_broker(settings)
    ensure_schema(settings.database_url)
    with session_scope(settings.database_url) as session:
        job = _infer_job(session, job_id)
        running, _ = shards.count_in_state(session, job_id, ShardState.RUNNING)
        if running and job.cancelled_at is None:
            raise UsageError(f"job {job_id} is still running {running} shards: cancel it first, or wait")
        reopened = shards.reopen_unfinished(session, job)
        options = InferOptions.model_validate(job.options)
    if not reopened:
        raise UsageError(f"nothing to retry: every shard of job {job_id} is done")
    send_lanes(app, job_id, list(options.variants))
    return reopened


def _infer_job(session: Session, job_id: str) -> Job:
    job = store.get_job(session, job_id)
    if job.kind != TaskKind.INFER.value:
        raise UsageError(f"job {job_id} is a {job.kind} job; cancel and retry apply to scoring jobs")
    return job


MANIFEST_WAIT_S = 30.0  # the lane that scored the last shard writes the manifest just after


def wait_for_manifest(out: ScoringOutput, timeout_s: float = MANIFEST_WAIT_S) -> None:
    """A job turns succeeded when its last shard is done; its manifest follows a moment later,
    written by that shard's lane (or its retry). Wait for it rather than call the output
    incomplete; a manifest that never comes is reported by read_manifest."""
    with contextlib.suppress(TimedOut):
        wait_until(out.has_manifest, timeout_s, f"the manifest of {out.location}", interval_s=out.poll_s)


def merge_result(settings: FarmSettings, job_id: str, target: Path) -> int:
    """The job's parts, checked against their recorded checksums, merged in input order into one
    Parquet file (written beside ``target``, then renamed). Returns the rows written."""
    import pyarrow.parquet as pq

    ensure_schema(settings.database_url)
    with session_scope(settings.database_url) as session:
        job = _infer_job(session, job_id)
        done = shards.shards_of(session, job_id)
    state = shards.infer_job_state(job, done)
    if state is not TaskState.SUCCEEDED:
        raise FarmError(f"job {job_id} is {state.value}: its output is complete only once it succeeds")
    out = scoring_output(settings, InferOptions.model_validate(job.options).out)
    wait_for_manifest(out)
    out.read_manifest()
    staging = target.with_name(f".{target.name}.partial")
    rows = 0
    writer = None
    try:
        with tempfile.TemporaryDirectory(prefix=".farm-parts-", dir=target.parent) as fetched:
            for shard in done:
                part = _checked_part(out, shard.index, shard.sha256, Path(fetched))
                for batch in pq.ParquetFile(part).iter_batches():
                    writer = writer or pq.ParquetWriter(staging, batch.schema)
                    writer.write_batch(batch)
                    rows += batch.num_rows
                if part.parent == Path(fetched):  # a downloaded copy: one part at a time on disk
                    part.unlink()
        if writer is not None:
            writer.close()
        copy_atomically(staging, target)
    finally:
        staging.unlink(missing_ok=True)
    return rows


def _checked_part(out: ScoringOutput, index: int, sha256: str | None, scratch: Path) -> Path:
    try:
        part = out.fetch_part(index, scratch)
    except InfrastructureError:
        raise  # the store is away, or denied: not a part missing
    except FarmError as exc:
        raise FarmError(f"{out.location}: part {index} is missing ({first_line(exc)})") from exc
    if not part.exists() or sha256_of(part) != sha256:
        raise FarmError(f"{part.name} in {out.location}: missing or changed since the job wrote it")
    return part
