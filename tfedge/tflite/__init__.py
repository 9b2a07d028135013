"""Flatbuffer I/O for .tflite files: read, edit and write; no policy and no
TensorFlow."""

from tfedge.tflite._model import (
    ARCHIVE_ATTR,
    FILE_IDENTIFIER,
    TYPES,
    TensorTypeInfo,
    buffer_data,
    custom_code,
    opcode_index,
    opcode_name,
    read,
    tensor_array,
    tensor_name,
    write,
)
from tfedge.tflite._schema import schema

__all__ = [
    "ARCHIVE_ATTR",
    "FILE_IDENTIFIER",
    "TYPES",
    "TensorTypeInfo",
    "buffer_data",
    "custom_code",
    "opcode_index",
    "opcode_name",
    "read",
    "schema",
    "tensor_array",
    "tensor_name",
    "write",
]
