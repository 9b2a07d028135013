"""Payloads (docs/FORMAT.md section 2): exact bytes, exact sizes, lossless round trips
over every layout, value kind, coding, element size and dtype."""

import struct
import zlib

import numpy as np
import pytest

from tfedge.codecs import (
    HEADER_SIZE,
    PayloadHeader,
    decode_payload,
    encode_payload,
    inspect_payload,
    payload_size,
    read_header,
)
from tfedge.errors import FormatError

# (dtype, TFLite element type)
DTYPES = {
    "float32": (np.float32, 0),
    "float16": (np.float16, 1),
    "int32": (np.int32, 2),
    "uint8": (np.uint8, 3),
    "int64": (np.int64, 4),
    "int16": (np.int16, 7),
    "int8": (np.int8, 9),
    "float64": (np.float64, 10),
}
LAYOUTS = ["dense", "sparse"]
KINDS = ["raw", "codebook"]
CODINGS = ["fixed", "huffman", "auto"]


def _weights(dtype, n, seed, zero_fraction=0.7, distinct=None):
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.floating):
        values = rng.standard_normal(n).astype(dtype)
    else:
        info = np.iinfo(dtype)
        values = rng.integers(max(info.min, -1000), min(info.max, 1000), n).astype(
            dtype
        )
    if distinct is not None:
        values = rng.choice(np.unique(values)[:distinct], n).astype(dtype)
    values[rng.random(n) < zero_fraction] = 0
    return values


def _args(values, etype, layout, kind, coding, **extra):
    args = dict(
        element_type=etype,
        element_size=values.dtype.itemsize,
        count=values.size,
        layout=layout,
        value_kind=kind,
        value_coding=coding,
        gap_coding=coding,
        **extra,
    )
    if kind == "raw":
        args["elements"] = values
    else:
        # Distinct by bytes, so that -0.0 and 0.0 stay apart (a lossless codebook).
        unsigned = np.dtype(f"u{values.dtype.itemsize}")
        keys, indices = np.unique(values.view(unsigned), return_inverse=True)
        codebook = keys.view(values.dtype)
        # The format needs K >= 1 even for an empty tensor.
        args["codebook"] = codebook if codebook.size else np.zeros(1, values.dtype)
        args["indices"] = indices
    return args


def _check_round_trip(values, args):
    payload = encode_payload(**args)
    assert len(payload) == payload_size(**args)
    decoded = decode_payload(payload, expected_size=values.nbytes)
    assert decoded.dtype == np.uint8
    assert decoded.tobytes() == values.astype(values.dtype.newbyteorder("<")).tobytes()
    header = read_header(payload)
    assert header.count == values.size
    return payload


@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype, etype", DTYPES.values(), ids=DTYPES.keys())
def test_round_trip(dtype, etype, layout, kind, coding):
    values = _weights(dtype, 3000, etype, distinct=200 if kind == "codebook" else None)
    _check_round_trip(values, _args(values, etype, layout, kind, coding))


CASES = {
    "empty": np.zeros(0, np.float32),
    "one_value": np.array([1.5], np.float32),
    "one_zero": np.array([0.0], np.float32),
    "all_zeros": np.zeros(1000, np.float32),
    "all_equal": np.full(1000, -2.25, np.float32),
    "negative_zero": np.array([0.0, -0.0, 0.0, -0.0, 1.0], np.float32),
    "long_zero_runs": np.where(np.arange(5000) % 997 == 0, 1.0, 0.0).astype(np.float32),
    "fibonacci_skew": np.repeat(
        np.arange(20, dtype=np.float16),
        [int(x) for x in np.round(1.618 ** np.arange(20))],
    ),
    "256_distinct": np.arange(-128, 128, dtype=np.int8),
    "bool": np.array([True, False, False, True] * 50),
}


@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("values", CASES.values(), ids=CASES.keys())
def test_edge_cases(values, layout, kind, coding):
    etype = 6 if values.dtype == np.bool_ else {1: 9, 2: 1, 4: 0}[values.dtype.itemsize]
    _check_round_trip(values, _args(values, etype, layout, kind, coding))


@pytest.mark.parametrize("gap_bits", range(1, 9), ids=lambda g: f"g{g}")
@pytest.mark.parametrize("index_bits", [None, 8], ids=["minimal", "bits8"])
def test_sparse_gap_and_index_widths(gap_bits, index_bits):
    values = _weights(np.float32, 4000, gap_bits, zero_fraction=0.97, distinct=9)
    args = _args(values, 0, "sparse", "codebook", "auto", gap_bits=gap_bits)
    args["index_bits"] = index_bits
    _check_round_trip(values, args)


