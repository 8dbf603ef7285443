"""What running a variant means, shared by the backends, calibration, verification and scoring:
a runner (named arrays in, arrays out) and a built variant's record. Imports nothing else of
``workers``, so every module of the package can use it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.core.errors import ConversionError

if TYPE_CHECKING:
    import numpy as np

# Runs a variant: named input arrays in, output arrays out, in the order the runner was asked for
# (the source model's output names), matched by name, never by position.
Runner = Callable[[dict[str, "np.ndarray"]], list["np.ndarray"]]


@dataclass(frozen=True)
class BuiltVariant:
    path: Path
    format: str
    precision: str
    runtime: str  # what runs it, with version: "onnxruntime 1.31.1"
    notes: list[str] = field(default_factory=list)  # warnings a user must see (synthetic calibration…)
    details: dict[str, Any] = field(default_factory=dict)  # e.g. the GPU a TensorRT engine is bound to


@dataclass(frozen=True)
class Recipe:
    """One way a backend builds a reduced-precision variant: a calibration method, per-channel
    weights, nodes kept in float. A backend lists its recipes, its default first; when a variant
    fails verification the next ones are tried (workers/convert.py)."""

    name: str  # what the variant's note says: "entropy calibration", "output head in FP32"
    options: dict[str, Any] = field(default_factory=dict)


DEFAULT_RECIPE = Recipe("default")


Provider = str | tuple[str, dict[str, str]]  # an ONNX Runtime execution provider, with its options


def onnxruntime_runner(
    path: Path, outputs: list[str], provider: Provider = "", *, as_written: bool = False
) -> Runner:
    """Runs an ONNX variant on ``provider`` (with its options), or on the CPU provider; inputs and
    outputs by name (exports keep the source's tensor names).

    ONNX Runtime quietly falls back to the CPU when a provider cannot start (a missing CUDA
    library): that is refused here, so a variant never runs, and is never timed, elsewhere than
    where it says.

    ``as_written`` keeps the graph's Q/DQ nodes as they are, computing the quantized values in
    float, instead of fusing them into the CPU's integer kernels: those are the CPU's own shortcut,
    and on x86 CPUs without VNNI their u8 x s8 products saturate (measured: 7.5% mean error
    against 3.3% as written, on the sample classifier's XINT8 variant)."""
    import onnxruntime as ort

    wanted = provider or "CPUExecutionProvider"
    options = ort.SessionOptions()
    if as_written:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # no Q/DQ fusion
    session = ort.InferenceSession(str(path), options, providers=[wanted])
    name = wanted if isinstance(wanted, str) else wanted[0]
    if name not in session.get_providers():
        offered = ", ".join(ort.get_available_providers())
        raise ConversionError(f"ONNX Runtime could not start its {name} here (it offers {offered})")
    have = {output.name for output in session.get_outputs()}
    missing = [name for name in outputs if name not in have]
    if missing:
        raise ConversionError(
            f"{path.name} has no output named {', '.join(missing)} (it has {', '.join(have)})"
        )

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return list(session.run(outputs, feeds))

    return run
