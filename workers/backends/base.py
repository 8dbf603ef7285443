"""The one small interface every backend implements, and what backends share."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from farm.errors import ConversionError, ToolchainMissingError
from farm.targets import Target, toolchain_problem

if TYPE_CHECKING:
    import numpy as np

    from workers.calibration import Calibration
    from workers.sources import SourceModel

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


class Backend(Protocol):
    target: Target  # its capabilities, as data (farm/targets.py)

    @property
    def name(self) -> str: ...

    @property
    def hardware(self) -> str | None: ...

    @property
    def precisions(self) -> tuple[str, ...]: ...

    def host_problems(self) -> list[str]:
        """Why this host cannot serve this backend; empty when it can."""
        ...

    def toolchain(self) -> str:
        """Versions of everything that shapes a variant (part of the variant cache key)."""
        ...

    def convert(
        self, source: SourceModel, precision: str, calibration: Calibration, workdir: Path
    ) -> BuiltVariant:
        """Build one variant of ``source`` at ``precision`` inside ``workdir``."""
        ...

    def load(self, variant: BuiltVariant, outputs: list[str]) -> Runner:
        """A runner for a variant this backend built, on this host's hardware, returning the
        outputs named ``outputs`` in that order."""
        ...


class TargetBackend:
    """What every backend shares: its capabilities read from its entry in farm/targets.py."""

    target: Target

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def hardware(self) -> str | None:
        return self.target.hardware

    @property
    def precisions(self) -> tuple[str, ...]:
        return self.target.precisions

    def host_problems(self) -> list[str]:
        return toolchain_problem(self.target)


def import_tensorflow() -> Any:
    """TensorFlow, quiet, with tf2onnx beside it; or an error naming the extra to install."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
        import tf2onnx  # noqa: F401
    except ImportError as exc:
        raise ToolchainMissingError(
            f"converting TensorFlow models needs {exc.name}: pip install 'farm[tf]'"
        ) from exc
    tf.get_logger().setLevel("ERROR")
    return tf


# ONNX Runtime's CPU and GPU builds are two distributions of one module (never both installed).
ONNXRUNTIME = ("onnxruntime", "onnxruntime-gpu")


def package_versions(distributions: Iterable[str]) -> str:
    """``"onnxruntime 1.31.1, tf2onnx 1.17.0"`` for the installed ones; read from metadata, so
    nothing heavy is imported (a cache hit must stay fast)."""
    found = []
    for name in distributions:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            continue
    return ", ".join(found)


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