def test_automatic_gap_bits_is_the_smallest():
    values = _weights(np.float32, 6000, 4, zero_fraction=0.95, distinct=5)
    args = _args(values, 0, "sparse", "codebook", "auto")
    chosen = len(_check_round_trip(values, args))
    sizes = [payload_size(**args, gap_bits=g) for g in range(1, 9)]
    assert chosen == min(sizes)


def test_explicit_fill_values():
    values = np.array([3, 3, 3, 0, 3, 7, 3, 3], np.int16)
    raw = _args(values, 7, "sparse", "raw", "fixed", fill=np.array([3], np.int16))
    _check_round_trip(values, raw)
    raw_bytes = _args(values, 7, "sparse", "raw", "fixed", fill=b"\x03\x00")
    assert encode_payload(**raw_bytes) == encode_payload(**raw)
    raw_number = _args(values, 7, "sparse", "raw", "fixed", fill=3)
    assert encode_payload(**raw_number) == encode_payload(**raw)
    book = _args(values, 7, "sparse", "codebook", "fixed", fill=1)  # codebook [0, 3, 7]
    assert encode_payload(**book) == encode_payload(**{**book, "fill": None})
    _check_round_trip(values, book)
    _check_round_trip(values, {**book, "fill": 0})  # a poor fill still round trips


def test_big_endian_elements_are_stored_little_endian():
    values = np.array([1.5, -2.0], ">f4")
    payload = encode_payload(
        element_type=0,
        element_size=4,
        count=2,
        layout="dense",
        value_kind="raw",
        elements=values,
        value_coding="fixed",
    )
    assert decode_payload(payload).view("<f4").tolist() == [1.5, -2.0]


def _crc(head24, body):
    return zlib.crc32(head24 + body) & 0xFFFFFFFF


def test_exact_bytes_dense_raw():
    payload = encode_payload(
        element_type=3,
        element_size=1,
        count=3,
        layout="dense",
        value_kind="raw",
        elements=np.array([1, 2, 3], np.uint8),
        value_coding="fixed",
    )
    body = b"\x00\x08" + struct.pack("<II", 3, 3) + b"\x01\x02\x03"
    head = b"TFEP" + bytes([1, 0, 0, 3, 1, 0, 0, 0]) + struct.pack("<QI", 3, 13)
    assert payload == head + struct.pack("<I", _crc(head, body)) + body
    assert read_header(payload) == PayloadHeader(
        version=1,
        layout="dense",
        value_kind="raw",
        element_type=3,
        element_size=1,
        decoded_size=3,
        body_size=13,
        crc=_crc(head, body),
    )


def test_exact_bytes_sparse_codebook():
    # int8 elements 0 0 5 0 0 0 5 with codebook [0, 5], fill index 0, 2-bit gaps.
    payload = encode_payload(
        element_type=9,
        element_size=1,
        count=7,
        layout="sparse",
        value_kind="codebook",
        codebook=np.array([0, 5], np.int8),
        indices=np.array([0, 0, 1, 0, 0, 0, 1]),
        fill=0,
        gap_bits=2,
        value_coding="fixed",
        gap_coding="fixed",
    )
    body = (
        b"\x02\x00"
        + b"\x00\x05"  # K = 2, codebook
        + b"\x00"  # fill element
        + b"\x00\x02"
        + struct.pack("<II", 2, 1)
        + bytes([0b10110000])  # gaps 2, 3
        + b"\x00\x01"
        + struct.pack("<II", 2, 1)
        + bytes([0b11000000])  # indices 1, 1
    )
    head = b"TFEP" + bytes([1, 1, 1, 9, 1, 0, 0, 0]) + struct.pack("<QI", 7, len(body))
    assert len(body) == 27
    assert payload == head + struct.pack("<I", _crc(head, body)) + body
    assert decode_payload(payload).view(np.int8).tolist() == [0, 0, 5, 0, 0, 0, 5]


def test_sparse_fillers_carry_the_fill_value():
    # One non-fill element 9 positions in with 2-bit gaps needs two fillers.
    values = np.zeros(12, np.float32)
    values[9] = 2.0
    args = _args(values, 0, "sparse", "raw", "fixed", gap_bits=2, fill=np.float32(0))
    payload = _check_round_trip(values, args)
    # stream G at 28 + 4 (fill): count 3 (fillers at 3 and 7, the element at 9).
    assert struct.unpack_from("<I", payload, 34)[0] == 3


