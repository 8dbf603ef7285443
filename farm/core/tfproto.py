"""TensorFlow's GraphDef and SavedModel messages, cut down to what the client reads without
TensorFlow: node names, ops and inputs, and each input's dtype and shape.

Fields declared here keep TensorFlow's field numbers, so a real file parses; every field left out
survives as an unknown field. Enum fields (DataType) are declared as int32: the same varint on
the wire.
"""

from __future__ import annotations

from functools import cache
from typing import Any

PACKAGE = "farm_tf"
STRING, INT32, INT64, BOOL, MESSAGE = 9, 5, 3, 8, 11  # FieldDescriptorProto types
OPTIONAL, REPEATED = 1, 3

# TensorFlow's DataType numbers, as numpy names (types.proto); others cannot feed a model here.
DATA_TYPES = {
    1: "float32",
    2: "float64",
    3: "int32",
    4: "uint8",
    5: "int16",
    6: "int8",
    9: "int64",
    10: "bool",
    17: "uint16",
    19: "float16",
    22: "uint32",
    23: "uint64",
}

# message name -> fields (number, name, type, label, message type or "")
_MESSAGES: dict[str, list[tuple[int, str, int, int, str]]] = {
    "Dim": [(1, "size", INT64, OPTIONAL, ""), (2, "name", STRING, OPTIONAL, "")],
    "TensorShapeProto": [(2, "dim", MESSAGE, REPEATED, "Dim"), (3, "unknown_rank", BOOL, OPTIONAL, "")],
    "AttrValue": [(6, "type", INT32, OPTIONAL, ""), (7, "shape", MESSAGE, OPTIONAL, "TensorShapeProto")],
    "NodeDef": [
        (1, "name", STRING, OPTIONAL, ""),
        (2, "op", STRING, OPTIONAL, ""),
        (3, "input", STRING, REPEATED, ""),
        (5, "attr", MESSAGE, REPEATED, "NodeDef.AttrEntry"),
    ],
    "GraphDef": [(1, "node", MESSAGE, REPEATED, "NodeDef")],
    "TensorInfo": [
        (1, "name", STRING, OPTIONAL, ""),
        (2, "dtype", INT32, OPTIONAL, ""),
        (3, "tensor_shape", MESSAGE, OPTIONAL, "TensorShapeProto"),
    ],
    "SignatureDef": [(1, "inputs", MESSAGE, REPEATED, "SignatureDef.InputsEntry")],
    "MetaGraphDef": [(5, "signature_def", MESSAGE, REPEATED, "MetaGraphDef.SignatureDefEntry")],
    "SavedModel": [(2, "meta_graphs", MESSAGE, REPEATED, "MetaGraphDef")],
}
# map<string, V> fields: (containing message, entry name, value message)
_MAPS = [
    ("NodeDef", "AttrEntry", "AttrValue"),
    ("SignatureDef", "InputsEntry", "TensorInfo"),
    ("MetaGraphDef", "SignatureDefEntry", "SignatureDef"),
]


def graph_def_class() -> type:
    return _message_class("GraphDef")


def saved_model_class() -> type:
    return _message_class("SavedModel")


def shape_of(shape: Any) -> tuple[int | None, ...] | None:
    """A TensorShapeProto as a tuple (None for an unknown dimension), or None for an unknown rank."""
    if shape.unknown_rank:
        return None
    return tuple(dim.size if dim.size >= 0 else None for dim in shape.dim)


@cache
def _message_class(name: str) -> type:
    from google.protobuf import descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file_descriptor())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))


def _file_descriptor() -> Any:
    from google.protobuf import descriptor_pb2

    proto = descriptor_pb2.FileDescriptorProto(name="farm_tf.proto", package=PACKAGE, syntax="proto3")
    messages = {}
    for name, fields in _MESSAGES.items():
        message = proto.message_type.add(name=name)
        messages[name] = message
        for number, field_name, kind, label, type_name in fields:
            field = message.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = f".{PACKAGE}.{type_name}"
    for parent, entry, value in _MAPS:
        nested = messages[parent].nested_type.add(name=entry)
        nested.options.map_entry = True
        nested.field.add(name="key", number=1, type=STRING, label=OPTIONAL)
        value_type = f".{PACKAGE}.{value}"
        nested.field.add(name="value", number=2, type=MESSAGE, label=OPTIONAL, type_name=value_type)
    return proto
