"""The baseline: the submitted model run as is, by its own framework (TensorFlow, PyTorch,
scikit-learn, XGBoost, LightGBM, or ONNX Runtime for an ONNX submission). Every hardware class
measures it, so each speedup compares two runs on the same machine; batch scoring serves it where
it is the fastest verified variant (tree ensembles' own predict often is)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from farm.core.targets import TARGETS
from farm.core.toolchains import ONNXRUNTIME, package_versions
from workers.backends.base import DEFAULT_RECIPE, Recipe, TargetBackend
from workers.runtime import BuiltVariant, Runner

if TYPE_CHECKING:
    from farm.core.settings import FarmSettings
    from workers.calibration import Calibration
    from workers.sources import SourceModel


class NativeBackend(TargetBackend):
    target = TARGETS["native"]

    def __init__(self) -> None:
        # The "variant" is the source itself; load() hands back the runner convert() was given,
        # so the baseline is never loaded twice.
        self._source: SourceModel | None = None

    def toolchain(self, settings: FarmSettings) -> str:
        return package_versions(["tensorflow-cpu", "tensorflow", *ONNXRUNTIME])

    def convert(
        self,
        source: SourceModel,
        precision: str,
        calibration: Calibration,
        workdir: Path,
        settings: FarmSettings,
        recipe: Recipe = DEFAULT_RECIPE,
    ) -> BuiltVariant:
        self._source = source  # only the current task's source stays referenced
        return BuiltVariant(
            source.path, source.framework, "fp32", source.runtime, details=source.reload_details()
        )

    def load(self, variant: BuiltVariant, outputs: list[str]) -> Runner:
        """The source converted in this process, or else (a scoring worker) the model loaded again."""
        if self._source is not None and self._source.path == variant.path:
            return self._source.run
        from farm.core.modelfile import ModelFormat, TensorArg
        from workers.sources import load_with_scratch

        details = variant.details
        if "model_format" not in details:
            raise RuntimeError(f"native baseline {variant.path} was recorded before it could serve")
        source = load_with_scratch(
            variant.path,
            ModelFormat(details["model_format"]),
            [TensorArg.from_json(arg) for arg in details["inputs"]],
            outputs,
            "farm-native-",
            details.get("allow_pickle", False),
        )
        return source.run


BACKEND = NativeBackend()
