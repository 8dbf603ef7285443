"""x86 CPU: ONNX Runtime, with its graph optimisations applied and saved into the variant."""

from __future__ import annotations

from pathlib import Path

from workers.backends.base import BuiltVariant, Runner, toolchain_problem
from workers.sources import SourceModel


class CpuBackend:
    hardware = "cpu"
    summary = "ONNX Runtime on x86 CPUs (FP32, optimised graph)"
    requires = ("tensorflow", "tf2onnx", "onnxruntime")
    extra = "tf"

    def host_problems(self) -> list[str]:
        return toolchain_problem(self)

    def convert(self, source: SourceModel, workdir: Path) -> list[BuiltVariant]:
        import onnxruntime as ort

        exported = workdir / "exported.onnx"
        source.write_onnx(exported)
        optimised = workdir / "model.onnx"
        options = ort.SessionOptions()
        # EXTENDED, not ALL: ALL adds layout transforms for this very CPU's instruction set,
        # and a variant must run on every x86 worker of the farm.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(optimised)
        ort.InferenceSession(str(exported), options, providers=["CPUExecutionProvider"])
        return [BuiltVariant(optimised, "onnx", "fp32", f"onnxruntime {ort.__version__}")]

    def load(self, variant: BuiltVariant) -> Runner:
        import onnxruntime as ort

        session = ort.InferenceSession(str(variant.path), providers=["CPUExecutionProvider"])
        output_names = [output.name for output in session.get_outputs()]

        def run(feeds: dict) -> list:
            return list(session.run(output_names, feeds))

        return run


BACKEND = CpuBackend()
