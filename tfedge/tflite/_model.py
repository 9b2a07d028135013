"""Read, edit and write .tflite flatbuffers (no policy here, and no TensorFlow).

`read` turns bytes into the schema's object API (`ModelT`) with every buffer's data as a
zero-copy numpy view; `write` serialises it back. Tables, unions and custom operators
that tfedge does not know are carried through as the schema module holds them. Buffers
stored past the flatbuffer (`Buffer.offset`/`size`, used by models over 2 GiB) and large
custom options are read into memory, and written back past the flatbuffer when the model
needs it. A zip archive appended to the file (TFLite Support metadata's associated
files, such as label lists) is kept on the model as `ARCHIVE_ATTR` and appended again by
`write`, its offsets moved to where it lands.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

import flatbuffers
import numpy as np

from tfedge.errors import FormatError
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
    "tensor_array",
    "tensor_name",
    "write",
]

FILE_IDENTIFIER = b"TFL3"
# Flatbuffers address at most 2 GiB; above this, buffers are written past the
# flatbuffer.
_FLATBUFFER_LIMIT = 2**31 - 2**26
_EXTERNAL_ALIGN = 16
_PLACEHOLDER = (
    1 << 62
)  # a non-default value, so the field is always written with 8 bytes
# The attribute of a read `ModelT` that holds the zip archive appended to its file (its
# offsets counted from the archive's own start), or None.
ARCHIVE_ATTR = "tfedge_archive"
# Zip records (APPNOTE 4.3): end of central directory, central directory entry, local
# file header; their fixed sizes; and the largest end-record comment.
_ZIP_END, _ZIP_CENTRAL, _ZIP_LOCAL = b"PK\x05\x06", b"PK\x01\x02", b"PK\x03\x04"
_ZIP_END_SIZE, _ZIP_CENTRAL_SIZE = 22, 46
_ZIP_MAX_COMMENT = 0xFFFF


@dataclass(frozen=True)
class TensorTypeInfo:
    name: str
    itemsize: int  # bytes per element; 0 for types without a fixed size
    dtype: np.dtype | None  # numpy dtype of the stored elements, when numpy has one


def _types() -> dict[int, TensorTypeInfo]:
    t = schema().TensorType
    table = {
        t.FLOAT32: ("FLOAT32", 4, np.float32),
        t.FLOAT16: ("FLOAT16", 2, np.float16),
        t.INT32: ("INT32", 4, np.int32),
        t.UINT8: ("UINT8", 1, np.uint8),
        t.INT64: ("INT64", 8, np.int64),
        t.STRING: ("STRING", 0, None),
        t.BOOL: ("BOOL", 1, np.bool_),
        t.INT16: ("INT16", 2, np.int16),
        t.COMPLEX64: ("COMPLEX64", 8, np.complex64),
        t.INT8: ("INT8", 1, np.int8),
        t.FLOAT64: ("FLOAT64", 8, np.float64),
        t.COMPLEX128: ("COMPLEX128", 16, np.complex128),
        t.UINT64: ("UINT64", 8, np.uint64),
        t.RESOURCE: ("RESOURCE", 0, None),
        t.VARIANT: ("VARIANT", 0, None),
        t.UINT32: ("UINT32", 4, np.uint32),
        t.UINT16: ("UINT16", 2, np.uint16),
        # Packed sub-byte and exotic types: bytes are carried as they are.
        t.INT4: ("INT4", 0, None),
        t.BFLOAT16: ("BFLOAT16", 2, np.uint16),
    }
    for name in ("INT2", "UINT4", "FLOAT8_E4M3FN", "FLOAT8_E5M2"):
        if hasattr(t, name):
            size = 1 if name.startswith("FLOAT8") else 0
            table[getattr(t, name)] = (name, size, np.uint8 if size else None)
    return {
        k: TensorTypeInfo(n, s, np.dtype(d) if d else None)
        for k, (n, s, d) in table.items()
    }


TYPES: dict[int, TensorTypeInfo] = _types()


@functools.cache
def aligned_buffer_class():
    """The schema's BufferT subclass that writes its data 16-byte aligned (what
    `write` uses for every buffer; new buffers made with it stay aligned)."""
    base = schema().BufferT

    class AlignedBufferT(base):
        """BufferT whose data is 16-byte aligned in the written file, as TFLite
        prefers."""

        def Pack(self, builder):  # noqa: N802 - the schema's method name
            s = schema()
            data_off = None
            if self.data is not None:
                raw = np.asarray(self.data, dtype=np.uint8).reshape(-1)
                n = raw.size
                builder.StartVector(1, n, 16)
                builder.head -= n
                builder.Bytes[builder.head : builder.head + n] = raw.tobytes()
                builder.vectorNumElems = n
                data_off = builder.EndVector()
            s.BufferStart(builder)
            if data_off is not None:
                s.BufferAddData(builder, data_off)
            s.BufferAddOffset(builder, self.offset)
            s.BufferAddSize(builder, self.size)
            return s.BufferEnd(builder)

    return AlignedBufferT


def read(data: bytes | bytearray | memoryview) -> object:
    """Parses a .tflite flatbuffer into the schema's `ModelT`.

    Every buffer's `data` is a read-only numpy uint8 view (or None). Raises
    `FormatError` for anything that is not a well-formed .tflite file.
    """
    data = bytes(data)
    if len(data) < 8:
        raise FormatError(
            f"not a .tflite file: {len(data)} bytes is shorter than "
            "a flatbuffer header",
            offset=0,
        )
    if data[4:8] != FILE_IDENTIFIER:
        raise FormatError(
            f"not a .tflite file: file identifier is {data[4:8]!r}, expected "
            f"{FILE_IDENTIFIER!r} (is this a TensorFlow SavedModel, a .keras or a "
            "truncated file?)",
            offset=4,
        )
    (root,) = struct.unpack_from("<I", data, 0)
    if root + 4 > len(data):
        raise FormatError(
            f"truncated .tflite file: root table at byte {root} is past the end "
            f"({len(data)} bytes)",
            offset=0,
        )
    s = schema()
    try:
        model = s.ModelT.InitFromObj(s.Model.GetRootAs(data, 0))
    except (
        struct.error,
        IndexError,
        ValueError,
        TypeError,
        UnicodeDecodeError,
        OverflowError,
        AttributeError,
    ) as e:
        raise FormatError(
            f"corrupted or truncated .tflite flatbuffer ({type(e).__name__}: {e})"
        ) from e
    _check_structure(model, data)
    aligned = aligned_buffer_class()
    buffers = []
    for i, b in enumerate(model.buffers or []):
        nb = aligned()
        nb.data, nb.offset, nb.size = b.data, 0, 0
        if b.offset > 1:
            end = b.offset + b.size
            if end > len(data):
                raise FormatError(
                    f"buffer {i} is stored at bytes {b.offset}..{end}, past the end of "
                    f"the file ({len(data)} bytes): truncated file",
                    offset=b.offset,
                )
            nb.data = np.frombuffer(data, np.uint8, count=b.size, offset=b.offset)
        buffers.append(nb)
    model.buffers = buffers
    for sg in model.subgraphs or []:
        for op in sg.operators or []:
            if op.largeCustomOptionsOffset > 1:
                start, size = op.largeCustomOptionsOffset, op.largeCustomOptionsSize
                if start + size > len(data):
                    raise FormatError(
                        "large custom options past the end of the file: truncated file",
                        offset=start,
                    )
                op.customOptions = np.frombuffer(
                    data, np.uint8, count=size, offset=start
                )
                op.largeCustomOptionsOffset = op.largeCustomOptionsSize = 0
    setattr(model, ARCHIVE_ATTR, _appended_archive(data))
    return model


@dataclass(frozen=True)
class _Zip:
    """A zip archive at the end of some bytes: where it starts, what its stored offsets
    are counted from (stored + base = position in the bytes), its end record, stored
    central directory offset and central directory entries' positions."""

    start: int
    base: int
    end: int
    cd_offset: int
    entries: tuple[int, ...]


