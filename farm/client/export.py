"""``farm export JOB --format triton --to DIR``: a finished conversion's verified variants, ready to
deploy (the native baselines are the submitted model itself, and stay out)::

    DIR/triton/<model>/config.pbtxt    an NVIDIA Triton model repository:
    DIR/triton/<model>/1/model.onnx      tritonserver --model-repository DIR/triton
    DIR/triton/<model>/1/model.plan      (a TensorRT engine instead)
    DIR/bundles/<name>/                what Triton does not serve: TFLite, the DPU's XINT8 ONNX

The bundles sit beside the repository, not in it: Triton takes every folder of its repository for
a model and fails on one without a config. Everything is written into a staging folder beside DIR
and renamed into place at the end, so DIR appears whole or not at all.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from db.models import Variant
from farm.client.bundle import BundleKind, bundle_kind, write_bundle
from farm.client.jobs import JobView, load_job
from farm.client.report import ReportRow, build_report
from farm.client.triton import (
    MODEL_FILES,
    ONNX_PLATFORM,
    PLAN_PLATFORM,
    VERSION,
    TritonModel,
    batch_first,
    onnx_tensors,
    signature_inputs,
)
from farm.core.artifacts import ArtifactStore, open_store
from farm.core.calibfile import SampleFile, read_samples
from farm.core.errors import UsageError
from farm.core.jobspec import ConvertOptions
from farm.core.settings import FarmSettings
from farm.core.targets import NATIVE

FORMATS = ("triton",)
PLATFORMS = {"onnx": ONNX_PLATFORM, "tensorrt": PLAN_PLATFORM}  # a variant's format -> Triton's platform


@dataclass(frozen=True)
class Exported:
    kind: str  # "model" (in the Triton repository) or "bundle"
    name: str
    path: Path  # its folder
    summary: str


def export_job(
    settings: FarmSettings, job_id: str, fmt: str, target: Path
) -> tuple[list[Exported], list[tuple[Variant, str]]]:
    """Write the job's verified variants under ``target``. Returns what was written, and the
    variants left out with the reason (failed verification)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r} (known: {', '.join(FORMATS)})")
    _refuse_target(target)
    view = load_job(settings, job_id)
    chosen, left = _chosen(view)
    rows = {row.variant_id: row for row in build_report(view, settings.cost_per_hour)}
    store = open_store(settings)
    calib = _calibration(store, view) if any(bundle_kind(v) for v in chosen) else None
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        exported = [
            _export_one(store, staging, view, variant, rows[variant.id or -1], name, calib)
            for variant, name in zip(chosen, _names(view, chosen), strict=True)
        ]
        _publish(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    placed = [Exported(e.kind, e.name, target / e.path, e.summary) for e in exported]
    return placed, left


def _refuse_target(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"--to {target}: it exists and is not an empty folder; name a new one")


def _chosen(view: JobView) -> tuple[list[Variant], list[tuple[Variant, str]]]:
    """The variants to export, and those left out with why; refuses a job that has none."""
    job = view.job.id
    if view.is_scoring:
        raise UsageError(f"job {job} is a scoring job: export writes a conversion job's variants")
    if not view.state.finished:
        state = view.state.value
        raise UsageError(f"job {job} is {state}: export it once it has finished (farm status {job})")
    built = [v for v in view.variants if v.backend != NATIVE]
    left = [(v, "failed verification") for v in built if not v.passed]
    unserved = [v for v in built if v.passed and not _exportable(v)]
    left += [(v, f"is {v.format}: neither Triton nor a bundle runs it") for v in unserved]
    chosen = sorted(
        (v for v in built if v.passed and _exportable(v)), key=lambda v: (v.hardware, v.backend, v.precision)
    )  # listed as the report lists them
    if not chosen:
        raise UsageError(
            f"job {job} has no verified variant to export besides its native baselines "
            f"({len(built)} built, {len(left)} of them left out)"
        )
    return chosen, left


def _exportable(variant: Variant) -> bool:
    return bundle_kind(variant) is not None or variant.format in PLATFORMS


def _names(view: JobView, chosen: list[Variant]) -> list[str]:
    """``<model stem>_<hardware>_<backend>_<precision>``: letters, digits, ``_`` and ``-`` only
    (Triton model names are folder names); the variant id is added to a name taken twice."""
    stem = Path(view.job.model_name).stem
    names = [_safe(f"{stem}_{v.hardware}_{v.backend}_{v.precision}") for v in chosen]
    pairs = zip(names, chosen, strict=True)
    return [name if names.count(name) == 1 else f"{name}_{v.id}" for name, v in pairs]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "model"


def _calibration(store: ArtifactStore, view: JobView) -> SampleFile | None:
    """The job's --calib file, where it has one: the bundles' samples come from it."""
    options = ConvertOptions.model_validate(view.job.options)
    if not options.calib_key or not options.calib_sha256:
        return None
    return read_samples(store.local(options.calib_key, options.calib_sha256), "--calib")


def _export_one(
    store: ArtifactStore,
    staging: Path,
    view: JobView,
    variant: Variant,
    row: ReportRow,
    name: str,
    calib: SampleFile | None,
) -> Exported:
    record = farm_record(view, row, variant)
    kind = bundle_kind(variant)
    if kind is not None:
        return _bundle(store, staging, variant, record, name, kind, calib)
    platform = PLATFORMS[variant.format]
    folder = Path("triton", name)
    model = staging / folder / VERSION / MODEL_FILES[platform]
    store.copy_out(variant.artifact_key, variant.sha256, model)
    triton = _triton_model(name, platform, variant, row, record, model)
    (staging / folder / "config.pbtxt").write_text(triton.config_text())
    batching = f"max_batch_size {triton.max_batch_size}" if triton.batched else "no batching by Triton"
    return Exported("model", name, folder, f"{platform}, {batching}, {triton.kind}")


def _bundle(
    store: ArtifactStore,
    staging: Path,
    variant: Variant,
    record: dict[str, Any],
    name: str,
    kind: BundleKind,
    calib: SampleFile | None,
) -> Exported:
    folder = Path("bundles", name)
    store.copy_out(variant.artifact_key, variant.sha256, staging / folder / kind.model_file)
    write_bundle(staging / folder, kind, variant, record, calib)
    return Exported("bundle", name, folder, f"{kind.summary}; score.py runs it on sample.npz")


def _triton_model(
    name: str, platform: str, variant: Variant, row: ReportRow, record: dict[str, Any], model: Path
) -> TritonModel:
    """Tensors from the model file itself where it can be read here (ONNX); a TensorRT plan's
    inputs from the signature, its outputs completed by Triton from the engine."""
    signature = variant.signature or {}
    if platform == ONNX_PLATFORM:
        inputs, outputs = onnx_tensors(model)
    else:
        inputs, outputs = signature_inputs(signature), []
    batched = batch_first(inputs, outputs, signature)
    return TritonModel(
        name=name,
        platform=platform,
        inputs=inputs,
        outputs=outputs,
        batched=batched,
        max_batch_size=(row.best_batch or 1) if batched else 0,  # the benchmark's best throughput
        kind="KIND_GPU" if variant.hardware == "gpu" else "KIND_CPU",
        parameters={f"farm.{key}": _text(value) for key, value in record.items()},
    )


def farm_record(view: JobView, row: ReportRow, variant: Variant) -> dict[str, Any]:
    """How the variant was verified and measured, for a Triton config's parameters and a bundle's
    manifest; what is not known (no labels, no benchmark) is left out."""
    values: dict[str, Any] = {
        "job": view.job.id,
        "variant_id": row.variant_id,
        "model": view.job.model_name,
        "model_sha256": view.job.model_sha256,
        "hardware": row.hardware,
        "backend": row.backend,
        "format": row.format,
        "precision": row.precision,
        "verdict": "passed" if row.passed else "failed",
        "passed": row.passed,
        "gate": row.gate,
        "verified_on": row.verified_on,
        "verify_samples": row.verify_samples,
        "max_abs_error": row.max_abs_error,
        "top1_agreement": row.top1_agreement,
        "accuracy": row.accuracy,
        "reference_accuracy": row.reference_accuracy,
        "p50_ms": row.p50_ms,
        "p95_ms": row.p95_ms,
        "p99_ms": row.p99_ms,
        "throughput_per_s": row.throughput_per_s,
        "best_batch": row.best_batch,
        "speedup": row.speedup,
        "cost_per_million": row.cost_per_million,  # with a price for its class set
        "runtime": row.runtime,
        "host": row.host,
        "measured_on": row.measured_on,
        "sha256": variant.sha256,
        # Backend facts: the GPU, CUDA and TensorRT versions an engine is bound to.
        **{f"details.{k}": v for k, v in variant.details.items() if isinstance(v, (str, int, float))},
    }
    return {key: value for key, value in values.items() if value is not None and value != ""}


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _publish(staging: Path, target: Path) -> None:
    """Rename the staged export to ``target`` (an empty folder there is replaced)."""
    try:
        os.rename(staging, target)
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise
        raise UsageError(f"--to {target}: something was written there meanwhile; nothing exported") from exc
