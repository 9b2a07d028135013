"""tfedge.tflite: read/write round trips on foreign models; malformed files; every
type."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from tests.conftest import BUILDERS
from tfedge.errors import FormatError
from tfedge.tflite import (
    ARCHIVE_ATTR,
    TYPES,
    buffer_data,
    opcode_index,
    opcode_name,
    read,
    schema,
    tensor_array,
    write,
)

MODEL_NAMES = sorted(BUILDERS)


def _summary(data: bytes):
    m = read(data)
    return (
        [opcode_name(m, i) for i in range(len(m.operatorCodes))],
        [
            [
                (t.name, list(t.shape), t.type, bytes(buffer_data(m, t.buffer)))
                for t in sg.tensors
            ]
            for sg in m.subgraphs
        ],
        [(md.name, bytes(buffer_data(m, md.buffer))) for md in m.metadata or []],
        [sd.signatureKey for sd in m.signatureDefs or []],
    )


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_read_write_round_trip(tflite_model, name):
    data = tflite_model(name)
    again = write(read(data))
    assert _summary(again) == _summary(data)
    assert write(read(again)) == again  # our own output is a fixed point


@pytest.mark.parametrize("name", ["dense_f32", "two_signatures", "densify"])
def test_external_buffers(tflite_model, name):
    data = tflite_model(name)
    ext = write(read(data), external_buffers=True)
    m = read(ext)
    assert _summary(ext) == _summary(data)
    raw = schema().Model.GetRootAs(ext, 0)
    offsets = [raw.Buffers(i).Offset() for i in range(raw.BuffersLength())]
    assert any(o > 1 for o in offsets)
    assert all(o % 16 == 0 for o in offsets if o > 1)
    assert m.subgraphs


def test_buffers_are_16_byte_aligned(tflite_model):
    data = write(read(tflite_model("conv_f32")))
    m = schema().Model.GetRootAs(data, 0)
    for i in range(m.BuffersLength()):
        b = m.Buffers(i)
        if b.DataLength():
            start = b._tab.Vector(b._tab.Offset(4))
            assert start % 16 == 0


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda d: d[:7], "shorter than a flatbuffer header"),
        (lambda d: d[:4] + b"XXXX" + d[8:], "file identifier"),
        (lambda d: b"\xff\xff\xff\x7f" + d[4:], "root table"),
        (lambda d: d[: len(d) // 3], "truncated|corrupted|past the end"),
    ],
    ids=["tiny", "identifier", "root", "truncated"],
)
def test_malformed_files(tflite_model, mutate, match):
    with pytest.raises(FormatError, match=match):
        read(mutate(tflite_model("conv_f32")))


def test_truncation_at_every_length_is_clean(tflite_model):
    data = tflite_model("dense_f32")
    for n in range(0, len(data), 97):
        try:
            read(data[:n])
        except FormatError:
            continue
        raise AssertionError(f"truncation to {n} bytes was accepted")


def test_dangling_buffer_index(tflite_model):
    m = read(tflite_model("dense_f32"))
    m.subgraphs[0].tensors[1].buffer = 999
    with pytest.raises(FormatError, match="buffer 999"):
        read(write(m))


def test_every_tensor_type_maps():
    t = schema().TensorType
    names = [n for n in vars(t) if not n.startswith("_")]
    for n in names:
        assert getattr(t, n) in TYPES, n
    assert TYPES[t.FLOAT16].dtype == np.float16 and TYPES[t.INT8].itemsize == 1


def test_tensor_array_and_opcodes(tflite_model):
    m = read(tflite_model("conv_int8"))
    arrays = [
        tensor_array(m, t)
        for t in m.subgraphs[0].tensors
        if buffer_data(m, t.buffer).size
    ]
    assert any(a.dtype == np.int8 and a.ndim == 4 for a in arrays)
    n = len(m.operatorCodes)
    i = opcode_index(m, "MY_OP")
    assert i == n and opcode_index(m, "MY_OP") == i and opcode_name(m, i) == "MY_OP"
    assert opcode_index(m, "OTHER", add=False) is None


# ---------------------------------------------------------------- appended zip archives


def _append_zip(data: bytes, files: dict[str, bytes], *, concatenated: bool) -> bytes:
    """The model with a zip of `files` after it: written into the file as TFLite
    Support's metadata writer does (offsets from the file's start), or concatenated
    (offsets from the archive's start)."""
    buf = io.BytesIO(b"" if concatenated else data)
    buf.seek(0, 2)
    with zipfile.ZipFile(buf, "a") as z:
        for name, blob in files.items():
            z.writestr(name, blob)
    return (data if concatenated else b"") + buf.getvalue()


def _zip_files(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.testzip() is None
        return {i.filename: z.read(i) for i in z.infolist()}


ARCHIVE_FILES = {"labels.txt": b"cat\ndog\n", "empty.txt": b""}


@pytest.mark.parametrize("concatenated", [False, True], ids=["written", "concatenated"])
def test_appended_archive_is_kept_and_moved(tflite_model, concatenated):
    data = _append_zip(
        tflite_model("dense_f32"), ARCHIVE_FILES, concatenated=concatenated
    )
    model = read(data)
    assert getattr(model, ARCHIVE_ATTR)[:4] == b"PK\x03\x04"
    model.description = b"x" * 1000  # the flatbuffer grows: the archive moves
    again = write(model)
    assert _zip_files(again) == ARCHIVE_FILES
    with zipfile.ZipFile(io.BytesIO(again)) as z:
        # Offsets count from the file's start, as TFLite Support writes them.
        assert min(i.header_offset for i in z.infolist()) == again.index(b"PK\x03\x04")
    assert write(read(again)) == again


def test_an_empty_appended_archive_is_kept(tflite_model):
    data = _append_zip(tflite_model("dense_f32"), {}, concatenated=False)
    again = write(read(data))
    assert _zip_files(again) == {}
    # The end record alone, its (empty) directory counted from the file's start.
    end = len(again) - 22
    assert again[end:].startswith(b"PK\x05\x06")
    assert int.from_bytes(again[end + 16 : end + 20], "little") == end


@pytest.mark.parametrize(
    "tail",
    [b"", b"PK\x05\x06" + b"\0" * 10, b"PK\x05\x06" + b"\0" * 18 + b"xx"],
    ids=["none", "short-end-record", "wrong-comment-length"],
)
def test_no_archive_without_a_whole_zip(tflite_model, tail):
    assert getattr(read(tflite_model("dense_f32") + tail), ARCHIVE_ATTR) is None


def test_zip64_archive_is_refused(tflite_model):
    data = _append_zip(tflite_model("dense_f32"), ARCHIVE_FILES, concatenated=False)
    data = bytearray(data)
    end = data.rindex(b"PK\x05\x06")
    data[end + 16 : end + 20] = b"\xff\xff\xff\xff"
    with pytest.raises(FormatError, match="ZIP64"):
        read(bytes(data))


def test_compress_and_expand_keep_archive_and_metadata_buffers(tflite_model):
    """Two metadata buffers (a numpy vector with no truth value) and an archive."""
    import tfedge

    model = read(tflite_model("dense_f32"))
    first = len(model.buffers)
    for blob in (b"one", b"two"):
        buffer = type(model.buffers[0])()
        buffer.data = np.frombuffer(blob, np.uint8)
        model.buffers.append(buffer)
    model.metadataBuffer = np.array([first, first + 1], np.int32)
    data = _append_zip(write(model), ARCHIVE_FILES, concatenated=False)
    packed = bytes(tfedge.compress(data, lossless=True, min_bytes=16, progress=False))
    assert _zip_files(packed) == ARCHIVE_FILES
    expanded = tfedge.expand(packed)
    assert write(read(expanded)) == write(read(data))
    got = read(expanded)
    assert [bytes(buffer_data(got, int(i))) for i in got.metadataBuffer] == [
        b"one",
        b"two",
    ]