def _find_zip(data: bytes, *, appended: bool = True) -> _Zip | None:
    """The zip archive whose end record ends `data` and whose directory is whole (with
    `appended`, one that follows at least a flatbuffer header), or None."""
    end = data.rfind(
        _ZIP_END, max(0, len(data) - _ZIP_END_SIZE - _ZIP_MAX_COMMENT), len(data)
    )
    if end < 0 or end + _ZIP_END_SIZE > len(data):
        return None
    disk, cd_disk, n_disk, n, cd_size, cd_off, comment = struct.unpack_from(
        "<HHHHIIH", data, end + 4
    )
    if end + _ZIP_END_SIZE + comment != len(data) or disk or cd_disk or n_disk != n:
        return None
    if 0xFFFFFFFF in (cd_size, cd_off):
        raise FormatError(_ZIP64, offset=end)
    # Offsets count from the file's start (TFLite Support's writer) or from the
    # archive's own (a zip concatenated to the model); the directory tells which.
    base = end - cd_size - cd_off
    if base < 0:
        return None
    entries, starts, pos = [], [cd_off + base], cd_off + base
    for _ in range(n):
        if pos + _ZIP_CENTRAL_SIZE > end or data[pos : pos + 4] != _ZIP_CENTRAL:
            return None
        name, extra, note, _, _, _, local = struct.unpack_from(
            "<HHHHHII", data, pos + 28
        )
        if local == 0xFFFFFFFF:
            raise FormatError(_ZIP64, offset=pos)
        entries.append(pos)
        starts.append(local + base)
        pos += _ZIP_CENTRAL_SIZE + name + extra + note
    start = min(starts)
    if pos != end or (appended and start < 8):
        return None
    if n and data[start : start + 4] != _ZIP_LOCAL:
        return None
    return _Zip(start, base, end, cd_off, tuple(entries))


