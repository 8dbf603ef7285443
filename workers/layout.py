"""Between the farm's sample layout (one sample per row, on axis 0: sample files, calibration,
verification, benchmarks and scoring all hold inputs so) and the layout a model takes: an input
batched on another axis (a recurrent state ``(2, N, 64)``) has its sample axis moved there, a
scalar input (``batch_axis`` None) is fed the batch's one value, and outputs batched on another
axis come back with it moved first. Imports nothing of ``workers`` but its Runner."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from farm.core.errors import DataError
from farm.core.modelfile import TensorSpec
from workers.runtime import Runner


def needs_layout(specs: list[TensorSpec], output_axes: Mapping[str, int]) -> bool:
    return bool(output_axes) or any(spec.batch_axis != 0 for spec in specs)


def to_model_layout(feeds: Mapping[str, np.ndarray], specs: list[TensorSpec]) -> dict[str, np.ndarray]:
    """Feeds in sample layout as the model takes them."""
    by_name = {spec.name: spec for spec in specs}
    return {
        name: _to_model(array, by_name[name]) if name in by_name else array for name, array in feeds.items()
    }


def _to_model(array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    if spec.batch_axis is None:
        if array.ndim == 0:
            return array
        if array.size and not (array == array.flat[0]).all():
            raise DataError(f"input {spec.name} is one value for a whole batch: its samples differ")
        return np.asarray(array.flat[0], dtype=array.dtype)
    return np.moveaxis(array, 0, spec.batch_axis) if spec.batch_axis else array


def in_sample_layout(
    runner: Runner, specs: list[TensorSpec], outputs: list[str], output_axes: Mapping[str, int]
) -> Runner:
    """``runner`` (model layout) taking and giving sample layout; itself where both agree."""
    if not needs_layout(specs, output_axes):
        return runner
    axes = [output_axes.get(name, 0) for name in outputs]

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        results = runner(to_model_layout(feeds, specs))
        return [
            np.moveaxis(result, axis, 0) if axis else result
            for result, axis in zip(results, axes, strict=True)
        ]

    return run
