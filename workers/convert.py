"""Conversion of one job for one hardware class: build, verify, benchmark, store the variants.

Free of Celery and of the database, so it can be read and tested on its own.
"""

from __future__ import annotations

import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from farm.artifacts import ArtifactStore, sha256_of
from farm.modelfile import ModelFormat, TensorArg
from farm.settings import FarmSettings
from workers.backends import get_backend
from workers.backends.base import BuiltVariant, Runner
from workers.benchmark import Measurement, batch_sizes, measure
from workers.hardware import describe_cpu
from workers.sources import SourceModel, load_source
from workers.verify import Verification, verify


@dataclass(frozen=True)
class ConversionRequest:
    job_id: str
    hardware: str
    model_key: str
    model_format: ModelFormat
    inputs: list[TensorArg]
    outputs: list[str]


@dataclass(frozen=True)
class VariantOutcome:
    built: BuiltVariant
    artifact_key: str
    sha256: str
    size_bytes: int
    verification: Verification
    measurements: list[Measurement]
    host: str
    hardware_description: str


def build_variants(request: ConversionRequest, settings: FarmSettings) -> list[VariantOutcome]:
    store = ArtifactStore(settings.artifact_root)
    backend = get_backend(request.hardware)
    source = load_source(store.path(request.model_key), request.model_format, request.inputs, request.outputs)
    with tempfile.TemporaryDirectory(prefix=f"farm-{request.job_id}-") as workdir:
        return [
            _check_and_store(built, request, settings, store, backend.load(built), source)
            for built in backend.convert(source, Path(workdir))
        ]


def _check_and_store(
    built: BuiltVariant,
    request: ConversionRequest,
    settings: FarmSettings,
    store: ArtifactStore,
    runner: Runner,
    source: SourceModel,
) -> VariantOutcome:
    verification = verify(source, runner, settings.verify_batch, settings.verify_atol, settings.verify_rtol)
    measurements = [
        measure(runner, source.inputs, batch, settings.bench_seconds)
        for batch in batch_sizes(source.inputs, settings.bench_batch)
    ]
    key = f"variants/{request.job_id}/{request.hardware}/{built.precision}/{built.path.name}"
    store.put_file(built.path, key)
    return VariantOutcome(
        built=built,
        artifact_key=key,
        sha256=sha256_of(built.path),
        size_bytes=built.path.stat().st_size,
        verification=verification,
        measurements=measurements,
        host=socket.gethostname(),
        hardware_description=describe_cpu(),
    )
