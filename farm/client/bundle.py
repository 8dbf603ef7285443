"""Variants Triton does not serve, as plain bundles: a TFLite model (LiteRT, for ARM CPUs) or the
DPU's XINT8 ONNX (ONNX Runtime's Vitis AI provider), each in a folder of its own::

    model.tflite | model.onnx   the variant, as verified
    manifest.json               inputs, outputs, batch axes, precision, verdict, runtime, host
    sample.npz                  a few samples in the model's own layout, keyed by input name
    score.py                    runs the model on the sample (numpy and the runtime only)

The sample is the job's own (the first samples of its --calib file) where it has one, else seeded
random data of the signature's shapes and dtypes: enough to check a deployment runs the model,
not to judge its accuracy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from db.models import Variant
from farm.client.triton import onnx_tensors, signature_inputs
from farm.core.errors import UsageError
from farm.core.modelfile import TensorSpec, shape_text

if TYPE_CHECKING:
    from farm.core.calibfile import SampleFile

SAMPLES = 8
SAMPLE_FILE = "sample.npz"
SCRIPT = "score.py"
SEED = 0


@dataclass(frozen=True)
class BundleKind:
    runner: str  # score.py's runner for it
    model_file: str
    summary: str  # for the line printed per bundle


TFLITE = BundleKind("litert", "model.tflite", "TFLite for LiteRT")
XINT8 = BundleKind("onnxruntime", "model.onnx", "XINT8 ONNX for the DPU: ONNX Runtime, Vitis AI provider")


def bundle_kind(variant: Variant) -> BundleKind | None:
    """The bundle a variant goes in; None for one Triton serves."""
    if variant.format == "tflite":
        return TFLITE
    if variant.backend == "fpga":  # ONNX, but for the DPU: Triton has no Vitis AI backend
        return XINT8
    return None


def write_bundle(
    folder: Path, kind: BundleKind, variant: Variant, record: dict[str, Any], calib: SampleFile | None
) -> None:
    """The manifest, sample and script beside the model file, already copied into ``folder``."""
    inputs, outputs = _tensors(kind, variant, folder / kind.model_file)
    arrays: dict[str, Any] = sample_arrays(inputs, calib)  # Any: numpy's stubs take savez's keywords
    np.savez(folder / SAMPLE_FILE, **arrays)
    manifest = {
        "name": folder.name,
        "model_file": kind.model_file,
        "runner": kind.runner,
        "inputs": [_tensor_json(spec) for spec in inputs],
        "outputs": outputs,
        "sample": SAMPLE_FILE,
        "sample_from": _sample_origin(calib),
        "samples": _count(calib),
        "script": SCRIPT,
        **record,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (folder / SCRIPT).write_text(files("farm.client").joinpath("bundle_score.py").read_text())


def _tensors(
    kind: BundleKind, variant: Variant, model: Path
) -> tuple[list[TensorSpec], list[dict[str, Any]]]:
    """Inputs and outputs as the manifest lists them: an ONNX model's from the file itself (open
    dimensions the signature knows filled in); a TFLite model's from the signature, which names
    its outputs but not their shapes (reading a flatbuffer needs LiteRT)."""
    signature = variant.signature or {}
    declared = signature_inputs(signature)
    if kind is TFLITE:
        moved = signature.get("output_batch_axes", {})
        outputs = [
            {"name": name, "shape": None, "dtype": None, "batch_axis": moved.get(name, 0)}
            for name in signature.get("outputs", [])
        ]
        return declared, outputs
    inputs, onnx_outputs = onnx_tensors(model)
    known = {spec.name: spec for spec in declared}
    return [_filled(spec, known.get(spec.name)) for spec in inputs], [_tensor_json(s) for s in onnx_outputs]


def _filled(spec: TensorSpec, known: TensorSpec | None) -> TensorSpec:
    """The model file's open dimensions (not its batch) with the sizes the signature recorded."""
    if known is None or len(known.shape) != len(spec.shape):
        return spec
    shape = tuple(
        theirs if mine is None and axis != spec.batch_axis else mine
        for axis, (mine, theirs) in enumerate(zip(spec.shape, known.shape, strict=True))
    )
    return TensorSpec(spec.name, shape, spec.dtype, spec.batch_axis)


def _tensor_json(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype, "batch_axis": spec.batch_axis}


def sample_arrays(specs: list[TensorSpec], calib: SampleFile | None) -> dict[str, np.ndarray]:
    """SAMPLES samples per input in the model's own layout: from the --calib file, or random."""
    rows = {k: v[:SAMPLES] for k, v in calib.arrays_for(specs).items()} if calib else _random_rows(specs)
    return {spec.name: _model_layout(rows[spec.name], spec) for spec in specs}


def _random_rows(specs: list[TensorSpec]) -> dict[str, np.ndarray]:
    """Seeded random samples, one per row: normal floats, small integers, booleans."""
    rng = np.random.default_rng(SEED)
    rows = {}
    for spec in specs:
        rest = spec.sample_shape[1:]
        if None in rest:
            raise UsageError(
                f"input {spec.name} has open dimensions {shape_text(spec.sample_shape)} and the job "
                "has no --calib file to take a sample's shape from"
            )
        shape = (SAMPLES, *(dim for dim in rest if dim is not None))
        kind = np.dtype(spec.dtype).kind
        if kind == "b":
            rows[spec.name] = rng.random(shape) < 0.5
        elif kind in "iu":
            rows[spec.name] = rng.integers(0, 10, shape).astype(spec.dtype)  # valid as ids or classes
        else:
            rows[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
    return rows


def _model_layout(rows: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Samples (one per row) as the model takes them: the batch on its axis; a scalar input is
    one value for all of them."""
    if spec.batch_axis is None:
        return np.asarray(rows[0])
    return np.ascontiguousarray(np.moveaxis(rows, 0, spec.batch_axis))


def _count(calib: SampleFile | None) -> int:
    return SAMPLES if calib is None else min(SAMPLES, len(next(iter(calib.inputs.values()))))


def _sample_origin(calib: SampleFile | None) -> str:
    if calib is None:
        return f"seeded random data (numpy default_rng({SEED})): the job has no --calib file"
    return f"the first {_count(calib)} samples of the job's {calib.label}"
