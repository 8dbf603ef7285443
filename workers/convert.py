"""Conversion of one job for one hardware class: plan the variants, then build, verify and
benchmark each one that the cache does not already hold.

Free of Celery and of the database, so it can be read and tested on its own. Nothing heavy is
loaded until a variant actually has to be built: a fully cached task never imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from farm.core.artifacts import open_store, sha256_of
from farm.core.calibfile import SampleFile, read_samples
from farm.core.errors import FarmError, ModelError, ToolchainMissingError, first_line
from farm.core.hosts import describe_cpu
from farm.core.jobspec import ConvertOptions
from farm.core.locks import file_lock
from farm.core.modelfile import ModelFormat, TensorArg
from farm.core.outputkinds import unknown_outputs
from farm.core.settings import FarmSettings
from workers.backends import NATIVE, all_backends, class_problems, native_backend, usable_backends
from workers.backends.base import Backend
from workers.benchmark import BenchmarkPlan, Measurement, sweep
from workers.calibration import Calibration, make_calibration, run_batched
from workers.layout import in_sample_layout
from workers.runtime import BuiltVariant, Recipe, Runner
from workers.sources import SourceModel, load_with_scratch
from workers.verify import POLICY_VERSION, Verification, check_named_kinds, thresholds_for, verify


@dataclass(frozen=True)
class ConversionRequest:
    job_id: str
    hardware: str
    model_key: str
    model_sha256: str
    model_format: ModelFormat
    inputs: list[TensorArg]
    outputs: list[str]
    options: ConvertOptions


@dataclass(frozen=True)
class PlannedVariant:
    backend: str
    precision: str
    toolchain: str
    cache_key: str


@dataclass(frozen=True)
class Attempt:
    """A variant built by one recipe and its verdict."""

    recipe: Recipe
    built: BuiltVariant
    runner: Runner
    verification: Verification
    search_notes: list[str] = field(default_factory=list)  # what the search tried besides this one

    @property
    def outcome(self) -> str:
        return "passed" if self.verification.passed else f"failed: {self.verification.failures[0]}"

    @property
    def rank(self) -> tuple[bool, bool, int]:
        """Smaller is better: passing first; then a variant whose outputs are not broken (NaN,
        a wrong shape, a collapsed channel) over one that is; then the fewer failures."""
        broken = any(
            c.nan_count or c.inf_count or c.collapsed_channels or not c.shape_matches
            for c in self.verification.outputs
        )
        return (not self.verification.passed, broken, len(self.verification.failures))

    def kept(self, others: list[str], untried: int) -> Attempt:
        """This attempt as the one kept: its recipe named in its details and, when others were
        tried, a note saying which and why they were not kept."""
        built = replace(self.built, details={**self.built.details, "recipe": self.recipe.name})
        if not others:
            return replace(self, built=built)
        kept = "passed" if self.verification.passed else "failed least"
        note = f"recipe {self.recipe.name} ({kept}); also tried: {'; '.join(others)}"
        if untried > 0 and not self.verification.passed:
            note += f"; {untried} more not tried within FARM_RECIPE_SEARCH_S"
        return replace(self, built=built, search_notes=[note])


@dataclass(frozen=True)
class VariantOutcome:
    planned: PlannedVariant
    built: BuiltVariant
    artifact_key: str
    sha256: str
    size_bytes: int
    verification: Verification
    verified_on: str  # "synthetic", "calibration" or "eval": see Calibration
    notes: list[str]
    measurements: list[Measurement]
    host: str
    hardware_description: str
    build_s: float
    benchmark_s: float
    signature: dict  # the source's inputs and outputs: what batch scoring feeds and reads


def plan_variants(request: ConversionRequest, settings: FarmSettings) -> list[PlannedVariant]:
    """The native baseline first, then each precision the job wants from each of the hardware
    class's backends that this host can run (gpu: ONNX Runtime's CUDA provider and TensorRT)."""
    backends = usable_backends(request.hardware)
    if not backends:
        problems = "; ".join(class_problems(request.hardware))
        raise ToolchainMissingError(f"this {request.hardware} worker can build nothing: {problems}")
    wanted = request.options.precisions
    plans = [(native_backend(), "fp32")]
    # A class with several runtimes builds with those that take the model (arm: TFLite takes
    # TensorFlow models only, ONNX Runtime every format).
    for backend in [b for b in backends if request.model_format.value in b.target.model_formats]:
        plans += [
            (backend, precision) for precision in backend.precisions if not wanted or precision in wanted
        ]
    return [_planned(request, backend, precision, settings) for backend, precision in plans]


def _planned(
    request: ConversionRequest, backend: Backend, precision: str, settings: FarmSettings
) -> PlannedVariant:
    toolchain = backend.toolchain(settings)
    # The recipes a failing variant would try shape its verdict too: they go into the cache key.
    recipes = [recipe.name for recipe in backend.recipes(precision)] if request.options.search else []
    key = cache_key(request, backend.name, precision, toolchain, recipes)
    return PlannedVariant(backend.name, precision, toolchain, key)


def cache_key(
    request: ConversionRequest, backend: str, precision: str, toolchain: str, recipes: list[str] | None = None
) -> str:
    """Everything that shapes a variant or its verdict, hashed."""
    options = request.options
    identity = {
        "verification_policy": POLICY_VERSION,
        "model_sha256": request.model_sha256,
        "hardware": request.hardware,
        "backend": backend,
        "precision": precision,
        "inputs": [arg.to_json() for arg in request.inputs],
        "outputs": request.outputs,
        "calibration": options.calib_sha256,
        "evaluation": options.eval_sha256,
        "thresholds": options.threshold_overrides(),
        "output_kinds": options.output_kinds,
        "recipe_search": options.search,
        "toolchain": toolchain,
        "recipes": recipes or [],
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


class VariantBuilder:
    """Builds planned variants of one request. The source model, its calibration data and its
    reference outputs are loaded once, on first need."""

    def __init__(self, request: ConversionRequest, settings: FarmSettings, workdir: Path) -> None:
        self.request = request
        self.settings = settings
        self.workdir = workdir
        self.store = open_store(settings)

    @cached_property
    def source(self) -> SourceModel:
        r = self.request
        path = self.store.local(r.model_key, r.model_sha256)
        shapes = tuple(sorted(self.sample_shapes.items()))
        return loaded_source(
            r.model_sha256,
            path,
            r.model_format,
            tuple(r.inputs),
            tuple(r.outputs),
            r.options.allow_pickle,
            shapes,
        )

    @cached_property
    def sample_files(self) -> tuple[SampleFile | None, SampleFile | None]:
        options = self.request.options
        return (
            self._samples(options.calib_key, options.calib_sha256, "--calib"),
            self._samples(options.eval_key, options.eval_sha256, "--eval"),
        )

    @property
    def sample_shapes(self) -> dict[str, tuple[int, ...]]:
        """Each sample array's shape by input name (``--eval``'s where both files have one)."""
        return {
            name: array.shape
            for samples in self.sample_files
            if samples is not None
            for name, array in samples.inputs.items()
        }

    @cached_property
    def calibration(self) -> Calibration:
        calib, evaluation = self.sample_files
        return make_calibration(
            self.source.inputs, calib, evaluation, self.settings.calib_samples, self.settings.verify_samples
        )

    def _samples(self, key: str | None, sha256: str | None, flag: str) -> SampleFile | None:
        if key is None or sha256 is None:
            return None
        return read_samples(self.store.local(key, sha256), flag)

    @cached_property
    def expected_outputs(self) -> list[np.ndarray]:
        return run_batched(self.source.run, self.calibration.held_out, self.source.inputs, self.chunk)

    @property
    def chunk(self) -> int:
        return self.settings.bench_max_batch

    def prepare(self) -> None:
        """Load what every variant of the request shares: the source model, its samples and its
        reference outputs. What fails here fails the whole task, never one precision."""
        unknown = unknown_outputs(self.request.options.output_kinds, self.source.output_names)
        if unknown:
            raise ModelError(unknown)
        check_named_kinds(self.source.output_names, self.expected_outputs, self.request.options.output_kinds)

    def build(self, planned: PlannedVariant) -> VariantOutcome:
        started = time.perf_counter()
        chosen = self.search(all_backends()[planned.backend], planned.precision)
        built, verification = chosen.built, chosen.verification
        verified = time.perf_counter()
        measurements = self.benchmark(chosen.runner, planned)
        benchmarked = time.perf_counter()
        key = self._store(built, planned)
        return VariantOutcome(
            planned=planned,
            built=built,
            artifact_key=key,
            sha256=sha256_of(built.path),
            size_bytes=_size_of(built.path),
            verification=verification,
            verified_on=self.calibration.verified_on,
            notes=built.notes + chosen.search_notes + self._notes_for(planned),
            measurements=measurements,
            host=socket.gethostname(),
            hardware_description=_hardware_description(built),
            build_s=verified - started,
            benchmark_s=benchmarked - verified,
            signature=signature_of(self.source),
        )

    def _notes_for(self, planned: PlannedVariant) -> list[str]:
        """What the job's data says of this variant; the source's own notes go on native's row."""
        source_notes = self.source.notes if planned.backend == NATIVE else []
        return source_notes + self.calibration.notes_for(planned.precision)

    def search(self, backend: Backend, precision: str) -> Attempt:
        allowed = self.request.options.search
        recipes = backend.recipes(precision) if allowed else backend.recipes(precision)[:1]
        return search_recipes(
            recipes,
            lambda recipe, workdir: backend.convert(
                self.source, precision, self.calibration, workdir, self.settings, recipe
            ),
            lambda built: self.in_sample_layout(backend.load(built, self.source.output_names)),
            lambda runner: self.verify(runner, precision),
            self.workdir,
            self.settings.recipe_search_s,
        )

    def in_sample_layout(self, runner: Runner) -> Runner:
        """A variant's runner fed and read in sample layout, as the source's own (workers/layout.py)."""
        source = self.source
        return in_sample_layout(runner, source.inputs, source.output_names, source.output_batch_axes)

    def verify(self, runner: Runner, precision: str) -> Verification:
        options = self.request.options
        return verify_variant(
            self.source,
            self.calibration,
            runner,
            precision,
            options.threshold_overrides(),
            self.expected_outputs,
            self.chunk,
            options.output_kinds,
        )

    def benchmark(self, runner: Runner, planned: PlannedVariant) -> list[Measurement]:
        """The native baseline alone; every other variant side by side with it."""
        settings = self.settings
        max_batch = settings.bench_max_rows if self.source.tabular else settings.bench_max_batch
        plan = BenchmarkPlan(settings.bench_window_s, settings.bench_seconds, max_batch)
        baseline = None if planned.backend == NATIVE else self.source.run
        return sweep(
            runner, self.source.inputs, plan, baseline, exclusive=lambda: file_lock(settings.bench_lock)
        )

    def _store(self, built: BuiltVariant, planned: PlannedVariant) -> str:
        if planned.backend == NATIVE:
            return self.request.model_key  # the native baseline is the submitted model itself
        r = self.request
        key = f"variants/{r.job_id}/{r.hardware}/{planned.backend}-{planned.precision}/{built.path.name}"
        return self.store.put(built.path, key)


