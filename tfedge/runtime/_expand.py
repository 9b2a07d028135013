"""`expand`: a packed model back to a plain .tflite, in memory
(docs/FORMAT.md section 1)."""

from __future__ import annotations

import numpy as np

from tfedge.errors import FormatError
from tfedge.tflite import (
    DENSIFY_FORMAT_VERSION,
    TYPES,
    buffer_data,
    check_decode_buffers,
    check_unshared_size,
    densify_opcode,
    foreign_errors_as_format_errors,
    read,
    restore_sparse,
    tensor_bytes,
    tensor_name,
    write,
)

# Decoded tensors are bounded by their own byte size; this bounds the rest.
MAX_DECODED = 2**31 - 1
# The newest file format version this reader accepts: the payloads' (FORMAT_VERSION of
# tfedge.codecs), or 4 for a file with densify decoders (docs/FORMAT.md section 4).
FILE_FORMAT_VERSION = DENSIFY_FORMAT_VERSION


def _decoder():
    """The native payload decoder when it is built, else the numpy reference."""
    try:
        from tfedge.runtime._native import decode_payload_native, native_available
    except ImportError:
        native_available = None
    if native_available is not None and native_available():
        return decode_payload_native
    from tfedge.codecs import decode_payload

    return decode_payload


def expand(packed, *, decoder=None, trusted: bool = False) -> bytes:
    """Returns the plain .tflite bytes of a packed model (bytes, a path or a `Packed`).

    Every TFEDGE_DECODE payload is decoded into its weight buffer and the decode
    operators, payload tensors and the `tfedge` metadata are removed; the result runs in
    any TFLite interpreter at the plain model's speed. A model that tfedge did not pack
    is returned as it is.

    Work is bounded by the file (docs/FORMAT.md, "Resource bound"): a payload of `c`
    bytes may decode to at most max(R x c, F) bytes (`tfedge.codecs.EXPANSION_RATIO`,
    `EXPANSION_FLOOR`), unless `trusted=True`, for a file whose source you trust.

    Raises `tfedge.FormatError` naming the tensor for any malformed payload, and for
    any file that is not a well-formed packed model.
    """
    data = _as_bytes(packed)
    with foreign_errors_as_format_errors():
        return _expand(data, decoder or _decoder(), trusted=trusted)


def read_packed(data: bytes, *, trusted: bool = False):
    """(model, format version or None, decode jobs): the checks every reader makes
    before decoding anything (docs/FORMAT.md, "Hostile files"). A job is
    (subgraph, payload tensor, weight tensor, tensor bytes, decoded-size bound,
    sparse tensor of a densify decoder or None)."""
    from tfedge.tflite import check_densify_ops, decode_ops, packed_format_version

    model = read(data)
    version = packed_format_version(model)
    ops = list(decode_ops(model))
    if version is None and not ops:
        return model, None, []
    if version is not None and version > FILE_FORMAT_VERSION:
        raise FormatError(
            f"packed format version {version} is newer than this tfedge reads "
            f"({FILE_FORMAT_VERSION}): upgrade tfedge"
        )
    check_decode_buffers(model, ops)
    targets = check_densify_ops(model, ops, version)
    check_unshared_size(model, len(data))
    return (
        model,
        version,
        [_job(model, op, trusted) + (targets.get(op[:2]),) for op in ops],
    )


def _job(model, op, trusted: bool):
    """One decode operator's static checks: the weight tensor's type and shape, and
    its size against the resource bound."""
    from tfedge.codecs import decoded_bound

    si, _oi, p_index, w_index = op
    sg = model.subgraphs[si]
    weight_t = sg.tensors[w_index]
    name = tensor_name(weight_t)
    info = TYPES.get(weight_t.type)
    if info is None or info.itemsize == 0:
        raise FormatError(
            f"decoded tensor has type {weight_t.type}, which has no fixed element size",
            tensor=name,
        )
    shape = [] if weight_t.shape is None else [int(d) for d in weight_t.shape]
    if any(d < 0 for d in shape):
        raise FormatError(f"decoded tensor has a dynamic shape {shape}", tensor=name)
    expected = tensor_bytes(shape, info.itemsize)
    coded = buffer_data(model, sg.tensors[p_index].buffer).size
    bound = MAX_DECODED if trusted else min(MAX_DECODED, decoded_bound(coded))
    if expected > bound:
        raise FormatError(bound_message(expected, coded, trusted), tensor=name)
    return si, p_index, w_index, expected, bound


def _expand(data: bytes, decode, *, trusted: bool) -> bytes:
    from tfedge.tflite import remove_decoders

    model, version, jobs = read_packed(data, trusted=trusted)
    if version is None and not jobs:
        return data
    decoded: dict[int, np.ndarray] = {}
    for si, p_index, w_index, expected, bound, sparse in jobs:
        sg = model.subgraphs[si]
        payload_t, weight_t = sg.tensors[p_index], sg.tensors[w_index]
        name = tensor_name(weight_t)
        payload = buffer_data(model, payload_t.buffer)
        out = np.asarray(
            decode(payload, name=name, max_decoded=bound, expected_size=expected),
            np.uint8,
        )
        _check_header_type(payload, weight_t.type, name)
        if sparse is not None:
            # A densify decoder: the sparse tensor's values and index come back.
            decoded[sg.tensors[sparse].buffer] = restore_sparse(model, sg, sparse, out)
            continue
        previous = decoded.get(weight_t.buffer)
        if previous is not None and not np.array_equal(previous, out):
            raise FormatError(
                "two payloads decode to different data for shared buffer "
                f"{weight_t.buffer}",
                tensor=name,
            )
        decoded[weight_t.buffer] = out
    remove_decoders(model, decoded, densify_opcode(model))
    return write(model)


def bound_message(expected: int, coded: int, trusted: bool) -> str:
    """Why a tensor of `expected` bytes is refused from a payload of `coded` bytes."""
    from tfedge.codecs import EXPANSION_FLOOR, EXPANSION_RATIO

    if trusted:
        return f"the tensor's {expected} bytes are over the {MAX_DECODED}-byte limit"
    return (
        f"the tensor's {expected} bytes are over the resource bound of a {coded}-byte "
        f"payload, max({EXPANSION_RATIO} x {coded}, {EXPANSION_FLOOR}) bytes; a "
        "caller who trusts the file can lift it (trusted=True)"
    )


def _check_header_type(payload: np.ndarray, tensor_type: int, name: str) -> None:
    # Called after a successful decode, so the header is known to be well formed.
    element_type = int(payload[7])
    if element_type != tensor_type:
        raise FormatError(
            f"payload decodes to element type {element_type}, but the tensor has type "
            f"{tensor_type} ({TYPES[tensor_type].name})",
            tensor=name,
            offset=7,
        )


def _as_bytes(packed) -> bytes:
    if isinstance(packed, (bytes, bytearray, memoryview)):
        return bytes(packed)
    if hasattr(packed, "__bytes__"):
        return bytes(packed)
    import os

    if isinstance(packed, (str, os.PathLike)):
        with open(packed, "rb") as f:
            return f.read()
    raise TypeError(
        f"Expected packed .tflite bytes, a path or a tfedge.Packed. Received: "
        f"{type(packed).__name__}"
    )