_ZIP64 = (
    "the zip archive appended to this .tflite (its metadata's associated files) is a "
    "ZIP64 archive, which tfedge cannot carry over; rewrite it as a plain zip with "
    "TFLite Support's metadata writer"
)


def _appended_archive(data: bytes) -> bytes | None:
    """The zip archive appended to a .tflite file, with offsets counted from its own
    start, or None. TFLite Support's metadata writer appends one holding the associated
    files (label lists and the like)."""
    found = _find_zip(data)
    return None if found is None else _archive_at(data, found, 0)


def _archive_at(data: bytes, z: _Zip, position: int) -> bytes:
    """`data[z.start:]` with every offset (each entry's local header, the central
    directory's start) counted from the start of a file where it begins at
    `position`."""
    delta = position - z.start + z.base
    out = bytearray(data[z.start :])
    for pos in z.entries:
        at = pos - z.start + 42
        struct.pack_into("<I", out, at, struct.unpack_from("<I", out, at)[0] + delta)
    struct.pack_into("<I", out, z.end - z.start + 16, z.cd_offset + delta)
    return bytes(out)


def _check_structure(model, data: bytes) -> None:
    """Index checks the flatbuffer cannot make: every reference points somewhere
    real."""
    n_buffers = len(model.buffers or [])
    n_codes = len(model.operatorCodes or [])
    if not model.subgraphs:
        raise FormatError("the model has no subgraph")
    for si, sg in enumerate(model.subgraphs):
        n_tensors = len(sg.tensors or [])
        for ti, t in enumerate(sg.tensors or []):
            if not 0 <= t.buffer < max(n_buffers, 1):
                raise FormatError(
                    f"subgraph {si} tensor {ti} refers to buffer {t.buffer}, but the "
                    f"model has {n_buffers} buffers"
                )
        for oi, op in enumerate(sg.operators or []):
            if not 0 <= op.opcodeIndex < n_codes:
                raise FormatError(
                    f"subgraph {si} operator {oi} has opcode index {op.opcodeIndex}, "
                    f"but the model has {n_codes} operator codes"
                )
            # numpy over each vector: a forged file may share one long vector among
            # many operators.
            for vec in (_ints(op.inputs), _ints(op.outputs)):
                bad = vec[(vec < -1) | (vec >= n_tensors)]
                if bad.size:
                    raise FormatError(
                        f"subgraph {si} operator {oi} refers to tensor {int(bad[0])}, "
                        f"but the subgraph has {n_tensors} tensors"
                    )
        for idx in list(_ints(sg.inputs)) + list(_ints(sg.outputs)):
            if not 0 <= idx < n_tensors:
                raise FormatError(
                    f"subgraph {si} input/output refers to tensor {idx}, but the "
                    f"subgraph has {n_tensors} tensors"
                )
    _check_signatures(model)
    for m in model.metadata or []:
        if not 0 <= m.buffer < n_buffers:
            raise FormatError(
                f"metadata {tensor_name(m)!r} refers to buffer {m.buffer}, but the "
                f"model has {n_buffers} buffers"
            )