BAD_ARGS = [
    ("layout", dict(layout="csr"), "Expected `layout`"),
    ("kind", dict(value_kind="pq"), "Expected `value_kind`"),
    ("element_size", dict(element_size=3), "Expected `element_size`"),
    ("type_size", dict(element_type=0, element_size=2), "element_size=4"),
    ("dtype_size", dict(elements=np.zeros(4, np.float64)), "4-byte elements"),
    ("count", dict(count=5), "Expected 5 elements"),
    ("dense_fill", dict(fill=np.float32(0)), "layout='sparse' only"),
    ("dense_gap_bits", dict(gap_bits=3), "layout='sparse' only"),
    ("coding", dict(value_coding="lz4"), "Expected `value_coding`"),
    (
        "raw_with_codebook",
        dict(codebook=np.zeros(2, np.float32)),
        "codebook value kinds only",
    ),
    ("raw_with_channel_run", dict(channel_run=2), "value_kind='channel_codebook'"),
]


def _bad_args_cases(cases, base):
    """Parametrizes (args, match): `base` changed by each case's arguments."""
    return pytest.mark.parametrize(
        "args, match",
        [({**base, **change}, match) for _, change, match in cases],
        ids=[case[0] for case in cases],
    )


_RAW_ARGS = dict(
    element_type=0,
    element_size=4,
    count=4,
    layout="dense",
    value_kind="raw",
    elements=np.zeros(4, np.float32),
)


@_bad_args_cases(BAD_ARGS, _RAW_ARGS)
def test_bad_arguments_raise_value_error(args, match):
    with pytest.raises(ValueError, match=match):
        encode_payload(**args)


BAD_CODEBOOK_ARGS = [
    ("index_range", dict(indices=np.array([0, 1, 2, 3])), r"in \[0, 2\]"),
    ("index_bits", dict(index_bits=1), "2\\*\\*index_bits=2"),
    ("too_many", dict(codebook=np.zeros(65536, np.float32)), "1 to 65535"),
    (
        "too_many_bytes",
        dict(codebook=np.zeros(257, np.int8), element_type=9, element_size=1),
        "1 to 256",
    ),
    ("fill_range", dict(layout="sparse", fill=3), r"Expected `fill` in \[0, 2\]"),
]


_CODEBOOK_ARGS = dict(
    element_type=0,
    element_size=4,
    count=4,
    layout="dense",
    value_kind="codebook",
    codebook=np.zeros(3, np.float32),
    indices=np.array([0, 1, 2, 2]),
)


@_bad_args_cases(BAD_CODEBOOK_ARGS, _CODEBOOK_ARGS)
def test_bad_codebook_arguments_raise_value_error(args, match):
    with pytest.raises(ValueError, match=match):
        encode_payload(**args)


INSPECT = [
    ("dense", "raw", "fixed", "dense/raw/fixed"),
    ("dense", "codebook", "huffman", "dense/codebook/huffman"),
    ("sparse", "codebook", "fixed", "sparse/codebook/fixed+fixed"),
    ("sparse", "raw", "huffman", "sparse/raw/huffman+huffman"),
]


@pytest.mark.parametrize(
    "layout, kind, coding, encoding", INSPECT, ids=[i[3] for i in INSPECT]
)
def test_inspect_payload_reads_the_parts(layout, kind, coding, encoding):
    values = _weights(np.float32, 2000, 1, zero_fraction=0.9, distinct=20)
    payload = encode_payload(**_args(values, 0, layout, kind, coding))
    info = inspect_payload(payload)
    assert info.encoding == encoding
    assert info.header == read_header(payload)
    parts = HEADER_SIZE + info.values.size
    if kind == "codebook":
        parts += 2 + info.codebook.size
        assert info.codebook.shape[1] == 4
        assert info.codebook_bytes == 2 + info.codebook.size
    if layout == "sparse":
        assert info.fill == b"\0\0\0\0"
        parts += 4 + info.gaps.size
        per_entry = 4 if kind == "raw" else 1  # raw values are the element bytes
        assert info.values.count == info.gaps.count * per_entry
    assert parts == len(payload)
    if coding == "huffman":
        assert info.values.code_lengths is not None and info.values.block_size >= 1
    for cut in (len(payload) - 1, 40):
        with pytest.raises(FormatError):
            inspect_payload(payload[:cut])


# ------------------------------------------------------------ per-channel codebooks