def search_recipes(
    recipes: tuple[Recipe, ...],
    build: Callable[[Recipe, Path], BuiltVariant],
    load: Callable[[BuiltVariant], Runner],
    judge: Callable[[Runner], Verification],
    workdir: Path,
    budget_s: float,
) -> Attempt:
    """Build by the first recipe; while the variant fails verification, by the next ones, none
    started after ``budget_s``. The first that passes is kept, else the one that failed least
    (Attempt.rank). A recipe the model or the runtime cannot take (its build, load or run raises)
    is noted and skipped, unless every one does; an infrastructure error ends the search. Only
    the best attempt so far keeps its runner (a loaded model) alive."""
    deadline = time.monotonic() + budget_s
    best: Attempt | None = None
    tried: list[tuple[str, str]] = []  # (recipe, what became of it), in the order tried
    first_error: Exception | None = None
    for index, recipe in enumerate(recipes):
        if index and time.monotonic() > deadline:
            break
        folder = workdir / f"recipe-{index}"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            built = build(recipe, folder)
            runner = load(built)
            attempt = Attempt(recipe, built, runner, judge(runner))
        except Exception as exc:
            if len(recipes) == 1 or (isinstance(exc, FarmError) and exc.retryable):
                raise
            first_error = first_error or exc
            tried.append((recipe.name, f"could not be built or run: {first_line(exc)}"))
            continue
        tried.append((recipe.name, attempt.outcome))
        if best is None or attempt.rank < best.rank:
            best = attempt
        if best.verification.passed:
            break
    if best is None:
        assert first_error is not None, "recipes is never empty"
        raise first_error
    others = [f"{name} ({what})" for name, what in tried if name != best.recipe.name]
    return best.kept(others, untried=len(recipes) - len(tried))