def _check_signatures(model) -> None:
    """Each SignatureDef names a real subgraph and real tensors of it."""
    n_subgraphs = len(model.subgraphs)
    for i, sd in enumerate(model.signatureDefs or []):
        if not 0 <= sd.subgraphIndex < n_subgraphs:
            raise FormatError(
                f"signature def {i} refers to subgraph {sd.subgraphIndex}, but the "
                f"model has {n_subgraphs} subgraphs"
            )
        n_tensors = len(model.subgraphs[sd.subgraphIndex].tensors or [])
        for tm in list(sd.inputs or []) + list(sd.outputs or []):
            if not 0 <= tm.tensorIndex < n_tensors:
                raise FormatError(
                    f"signature def {i} refers to tensor {tm.tensorIndex} of subgraph "
                    f"{sd.subgraphIndex}, which has {n_tensors} tensors"
                )


def _ints(v) -> np.ndarray:
    return (
        np.zeros(0, np.int64)
        if v is None
        else np.asarray(v, dtype=np.int64).reshape(-1)
    )


def write(model, *, external_buffers: bool | None = None) -> bytes:
    """Serialises a `ModelT` to .tflite bytes.

    With `external_buffers=None`, buffers go inside the flatbuffer unless their total
    size would pass the 2 GiB flatbuffer limit; then (or with True) they are stored
    after it and referenced by `Buffer.offset`/`size`, as TFLite's converter does for
    large models. The zip archive `read` found appended to the file (`ARCHIVE_ATTR`) is
    appended after all of that, its offsets moved to where it now starts.
    """
    out = _serialise(model, external_buffers=external_buffers)
    archive = getattr(model, ARCHIVE_ATTR, None)
    if archive:
        found = _find_zip(archive, appended=False)
        if found is None or found.start != 0:
            raise ValueError(
                f"Expected the model's `{ARCHIVE_ATTR}` to be a zip archive whose "
                "offsets count from its own start, as `read` sets it."
            )
        out += _archive_at(archive, found, len(out))
    return out


def _serialise(model, *, external_buffers: bool | None) -> bytes:
    _normalise_int_vectors(model)
    total = sum(0 if b.data is None else len(b.data) for b in model.buffers or [])
    if external_buffers is None:
        external_buffers = total > _FLATBUFFER_LIMIT
    if not external_buffers:
        return _finish(model)
    saved = []
    for b in model.buffers:
        saved.append(b.data)
        if b.data is not None and len(b.data) > 0:
            b.offset, b.size = _PLACEHOLDER, len(b.data)
            b.data = None
    try:
        head = _finish(model)
        # Second pass with the real offsets: same field widths, so the same size.
        pos = _round_up(len(head), _EXTERNAL_ALIGN)
        chunks = []
        for b, d in zip(model.buffers, saved, strict=True):
            if b.offset == _PLACEHOLDER:
                b.offset = pos
                chunks.append((pos, d))
                pos = _round_up(pos + len(d), _EXTERNAL_ALIGN)
        head = _finish(model)
        out = bytearray(pos)
        out[: len(head)] = head
        for start, d in chunks:
            out[start : start + len(d)] = np.asarray(d, np.uint8).tobytes()
        return bytes(out)
    finally:
        for b, d in zip(model.buffers, saved, strict=True):
            if b.data is None and d is not None:
                b.data = d
                b.offset = b.size = 0