def _ternary_per_channel(rng, channels, run, inner_repeat=1, sparse=0.5):
    """A kernel {-a_c, 0, +b_c} per channel c, laid out as (repeat, channels, run)."""
    scale_p = rng.uniform(0.5, 2.0, channels).astype(np.float32)
    scale_n = rng.uniform(0.5, 2.0, channels).astype(np.float32)
    sign = rng.choice(
        [-1, 0, 1],
        (inner_repeat, channels, run),
        p=[(1 - sparse) / 2, sparse, (1 - sparse) / 2],
    )
    values = np.where(
        sign > 0, scale_p[:, None], np.where(sign < 0, -scale_n[:, None], 0)
    )
    book = np.stack([np.zeros(channels, np.float32), -scale_n, scale_p], axis=1)
    indices = np.where(sign > 0, 2, np.where(sign < 0, 1, 0))
    return values.astype(np.float32).reshape(-1), book, indices.reshape(-1)


@pytest.mark.parametrize("layout", ["dense", "sparse"])
@pytest.mark.parametrize("coding", ["fixed", "huffman"])
@pytest.mark.parametrize(
    "channels, run, repeat", [(1, 50, 1), (8, 36, 1), (16, 1, 9), (5, 3, 4)]
)
def test_per_channel_codebook_round_trip(layout, coding, channels, run, repeat):
    rng = np.random.default_rng(channels * 100 + run)
    values, book, indices = _ternary_per_channel(rng, channels, run, repeat)
    args = dict(
        element_type=0,
        element_size=4,
        count=values.size,
        layout=layout,
        value_kind="channel_codebook",
        codebook=book,
        indices=indices,
        channel_run=run,
        value_coding=coding,
        gap_coding=coding,
    )
    payload = encode_payload(**args)
    assert len(payload) == payload_size(**args)
    header = read_header(payload)
    assert (header.version, header.value_kind) == (2, "channel_codebook")
    decoded = decode_payload(payload).view(np.float32)
    np.testing.assert_array_equal(decoded, values)
    info = inspect_payload(payload)
    # Entry 0 (the zero) is the same in every channel: stored once, as a shared entry
    # (with one channel, every entry is).
    shared = 3 if channels == 1 else 1
    assert (info.k, info.shared_entries, info.channels, info.channel_run) == (
        3,
        shared,
        channels,
        run,
    )
    assert info.codebook.shape == (shared + (3 - shared) * channels, 4)
    assert info.codebook_bytes == 12 + info.codebook.size
    assert info.encoding.startswith(f"{layout}/channel_codebook/")


def test_per_channel_sparse_fillers_decode_in_every_channel():
    # One stored weight at each end of a long zero run: a 1-bit gap stream needs
    # fillers, which must decode to the fill in whatever channel they land.
    rng = np.random.default_rng(3)
    values, book, indices = _ternary_per_channel(rng, 4, 100, sparse=0.98)
    payload = encode_payload(
        element_type=0,
        element_size=4,
        count=values.size,
        layout="sparse",
        value_kind="channel_codebook",
        codebook=book,
        indices=indices,
        channel_run=100,
        gap_bits=1,
    )
    np.testing.assert_array_equal(decode_payload(payload).view(np.float32), values)


def test_old_kinds_still_write_version_1():
    values = _weights(np.float32, 200, 1, zero_fraction=0.5, distinct=8)
    for kind in ("raw", "codebook"):
        payload = encode_payload(**_args(values, 0, "dense", kind, "fixed"))
        assert read_header(payload).version == 1


BAD_CHANNEL_ARGS = [
    ("flat_codebook", dict(codebook=np.zeros(6, np.float32)), r"\(channels, K\)"),
    ("no_run", dict(channel_run=None), "Expected an int `channel_run`"),
    ("run_not_tiling", dict(channel_run=4), "to divide count=12"),
    ("zero_run", dict(channel_run=0), "Expected 1 to"),
    ("fill_differs", dict(layout="sparse", fill=1), "same value in every channel"),
    (
        "no_common_fill",
        dict(layout="sparse", codebook=np.arange(6, dtype=np.float32).reshape(2, 3)),
        "needs an index whose entry is the same in every channel",
    ),
]


_CHANNEL_ARGS = dict(
    element_type=0,
    element_size=4,
    count=12,
    layout="dense",
    value_kind="channel_codebook",
    codebook=np.array([[0, 1, 2], [0, 3, 4]], np.float32),
    indices=np.array([0, 1, 2, 2] * 3),
    channel_run=3,
)


@_bad_args_cases(BAD_CHANNEL_ARGS, _CHANNEL_ARGS)
def test_bad_per_channel_arguments_raise_value_error(args, match):
    with pytest.raises(ValueError, match=match):
        encode_payload(**args)
