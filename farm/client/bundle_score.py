"""Score a farm bundle's model on its sample (or on your own .npz): ``python score.py OUT.npz``.

Standalone: numpy and the model's runtime only (``pip install numpy ai-edge-litert`` for a
.tflite model, ``pip install numpy onnxruntime`` for an ONNX one). It reads manifest.json beside
it, feeds the model the arrays of sample.npz (or ``--sample FILE``, keyed by input name, in the
model's own layout), writes each output to OUT.npz under its name and prints one line per output.

An ONNX model for a Xilinx DPU runs on ONNX Runtime's VitisAIExecutionProvider when it is
installed (AMD's Vitis AI / Ryzen AI runtime; VAIP_CONFIG names its vaip_config.json), and says so
on stderr; elsewhere on the CPU provider with its Q/DQ nodes as written, as farm verified it.

farm export writes this file into every bundle; it is not imported by farm itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
VITIS = "VitisAIExecutionProvider"
Run = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score a farm bundle's model on its sample.")
    parser.add_argument("out", type=Path, help="the .npz file to write the outputs to")
    parser.add_argument("--sample", type=Path, help="inputs to score instead of the bundle's sample")
    args = parser.parse_args(argv)
    manifest = json.loads((HERE / "manifest.json").read_text())
    with np.load(args.sample or HERE / manifest["sample"], allow_pickle=False) as sample:
        feeds = {spec["name"]: sample[spec["name"]] for spec in manifest["inputs"]}
    names = [spec["name"] for spec in manifest["outputs"]]
    run = RUNNERS[manifest["runner"]](HERE / manifest["model_file"], names)
    outputs = dict(zip(names, run(feeds), strict=True))
    np.savez(args.out, **outputs)
    for name, array in outputs.items():
        print(f"{name}: {array.dtype} {tuple(array.shape)}")
    return 0


def litert(model: Path, outputs: list[str]) -> Run:
    """A .tflite model on LiteRT; inputs resized to the arrays given (the batch may change)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        sys.exit("error: this model runs on LiteRT: pip install ai-edge-litert")
    interpreter = Interpreter(model_path=str(model))

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        inputs = interpreter.get_input_details()
        for name, array in feeds.items():
            interpreter.resize_tensor_input(_index(inputs, name), array.shape)
        interpreter.allocate_tensors()
        for name, array in feeds.items():
            interpreter.set_tensor(_index(inputs, name), array)
        interpreter.invoke()
        found = interpreter.get_output_details()
        return [interpreter.get_tensor(_index(found, name)) for name in outputs]

    return run


def _index(details: list[dict[str, Any]], name: str) -> int:
    """A TFLite tensor by name: the converter names a graph's tensor ``x:0`` as ``x``."""
    by_name = {detail["name"]: detail["index"] for detail in details}
    for candidate in (name, name.removesuffix(":0")):
        if candidate in by_name:
            return int(by_name[candidate])
    sys.exit(f"error: the model has no tensor {name} (it has {', '.join(by_name)})")


def onnxruntime(model: Path, outputs: list[str]) -> Run:
    try:
        import onnxruntime as ort
    except ImportError:
        sys.exit("error: this model runs on ONNX Runtime: pip install onnxruntime")
    options = ort.SessionOptions()
    if VITIS in ort.get_available_providers():
        config = os.environ.get("VAIP_CONFIG")
        providers: list[Any] = [(VITIS, {"config_file": config}) if config else VITIS, "CPUExecutionProvider"]
        print(f"running on {VITIS} (what the DPU cannot run stays on the CPU)", file=sys.stderr)
    else:
        # The CPU stands in for the DPU: its int8 arithmetic as written, not the CPU's own fused
        # integer kernels (which saturate on x86 CPUs without VNNI).
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        providers = ["CPUExecutionProvider"]
        print(f"no {VITIS} here: running on the CPU provider, Q/DQ nodes as written", file=sys.stderr)
    session = ort.InferenceSession(str(model), options, providers=providers)
    return lambda feeds: list(session.run(outputs, feeds))


RUNNERS: dict[str, Callable[[Path, list[str]], Run]] = {"litert": litert, "onnxruntime": onnxruntime}

if __name__ == "__main__":
    sys.exit(main())
