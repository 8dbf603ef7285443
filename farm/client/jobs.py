"""Client side: submitting work, and reading it back from the job store for display."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from celery import Celery

from db import shards, store
from db.engine import ensure_schema, session_scope
from db.models import BenchmarkResult, Job, Shard, Task, TaskKind, TaskState, Variant, utcnow
from farm.client.cluster import require_broker
from farm.core.artifacts import ArtifactStore, open_store, sha256_of
from farm.core.errors import FarmError, ServiceUnavailableError, UsageError, first_line
from farm.core.jobspec import ConvertOptions
from farm.core.modelfile import (
    ModelFormat,
    TensorArg,
    TensorSpec,
    detect_format,
    refuse_unpickling,
    shape_text,
)
from farm.core.outputkinds import unknown_outputs
from farm.core.settings import FarmSettings
from farm.core.signature import model_inputs, model_outputs
from farm.core.targets import NATIVE, parse_hardware_list, parse_precisions, refuse_format
from queues.app import broker_errors
from queues.names import CONVERT_TASK, queue_for

if TYPE_CHECKING:
    from farm.core.calibfile import SampleFile


@dataclass(frozen=True)
class ConvertRequest:
    """What `farm submit convert` was asked, as typed; checked by submit_convert."""

    model: Path
    hardware: str
    inputs: list[TensorArg] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    precisions: str = ""
    calib: Path | None = None
    evaluation: Path | None = None  # --eval: labelled verification samples
    thresholds: dict[str, float | None] = field(default_factory=dict)  # overrides by THRESHOLD_NAMES
    force: bool = False
    strict: bool = False
    output_kinds: dict[str, str] = field(default_factory=dict)  # --output-kind, parsed
    search: bool = True
    allow_pickle: bool = False  # --allow-pickle: the submitter trusts a pickle/joblib model file


def submit_convert(settings: FarmSettings, app: Celery, asked: ConvertRequest) -> Job:
    """Check everything, store the model, record the job, queue one task per hardware class.

    Every check that can refuse the submission runs before anything is written.
    """
    hardware_classes = parse_hardware_list(asked.hardware)
    precisions = parse_precisions(asked.precisions, hardware_classes)
    model = asked.model
    model_format = detect_format(model)
    refuse_unpickling(model_format, model, asked.allow_pickle)
    for hardware in hardware_classes:
        refuse_format(hardware, model_format.value)  # the DPU runs no tree ensemble
    specs = model_inputs(model, model_format, asked.inputs)  # refuses --inputs the model lacks
    if asked.output_kinds:
        _check_output_kinds(asked, model_outputs(model, model_format))
    _check_sample_files(asked, specs)
    _check_shapes_known(asked, model_format, specs)
    require_broker(settings)
    ensure_schema(settings.database_url)
    artifacts = open_store(settings)
    sha256 = sha256_of(model)
    model_key = artifacts.put_model(model, sha256)
    options = ConvertOptions(
        precisions=precisions,
        force=asked.force,
        strict=asked.strict,
        output_kinds=asked.output_kinds,
        search=asked.search,
        allow_pickle=asked.allow_pickle,
        **asked.thresholds,
        **_stored_samples(artifacts, "calib", asked.calib),
        **_stored_samples(artifacts, "eval", asked.evaluation),
    )
    inputs, outputs = asked.inputs, asked.outputs
    job = Job(
        kind=TaskKind.CONVERT.value,
        model_name=model.name,
        model_key=model_key,
        model_sha256=sha256,
        model_format=model_format.value,
        inputs=[arg.to_json() for arg in inputs],
        outputs=[{"name": name} for name in outputs],
        options=options.model_dump(),
    )
    with session_scope(settings.database_url) as session:
        tasks = store.create_job(session, job, hardware_classes, TaskKind.CONVERT.value)
    _send(settings, app, tasks, model_key)
    return job


def _check_output_kinds(asked: ConvertRequest, outputs: list[str] | None) -> None:
    """Refuse an --output-kind for an output the model lacks (where the client can read them)."""
    known = asked.outputs or outputs
    unknown = unknown_outputs(asked.output_kinds, known) if known is not None else ""
    if unknown:
        raise UsageError(unknown)


def _check_sample_files(asked: ConvertRequest, specs: list[TensorSpec] | None) -> None:
    """Refuse unreadable --calib/--eval files, samples that cannot feed the model's inputs (when
    the client could read them), an --eval without labels, and an accuracy threshold that no
    labels could ever apply to."""
    calib = _read_samples(asked.calib, "--calib")
    evaluation = _read_samples(asked.evaluation, "--eval")
    for samples in (calib, evaluation):
        if samples is not None and specs is not None:
            samples.arrays_for(specs)
    if asked.evaluation is not None and evaluation is not None and evaluation.labels is None:
        where = "an .npz array 'labels' or a Parquet column 'label'"
        raise UsageError(f"--eval file {asked.evaluation.name} has no labels ({where})")
    labelled = evaluation is not None or (calib is not None and calib.labels is not None)
    if asked.thresholds.get("max_accuracy_drop") is not None and not labelled:
        raise UsageError("--max-accuracy-drop needs labelled samples: --eval FILE, or labels in --calib")


def _check_shapes_known(asked: ConvertRequest, fmt: ModelFormat, specs: list[TensorSpec] | None) -> None:
    """A dimension besides the batch that the model leaves open is taken from the sample files;
    with none given, from --inputs; else nothing could feed the model: refused here, not on a
    worker. TorchScript declares no shapes at all."""
    if asked.calib is not None or asked.evaluation is not None:
        return
    shaped = {arg.name for arg in asked.inputs if arg.shape is not None and None not in arg.shape[1:]}
    if fmt is ModelFormat.TORCHSCRIPT and not shaped:
        raise UsageError(
            f"{asked.model.name}: TorchScript does not declare its input shapes: give them with "
            "--inputs NAME:?,3,224,224 or give samples with --calib"
        )
    for spec in specs or []:
        if None in spec.sample_shape[1:]:
            raise UsageError(
                f"input {spec.name} has unknown dimensions {shape_text(spec.shape)}: give samples with "
                f"--calib (their shape is used) or the shape with --inputs {spec.name}:?,..."
            )


def _read_samples(path: Path | None, flag: str) -> SampleFile | None:
    if path is None:
        return None
    from farm.core.calibfile import read_samples  # numpy: imported only when a file is given

    return read_samples(path, flag)


def _stored_samples(artifacts: ArtifactStore, kind: str, path: Path | None) -> dict[str, str | None]:
    """A --calib or --eval file in the artifact store, under its sha256: options calib_key and
    calib_sha256, or eval_key and eval_sha256."""
    if path is None:
        return {}
    sha256 = sha256_of(path)
    folder = "calibration" if kind == "calib" else "evaluation"
    return {
        f"{kind}_key": artifacts.put(path, f"{folder}/{sha256}/{path.name}"),
        f"{kind}_sha256": sha256,
    }


def _send(settings: FarmSettings, app: Celery, tasks: list[Task], model_key: str) -> None:
    """Queue each task; record the Celery ids of those sent and fail those the broker refused."""
    error: BaseException | None = None
    for task in tasks:
        try:
            task.celery_id = app.send_task(
                CONVERT_TASK, args=[task.id, model_key], queue=queue_for(task.hardware)
            ).id
        except broker_errors(app) as exc:  # the broker went away between the check and the send
            error = exc
            break
    with session_scope(settings.database_url) as session:
        # Only the Celery id is written: a fast worker may already have claimed (or even
        # finished) the task, and the rest of this stale copy must not overwrite that.
        store.record_celery_ids(session, {task.id: task.celery_id for task in tasks if task.celery_id})
        unsent = [task.id for task in tasks if not task.celery_id]
        if error is not None:
            store.fail_unsent_tasks(session, unsent, f"could not be queued: {first_line(error)}")
    if error is not None:
        raise ServiceUnavailableError(
            f"the broker refused the task: {first_line(error)}", service="broker"
        ) from error


def live_queues(app: Celery, timeout_s: float) -> set[str] | None:
    """Queues some live worker consumes; None when the broker cannot be asked."""
    try:
        replies = app.control.inspect(timeout=timeout_s).active_queues() or {}
    except broker_errors(app):
        return None
    return {queue["name"] for queues in replies.values() for queue in queues}


def queues_for_display(
    app: Celery, settings: FarmSettings, view: JobView, grace_s: float = 0.0
) -> set[str] | None:
    """Live queues, asked for only while some task has been queued longer than ``grace_s`` (the
    only state they explain). Asking waits for every worker's reply, so `--wait` gives an idle
    worker a moment to take the task first, and a cached resubmission ends without asking."""
    queued = [task for task in view.tasks if task.state == TaskState.QUEUED]
    if any(utcnow() - task.queued_at > timedelta(seconds=grace_s) for task in queued):
        return live_queues(app, settings.worker_probe_timeout_s)
    return {queue_for(task.hardware) for task in queued}  # not asked yet: shown as plain "queued"


@dataclass(frozen=True)
class JobView:
    job: Job
    tasks: list[Task]  # a conversion's, one per hardware class
    variants: list[Variant]
    benchmarks: dict[int, list[BenchmarkResult]]
    shards: list[Shard] = field(default_factory=list)  # a scoring job's

    @property
    def is_scoring(self) -> bool:
        return self.job.kind == TaskKind.INFER.value

    @property
    def state(self) -> TaskState:
        return (
            shards.infer_job_state(self.job, self.shards) if self.is_scoring else store.job_state(self.tasks)
        )


def load_job(settings: FarmSettings, job_id: str) -> JobView:
    ensure_schema(settings.database_url)  # a fresh farm has no tables yet: say "no job", not an SQL error
    with session_scope(settings.database_url) as session:
        job = store.get_job(session, job_id)
        # Tasks before variants: the reads are separate statements that may see different commits, and
        # a worker records a task's variants before it finishes the task. Read the other way round, a
        # finished task could show without its last variants.
        tasks = store.tasks_of(session, job_id)
        variants = store.variants_of(session, job_id)
        benchmarks: dict[int, list[BenchmarkResult]] = {}
        for result in store.benchmarks_of(session, [v.id for v in variants if v.id is not None]):
            benchmarks.setdefault(result.variant_id, []).append(result)
        return JobView(job, tasks, variants, benchmarks, shards.shards_of(session, job_id))


def recent_jobs(settings: FarmSettings, limit: int) -> list[JobView]:
    ensure_schema(settings.database_url)
    with session_scope(settings.database_url) as session:
        jobs = store.recent_jobs(session, limit)
        return [
            JobView(job, store.tasks_of(session, job.id), [], {}, shards.shards_of(session, job.id))
            for job in jobs
        ]


def task_state_text(task: Task, queues: set[str] | None, variants: Sequence[Variant] = ()) -> str:
    """The task's state, saying so when a queued task has no worker that could take it, and
    when a finished task took variants from the cache instead of building them."""
    if task.state != TaskState.QUEUED:
        own = [v for v in variants if v.task_id == task.id]
        reused = sum(1 for v in own if v.reused_from is not None)
        remarks = [f"{reused} of {len(own)} variants reused from the cache"] if reused else []
        if task.warnings:
            remarks.append(f"{len(task.warnings)} warning{'s' if len(task.warnings) > 1 else ''}")
        if not TaskState(task.state).finished or not remarks:
            return str(task.state)
        return f"{task.state} ({', '.join(remarks)})"
    if queues is None:
        return f"queued (cannot ask the broker whether a {task.hardware} worker is up)"
    if queue_for(task.hardware) not in queues:
        return f"waiting for a {task.hardware} worker"
    return "queued"


def copy_artifacts(
    settings: FarmSettings, view: JobView, target: Path, include_failed: bool = False
) -> tuple[list[Path], list[Variant]]:
    """Copy a job's verified variants out (with ``include_failed``, those that failed verification
    too); the native baselines are the submitted model and are skipped. Returns the copies and
    the failed variants left behind."""
    built = [v for v in view.variants if v.backend != NATIVE]
    if not built:
        raise FarmError(f"job {view.job.id} has no variants yet (state: {view.state.value})")
    chosen = [v for v in built if v.passed or include_failed]  # a failed variant never serves
    left = [v for v in built if not (v.passed or include_failed)]
    artifacts = open_store(settings)
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for variant in chosen:
        suffix = PurePosixPath(variant.artifact_key).suffix
        name = f"{view.job.id}-{variant.hardware}-{variant.backend}-{variant.precision}{suffix}"
        artifacts.copy_out(variant.artifact_key, variant.sha256, target / name)
        copied.append(target / name)
    return copied, left
