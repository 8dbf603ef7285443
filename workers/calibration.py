"""Data for quantizers and verification: the user's calibration file, split into a calibration
part and a held-out part, or a separate labelled evaluation file; synthetic samples (with a
warning) for what was not given."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from farm.core.calibfile import SampleFile
from farm.core.errors import ModelError
from farm.core.modelfile import TensorSpec
from workers.layout import to_model_layout
from workers.runtime import Runner

SEED = 20261121
HELD_OUT_SHARE = 5  # one sample in five is kept for verification
SYNTHETIC_NOTE = "calibrated on synthetic random data (no --calib): its scales may not fit real inputs"


@dataclass(frozen=True)
class Calibration:
    samples: dict[str, np.ndarray]  # the quantizers' data; first axis is the sample
    held_out: dict[str, np.ndarray]  # verification data, never seen by a quantizer
    synthetic: bool  # the quantizers' data is synthetic
    verified_on: str  # "synthetic", "calibration" (the held-out part of --calib) or "eval" (--eval)
    labels: np.ndarray | None = None  # the true class of each held-out sample, when known
    specs: list[TensorSpec] = field(default_factory=list)  # the inputs, for their model layout

    def single_samples(self) -> Iterator[dict[str, np.ndarray]]:
        """One feed per sample, batch 1, as the model takes it: what quantizers' calibration
        readers hand out (they run the model itself)."""
        count = len(next(iter(self.samples.values())))
        for index in range(count):
            feed = {name: array[index : index + 1] for name, array in self.samples.items()}
            yield to_model_layout(feed, self.specs) if self.specs else feed

    def notes_for(self, precision: str) -> list[str]:
        """The warning an INT8 variant (the only calibrated precision) carries when it was
        calibrated on synthetic data but verified on real data. When both are synthetic, the
        report says once, for the whole job, that its verdicts say little."""
        calibrated_apart = self.synthetic and self.verified_on == "eval"
        return [SYNTHETIC_NOTE] if precision == "int8" and calibrated_apart else []


def make_calibration(
    specs: list[TensorSpec],
    calib: SampleFile | None,
    evaluation: SampleFile | None,
    max_samples: int,
    synthetic_held_out: int,
) -> Calibration:
    """The quantizers' samples and the verification samples for one job.

    ``--eval`` gives the verification samples (with labels); then all of ``--calib`` calibrates.
    Without it, the last fifth of ``--calib`` is held out for verification. Whatever is not
    given is synthetic (seeded random inputs).
    """
    if calib is None:
        calibration = synthetic_calibration(specs, max_samples, synthetic_held_out)
    elif evaluation is None:
        calibration = user_calibration(calib, specs, max_samples)
    else:
        samples = {name: array[:max_samples] for name, array in calib.arrays_for(specs).items()}
        calibration = Calibration(samples, {}, synthetic=False, verified_on="eval")
    calibration = replace(calibration, specs=specs)
    if evaluation is None:
        return calibration
    held_out = evaluation.arrays_for(specs)
    return replace(calibration, held_out=held_out, verified_on="eval", labels=evaluation.labels)


def synthetic_calibration(specs: list[TensorSpec], samples: int, held_out: int) -> Calibration:
    return Calibration(
        samples=random_feeds(specs, samples, SEED),
        held_out=random_feeds(specs, held_out, SEED + 1),
        synthetic=True,
        verified_on="synthetic",
    )


def user_calibration(calib: SampleFile, specs: list[TensorSpec], max_samples: int) -> Calibration:
    feeds = calib.arrays_for(specs)
    count = len(next(iter(feeds.values())))
    held_out = max(1, count // HELD_OUT_SHARE)
    split = count - held_out
    return Calibration(
        samples={name: array[: min(split, max_samples)] for name, array in feeds.items()},
        held_out={name: array[split:] for name, array in feeds.items()},
        synthetic=False,
        verified_on="calibration",
        labels=None if calib.labels is None else calib.labels[split:],
    )


def concrete_shape(spec: TensorSpec, batch: int, sample_layout: bool = False) -> tuple[int, ...]:
    """The input's shape with the batch filled in, as the model takes it (or in sample layout,
    the batch first); a scalar's is ()."""
    if spec.batch_axis is None:
        return (batch,) if sample_layout else ()
    axis = 0 if sample_layout else spec.batch_axis
    dims = spec.sample_shape if sample_layout else spec.shape
    shape = [batch if index == axis and dim is None else dim for index, dim in enumerate(dims)]
    known = [dim for dim in shape if dim is not None]
    if len(known) != len(shape):
        raise ModelError(
            f"input {spec.name} has an unknown dimension besides the batch {tuple(spec.shape)}; "
            f"give its shape with --inputs {spec.name}:1,..."
        )
    return tuple(known)


def random_feeds(specs: list[TensorSpec], batch: int, seed: int = SEED) -> dict[str, np.ndarray]:
    """Deterministic random inputs, in sample layout (a scalar input gets one value for all)."""
    rng = np.random.default_rng(seed)
    feeds = {spec.name: _random_array(rng, spec.dtype, concrete_shape(spec, batch, True)) for spec in specs}
    for spec in specs:
        if spec.batch_axis is None:
            feeds[spec.name][:] = feeds[spec.name][0]
    return feeds


def _random_array(rng: np.random.Generator, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    kind = np.dtype(dtype).kind
    if kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if kind in "iu":
        return rng.integers(0, 10, shape).astype(dtype)
    if kind == "b":
        return rng.random(shape) < 0.5
    raise ModelError(f"cannot make sample inputs of type {dtype}")


def run_batched(
    runner: Runner, feeds: dict[str, np.ndarray], specs: list[TensorSpec], max_batch: int
) -> list[np.ndarray]:
    """Run many samples through a model in chunks its batch dimension accepts; outputs joined."""
    count = len(next(iter(feeds.values())))
    fixed_batches = {spec.sample_shape[0] for spec in specs if spec.sample_shape[0] is not None}
    chunk = max_batch
    if fixed_batches:
        chunk = int(fixed_batches.pop())
        count -= count % chunk  # a fixed batch takes only whole chunks
    if count < 1:
        raise ModelError(f"the model's batch is fixed at {chunk}; too few samples to run it")
    parts = [
        runner({name: array[start : min(start + chunk, count)] for name, array in feeds.items()})
        for start in range(0, count, chunk)
    ]
    return [np.concatenate(outputs) for outputs in zip(*parts, strict=True)]
