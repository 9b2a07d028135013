"""Flatbuffer I/O for .tflite files: read, edit and write; no policy and no
TensorFlow.

Besides plain models, the packed graph (docs/FORMAT.md section 1): the TFEDGE_DECODE
operator surgery both ways (`insert_decoders`, `remove_decoders`, `decode_ops`), the
DENSIFY-sparse tensors packed as their dense tensors and restored (`densify_sources`,
`restore_sparse`), the
`tfedge` metadata entry with the format version (`packed_format_version`), and the
file-level checks every reader of a packed model makes (`check_decode_buffers`,
`check_unshared_size`, `foreign_errors_as_format_errors`).
"""

from tfedge.tflite._densify import (
    DENSIFY_FORMAT_VERSION,
    check_densify_ops,
    densify_opcode,
    densify_sources,
    index_bytes,
    index_data,
    restore_sparse,
)
from tfedge.tflite._model import (
    ARCHIVE_ATTR,
    FILE_IDENTIFIER,
    TYPES,
    TensorTypeInfo,
    aligned_buffer_class,
    buffer_data,
    custom_code,
    opcode_index,
    opcode_name,
    read,
    tensor_array,
    tensor_name,
    write,
)
from tfedge.tflite._packed import (
    DECODE_OP,
    METADATA_NAME,
    PAYLOAD_SUFFIX,
    decode_ops,
    insert_decoders,
    new_buffer,
    packed_format_version,
    remove_decoders,
)
from tfedge.tflite._packed_checks import (
    MAX_METADATA_DEPTH,
    MAX_UNSHARED_GROWTH,
    UNSHARED_SLACK,
    check_decode_buffers,
    check_unshared_size,
    foreign_errors_as_format_errors,
    metadata_format_version,
    tensor_bytes,
    unshared_size,
)
from tfedge.tflite._schema import schema

__all__ = [
    "ARCHIVE_ATTR",
    "DECODE_OP",
    "DENSIFY_FORMAT_VERSION",
    "FILE_IDENTIFIER",
    "MAX_METADATA_DEPTH",
    "MAX_UNSHARED_GROWTH",
    "METADATA_NAME",
    "PAYLOAD_SUFFIX",
    "TYPES",
    "UNSHARED_SLACK",
    "TensorTypeInfo",
    "aligned_buffer_class",
    "buffer_data",
    "check_decode_buffers",
    "check_densify_ops",
    "check_unshared_size",
    "custom_code",
    "decode_ops",
    "densify_opcode",
    "densify_sources",
    "foreign_errors_as_format_errors",
    "index_bytes",
    "index_data",
    "insert_decoders",
    "metadata_format_version",
    "new_buffer",
    "opcode_index",
    "opcode_name",
    "packed_format_version",
    "read",
    "remove_decoders",
    "restore_sparse",
    "schema",
    "tensor_array",
    "tensor_bytes",
    "tensor_name",
    "unshared_size",
    "write",
]