def verify_variant(
    source: SourceModel,
    calibration: Calibration,
    runner: Runner,
    precision: str,
    overrides: dict[str, float | None] | None = None,
    expected: list[np.ndarray] | None = None,
    chunk: int = 32,
    named_kinds: dict[str, str] | None = None,
) -> Verification:
    """Run the held-out samples through a variant and judge it against the source's outputs
    (computed here unless ``expected`` holds them already)."""
    if expected is None:
        expected = run_batched(source.run, calibration.held_out, source.inputs, chunk)
    actual = run_batched(runner, calibration.held_out, source.inputs, chunk)
    thresholds = thresholds_for(precision, overrides or {})
    return verify(
        precision, source.output_names, expected, actual, thresholds, calibration.labels, named_kinds
    )


def signature_of(source: SourceModel) -> dict:
    """What batch scoring feeds and reads: each input's shape in sample layout (the batch first),
    where the model puts its batch, and the outputs batched on another axis than the first."""
    inputs = [
        {"name": s.name, "shape": list(s.sample_shape), "dtype": s.dtype, "batch_axis": s.batch_axis}
        for s in source.inputs
    ]
    return {"inputs": inputs, "outputs": source.output_names, "output_batch_axes": source.output_batch_axes}


@lru_cache(maxsize=1)
def loaded_source(
    model_sha256: str,
    path: Path,
    fmt: ModelFormat,
    inputs: tuple[TensorArg, ...],
    outputs: tuple[str, ...],
    allow_pickle: bool = False,
    sample_shapes: tuple[tuple[str, tuple[int, ...]], ...] = (),
) -> SourceModel:
    """The source model, kept loaded (with its ONNX export) for this worker process's next task.

    A worker serving several hardware classes gets one task per class for the same model, and
    loading a large TensorFlow model and exporting it to ONNX takes longer than most conversions.
    One model at a time: the previous one, and its scratch folder, go when another is loaded.
    """
    prefix = f"farm-source-{model_sha256[:12]}-"
    return load_with_scratch(
        path, fmt, list(inputs), list(outputs), prefix, allow_pickle, dict(sample_shapes)
    )


def _size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _hardware_description(built: BuiltVariant) -> str:
    gpu = built.details.get("gpu_name")
    return f"{gpu} (sm {built.details.get('compute_capability')})" if gpu else describe_cpu()