def _finish(model) -> bytes:
    # Pre-size the builder to the buffers' bytes (plus room for the graph): growing it
    # by doubling copies a large model's weights several times.
    data_bytes = sum(0 if b.data is None else len(b.data) for b in model.buffers or [])
    builder = flatbuffers.Builder(
        data_bytes + 16 * (len(model.buffers or []) + 1) + 65536
    )
    root = model.Pack(builder)
    builder.Finish(root, file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def _round_up(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def _normalise_int_vectors(model) -> None:
    """Index vectors must be int32 when packed from numpy (CreateNumpyVector keeps
    dtype)."""
    for sg in model.subgraphs or []:
        for name in ("inputs", "outputs"):
            setattr(sg, name, _as_i32(getattr(sg, name)))
        for op in sg.operators or []:
            for name in ("inputs", "outputs", "intermediates"):
                setattr(op, name, _as_i32(getattr(op, name)))
        for t in sg.tensors or []:
            t.shape = _as_i32(t.shape)
            t.shapeSignature = _as_i32(t.shapeSignature)


def _as_i32(v):
    if v is None:
        return None
    return np.asarray(v, dtype=np.int32).reshape(-1)


def buffer_data(model, index: int) -> np.ndarray:
    """The bytes of buffer `index` as a uint8 array (empty when it holds no data)."""
    b = model.buffers[index]
    if b.data is None:
        return np.zeros(0, np.uint8)
    return np.asarray(b.data, dtype=np.uint8).reshape(-1)


def tensor_name(t) -> str:
    name = t.name
    if name is None:
        return ""
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def tensor_array(model, tensor) -> np.ndarray:
    """A constant tensor's data as a typed numpy array in its shape."""
    info = TYPES.get(tensor.type)
    raw = buffer_data(model, tensor.buffer)
    if info is None or info.dtype is None or info.itemsize == 0:
        return raw
    arr = raw.view(info.dtype) if raw.size % info.itemsize == 0 else raw
    shape = tuple(int(d) for d in _ints(tensor.shape))
    if arr.dtype == info.dtype and int(np.prod(shape, dtype=np.int64)) == arr.size:
        return arr.reshape(shape)
    return arr


def custom_code(model, opcode_idx: int) -> str | None:
    code = model.operatorCodes[opcode_idx].customCode
    if code is None:
        return None
    return code.decode("utf-8", "replace") if isinstance(code, bytes) else str(code)


def opcode_name(model, opcode_idx: int) -> str:
    """The operator's name: its builtin name, or its custom code for custom ops."""
    oc = model.operatorCodes[opcode_idx]
    code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
    ops = schema().BuiltinOperator
    if code == ops.CUSTOM:
        return custom_code(model, opcode_idx) or "CUSTOM"
    for name, value in vars(ops).items():
        if value == code and not name.startswith("_"):
            return name
    return f"BUILTIN_{code}"


def opcode_index(
    model, custom: str, *, version: int = 1, add: bool = True
) -> int | None:
    """Index of the custom operator code `custom`; appended when missing and `add`."""
    for i in range(len(model.operatorCodes or [])):
        oc = model.operatorCodes[i]
        if (
            max(oc.builtinCode, oc.deprecatedBuiltinCode)
            == schema().BuiltinOperator.CUSTOM
        ):
            if custom_code(model, i) == custom:
                return i
    if not add:
        return None
    s = schema()
    oc = s.OperatorCodeT()
    oc.builtinCode = s.BuiltinOperator.CUSTOM
    oc.deprecatedBuiltinCode = s.BuiltinOperator.CUSTOM
    oc.customCode = custom
    oc.version = version
    if model.operatorCodes is None:
        model.operatorCodes = []
    model.operatorCodes.append(oc)
    return len(model.operatorCodes) - 1
