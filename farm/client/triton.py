"""One variant as an NVIDIA Triton model: its ``config.pbtxt`` (Triton's ModelConfig in protobuf
text format), written by hand so the client needs no Triton package.

Names, element types and dimensions come from the model file itself (an ONNX graph's inputs, less
its initializers, and its outputs): Triton checks the config against the file, not against what
the job store says. A TensorRT plan cannot be read without TensorRT, so its inputs come from the
variant's signature and its outputs are left for Triton to complete from the engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm.core.errors import FarmError
from farm.core.modelfile import TensorSpec
from farm.core.signature import onnx_dims, onnx_graph_inputs, onnx_output_batch_axes

ONNX_PLATFORM = "onnxruntime_onnx"
PLAN_PLATFORM = "tensorrt_plan"
MODEL_FILES = {ONNX_PLATFORM: "model.onnx", PLAN_PLATFORM: "model.plan"}  # Triton's default names
VERSION = "1"  # one version per exported model: its folder

# numpy dtype names (as TensorSpec holds them) -> Triton's DataType
TRITON_TYPES = {
    "bool": "TYPE_BOOL",
    "uint8": "TYPE_UINT8",
    "uint16": "TYPE_UINT16",
    "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64",
    "int8": "TYPE_INT8",
    "int16": "TYPE_INT16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "float16": "TYPE_FP16",
    "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
    "bfloat16": "TYPE_BF16",
    "object": "TYPE_STRING",  # ONNX strings
}


@dataclass(frozen=True)
class TritonModel:
    name: str
    platform: str
    inputs: list[TensorSpec]  # in the model's own layout, None for an open dimension
    outputs: list[TensorSpec]  # empty: Triton completes them from the model (a TensorRT plan)
    batched: bool  # every tensor has its batch first: Triton batches requests along it
    max_batch_size: int  # 0 when not batched
    kind: str  # KIND_CPU or KIND_GPU
    parameters: dict[str, str]

    def config_text(self) -> str:
        lines = [
            f"name: {_quoted(self.name)}",
            f"platform: {_quoted(self.platform)}",
            f"max_batch_size: {self.max_batch_size if self.batched else 0}",
            *_tensors("input", self.inputs, self.batched),
            *_tensors("output", self.outputs, self.batched),
        ]
        if self.batched:
            lines.append("dynamic_batching { }")
        lines += ["instance_group [", "  {", "    count: 1", f"    kind: {self.kind}", "  }", "]"]
        for key, value in self.parameters.items():
            value_text = f"{{ string_value: {_quoted(value)} }}"
            lines += ["parameters {", f"  key: {_quoted(key)}", f"  value: {value_text}", "}"]
        return "\n".join(lines) + "\n"


def onnx_tensors(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """An ONNX model file's inputs (initializers left out) and outputs: names, numpy dtypes, dims
    (None where open) and where each has its batch."""
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    model = onnx.load(str(path), load_external_data=False)
    if any(not _declared(value) for value in model.graph.output):
        # An exporter may leave an output's shape out; ONNX's own inference usually finds it (the
        # file exported stays as verified: only the config reads the inferred shapes).
        model = onnx.shape_inference.infer_shapes(model)
    graph = model.graph
    inputs = onnx_graph_inputs(graph)
    undeclared = [value.name for value in graph.output if not _declared(value)]
    if inputs is None or undeclared:
        raise FarmError(f"{path.name}: a tensor's shape is not declared in the model file; Triton needs it")
    moved = onnx_output_batch_axes(graph)
    outputs = []
    for value in graph.output:
        dims = tuple(dim if isinstance(dim, int) else None for dim in onnx_dims(value))
        dtype = tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name
        outputs.append(TensorSpec(value.name, dims, dtype, moved.get(value.name, 0) if dims else None))
    return inputs, outputs


def _declared(value: Any) -> bool:
    return bool(value.type.tensor_type.HasField("shape"))


def signature_inputs(signature: dict[str, Any]) -> list[TensorSpec]:
    """The inputs a variant's signature records (shapes in sample layout), in the model's layout."""
    return [
        TensorSpec(item["name"], (), item["dtype"], item.get("batch_axis", 0)).with_sample_shape(
            tuple(item["shape"])
        )
        for item in signature.get("inputs", [])
    ]


def batch_first(inputs: list[TensorSpec], outputs: list[TensorSpec], signature: dict[str, Any]) -> bool:
    """Whether Triton may batch the model along the first dimension of every tensor: each has an
    open first dimension that is the batch, by the model file and by the signature (a recurrent
    state ``(2, batch, 64)`` or a fixed batch of 1 is not batched so)."""
    declared = {item["name"]: item.get("batch_axis", 0) for item in signature.get("inputs", [])}
    moved = signature.get("output_batch_axes", {})
    tensors = [*inputs, *outputs]
    return (
        bool(inputs)
        and all(t.batch_axis == 0 and t.shape and t.shape[0] is None for t in tensors)
        and all(declared.get(t.name, 0) == 0 for t in inputs)
        and not any(t.name in moved for t in outputs)
    )


def _tensors(role: str, tensors: list[TensorSpec], batched: bool) -> list[str]:
    if not tensors:
        return []
    lines = [f"{role} ["]
    for index, tensor in enumerate(tensors):
        dims = list(tensor.shape[1:] if batched else tensor.shape)
        lines += [
            "  {",
            f"    name: {_quoted(tensor.name)}",
            f"    data_type: {_triton_type(tensor)}",
            # Triton wants at least one dimension: a scalar (per request) is [1], reshaped to [].
            f"    dims: {_dims(dims or [1])}",
        ]
        if not dims:
            lines.append("    reshape { shape: [ ] }")
        lines.append("  }," if index < len(tensors) - 1 else "  }")
    return [*lines, "]"]


def _triton_type(tensor: TensorSpec) -> str:
    if tensor.dtype not in TRITON_TYPES:
        raise FarmError(f"tensor {tensor.name}: Triton has no type for {tensor.dtype}")
    return TRITON_TYPES[tensor.dtype]


def _dims(dims: Iterable[int | None]) -> str:
    return "[ " + ", ".join("-1" if dim is None else str(dim) for dim in dims) + " ]"


def _quoted(text: str) -> str:
    """A protobuf text-format string: quotes, backslashes and control characters escaped (octal,
    which every protobuf text parser reads); other characters as UTF-8."""
    escaped = []
    for char in text:
        if char in '"\\':
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\{ord(char):03o}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'
