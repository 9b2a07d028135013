"""Byte planes (value kind 3, format version 3): round trips, exact bytes, sizes and
every malformed body raising FormatError."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from tests._payloads import reseal
from tfedge.codecs import (
    crc32,
    decode_payload,
    encode_payload,
    encode_stream,
    inspect_payload,
    payload_size,
    rotate_left,
)
from tfedge.errors import FormatError

# (id, dtype, TFLite type, layout, rotation, count)
CASES = [
    ("f32-dense-r1", np.float32, 0, "dense", 1, 5000),
    ("f32-sparse-r1", np.float32, 0, "sparse", 1, 5000),
    ("f32-dense-r0", np.float32, 0, "dense", 0, 333),
    ("f16-dense-r1", np.float16, 1, "dense", 1, 4097),
    ("f16-sparse-r5", np.float16, 1, "sparse", 5, 1000),
    ("i64-sparse-r63", np.int64, 4, "sparse", 63, 700),
    ("i8-dense-r3", np.int8, 9, "dense", 3, 100),
    ("empty", np.float32, 0, "dense", 1, 0),
    ("one", np.float32, 0, "sparse", 1, 1),
]


def _values(dtype, n, layout, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        x = (rng.standard_normal(n) * 0.05).astype(dtype)
    else:
        x = rng.integers(-100, 100, n).astype(dtype)
    if layout == "sparse":
        x[rng.random(n) < 0.7] = 0
    return x


@pytest.mark.parametrize("coding", ["auto", "fixed", "huffman", "rans"])
@pytest.mark.parametrize(
    "dtype, etype, layout, rotation, n",
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_round_trip_and_exact_size(dtype, etype, layout, rotation, n, coding):
    x = _values(dtype, n, layout)
    kw = dict(
        element_type=etype,
        element_size=x.itemsize,
        count=n,
        layout=layout,
        value_kind="planes",
        elements=x,
        plane_rotation=rotation,
        value_coding=coding,
        gap_coding=coding,
    )
    payload = encode_payload(**kw)
    assert payload[4] == 3 and payload[6] == 3
    np.testing.assert_array_equal(decode_payload(payload), x.view(np.uint8))
    assert payload_size(**kw) == len(payload)
    info = inspect_payload(payload)
    assert info.rotation == rotation and len(info.planes) == x.itemsize
    assert info.encoding.startswith(f"{layout}/planes/")


def test_exact_bytes():
    x = np.array([1.0, -2.0], np.float32)  # 0x3F800000, 0xC0000000
    payload = encode_payload(
        element_type=0,
        element_size=4,
        count=2,
        layout="dense",
        value_kind="planes",
        elements=x,
        plane_rotation=1,
        value_coding="fixed",
    )
    # Rotated left by 1: 0x7F000000 and 0x80000001; plane b is byte b of each.
    planes = [[0x00, 0x01], [0x00, 0x00], [0x00, 0x00], [0x7F, 0x80]]
    body = b"\x01" + b"".join(encode_stream(p, 8, "fixed") for p in planes)
    head = struct.pack("<4sBBBBB3sQI", b"TFEP", 3, 0, 3, 0, 4, b"\0" * 3, 8, len(body))
    assert payload == head + struct.pack("<I", crc32(body, crc32(head))) + body


def test_rotation_is_a_rotation():
    u = np.array([0x80000001, 0x12345678], np.uint32)
    np.testing.assert_array_equal(rotate_left(u, 4), [0x00000018, 0x23456781])
    np.testing.assert_array_equal(rotate_left(rotate_left(u, 31), 1), u)


def _payload(layout="dense"):
    x = _values(np.float32, 300, layout, 3)
    return bytearray(
        encode_payload(
            element_type=0,
            element_size=4,
            count=300,
            layout=layout,
            value_kind="planes",
            elements=x,
            plane_rotation=1,
            value_coding="fixed",
            gap_coding="fixed",
        )
    )


def _set(p, at, value):
    p[at] = value
    return reseal(p)


MALFORMED = {
    "rotation-32": (lambda: _set(_payload(), 28, 32), "plane rotation 32"),
    "no-rotation": (lambda: reseal(_payload()[:28]), "truncated plane rotation"),
    "plane-width-7": (
        lambda: _set(_payload(), 30, 7),
        "plane stream 0 must have 8-bit",
    ),
    "plane-count": (
        lambda: reseal(_payload()[:29] + encode_stream(np.zeros(5, int), 8, "fixed")),
        "plane stream 0 holds 5 symbols, expected 300",
    ),
    "missing-plane": (
        lambda: reseal(_payload()[: 29 + 3 * (10 + 300)]),
        "truncated stream header",
    ),
    "trailing": (
        lambda: reseal(_payload() + b"\0"),
        "1 trailing bytes after the plane streams",
    ),
    "version-2": (lambda: _set(_payload(), 4, 2), "needs payload format version 3"),
}


@pytest.mark.parametrize("make, match", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_planes_raise_format_error(make, match):
    payload = make()
    with pytest.raises(FormatError, match=match):
        decode_payload(payload)
    with pytest.raises(FormatError, match=match):
        inspect_payload(payload)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(plane_rotation=32), "plane_rotation"),
        (dict(plane_rotation=1.5), "plane_rotation"),
        (dict(value_kind="raw", plane_rotation=1), "applies to value_kind='planes'"),
    ],
)
def test_bad_arguments(kwargs, match):
    x = np.zeros(4, np.float32)
    args = dict(
        element_type=0,
        element_size=4,
        count=4,
        layout="dense",
        value_kind="planes",
        elements=x,
    )
    with pytest.raises(ValueError, match=match):
        encode_payload(**{**args, **kwargs})
