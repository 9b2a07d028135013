"""rANS streams (coding 2, format version 3): round trips, exact bytes against a plain
scalar coder, the entropy bound, and every malformed input raising FormatError."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from tests._payloads import fix_crc, rans_reference_encode
from tfedge.codecs import (
    _rans,
    decode_payload,
    decode_stream,
    encode_payload,
    encode_stream,
    entropy_bits,
    stream_info,
    stream_size,
)
from tfedge.errors import FormatError

# A stream's data (its words, without the per-block states) may exceed the order-0
# entropy of its symbols by this much once it has >= 4096 symbols: the frequencies are
# rounded to 1/4096 and each lane's final state carries < 16 bits (issue 20's bound).
ENTROPY_SLACK = 0.02


def _symbols(kind: str, n: int, bits: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top = 1 << bits
    if kind == "one":
        return np.full(n, top - 1)
    if kind == "ternary":
        return rng.choice(3, n, p=[0.15, 0.7, 0.15])
    if kind == "skewed":
        return np.minimum(rng.geometric(0.05, n) - 1, top - 1)
    if kind == "rare":
        out = np.zeros(n, np.int64)
        out[rng.random(n) < 0.002] = top - 1
        return out
    return rng.integers(0, top, n)


# (id, kind, count, bits, lanes, block size)
ROUND_TRIPS = [
    ("empty", "uniform", 0, 4, None, None),
    ("one-symbol", "one", 1, 3, None, None),
    ("single-value", "one", 5000, 8, None, None),
    ("ternary", "ternary", 4096, 2, None, None),
    ("ternary-1-lane", "ternary", 3001, 2, 1, None),
    ("ternary-3-lanes-small-blocks", "ternary", 3001, 2, 3, 17),
    ("skewed-bytes", "skewed", 70_000, 8, None, None),
    ("blocks-not-multiple-of-lanes", "skewed", 20_001, 8, 8, 1001),
    ("32-lanes", "uniform", 10_000, 5, 32, None),
    ("rare", "rare", 50_000, 1, None, None),
    ("12-bit", "skewed", 30_000, 12, None, None),
    ("16-bit", "uniform", 100_000, 16, None, None),
    ("fewer-symbols-than-lanes", "uniform", 5, 8, 16, None),
]


@pytest.mark.parametrize(
    "kind, n, bits, lanes, block",
    [r[1:] for r in ROUND_TRIPS],
    ids=[r[0] for r in ROUND_TRIPS],
)
def test_round_trip_and_exact_size(kind, n, bits, lanes, block):
    symbols = _symbols(kind, n, bits, n)
    buf = encode_stream(symbols, bits, "rans", block, lanes=lanes)
    out, end = decode_stream(b"ab" + buf + b"c", 2)
    assert end == 2 + len(buf)
    np.testing.assert_array_equal(out, symbols)
    assert out.dtype == (np.uint8 if bits <= 8 else np.uint16)
    assert len(buf) == stream_size(symbols, bits, "rans", block, lanes=lanes)
    info = stream_info(buf)
    assert (info.coding, info.bits, info.count) == ("rans", bits, n)
    assert int(info.frequencies.sum()) == (1 << info.scale_bits if n else 0)


@pytest.mark.parametrize("lanes, block", [(1, 4096), (4, 1000), (3, 777), (16, 2048)])
def test_exact_bytes_match_a_scalar_coder(lanes, block):
    symbols = _symbols("skewed", 5000, 6, lanes)
    buf = encode_stream(symbols, 6, "rans", block, lanes=lanes)
    info = stream_info(buf)
    offsets, data = rans_reference_encode(
        symbols, info.frequencies, info.scale_bits, lanes, block
    )
    header = struct.pack("<BBII", 2, 6, 5000, len(data)) + struct.pack(
        "<BBII", info.scale_bits, lanes, block, info.data_offset - 20 - 4 * len(offsets)
    )
    table = _rans.write_table(info.frequencies)
    assert buf == header + table + struct.pack(f"<{len(offsets)}I", *offsets) + data


def test_table_bytes():
    # A = 6; 3; 0 and a run of 1 more absent symbol (symbols 1, 2); 200 (two bytes);
    # 1; 52.
    freqs = np.array([3, 0, 0, 200, 1, 52, 0, 0])
    assert _rans.write_table(freqs) == bytes([6, 3, 0, 1, 0xC8, 0x01, 1, 52])
    data = np.frombuffer(_rans.write_table(freqs), np.uint8)
    np.testing.assert_array_equal(
        _rans.read_table(data, 0, data.size, 3, 8, None, 0), freqs
    )


@pytest.mark.parametrize("kind, bits", [("ternary", 2), ("skewed", 8), ("rare", 1)])
@pytest.mark.parametrize("n", [4096, 100_000])
def test_within_two_percent_of_the_entropy(kind, bits, n):
    symbols = _symbols(kind, n, bits, 7)
    info = stream_info(encode_stream(symbols, bits, "rans"))
    data = info.size - info.fixed_bytes  # the words only
    entropy = entropy_bits(symbols) * n / 8
    assert data <= entropy * (1 + ENTROPY_SLACK)


@pytest.mark.parametrize("scale", [8, 12, 16])
def test_quantized_frequencies_sum_to_the_total(scale):
    counts = np.bincount(_symbols("skewed", 10_000, 8, 1), minlength=256)
    f = _rans.quantize_frequencies(counts, scale)
    assert int(f.sum()) == 1 << scale
    assert np.all((f > 0) == (counts > 0))


def test_auto_picks_rans_only_when_smaller():
    ternary = _symbols("ternary", 20_000, 2, 3)
    uniform = _symbols("uniform", 20_000, 8, 3)
    assert stream_info(encode_stream(ternary, 2)).coding == "rans"
    assert stream_info(encode_stream(uniform, 8)).coding == "fixed"


def _rans_stream(n=3000, lanes=4, block=1000):
    return bytearray(
        encode_stream(_symbols("skewed", n, 6, 0), 6, "rans", block, lanes=lanes)
    )


def _set(buf, at, fmt, value):
    struct.pack_into(fmt, buf, at, value)
    return bytes(buf)


def _table_end(buf):
    return 20 + struct.unpack_from("<I", buf, 16)[0]


# Each a malformed stream and the message it must raise (offsets into the stream).
MALFORMED = {
    "scale-0": (lambda: _set(_rans_stream(), 10, "<B", 0), "scale bits 0"),
    "scale-17": (lambda: _set(_rans_stream(), 10, "<B", 17), "scale bits 17"),
    "lanes-0": (lambda: _set(_rans_stream(), 11, "<B", 0), "lane count 0"),
    "lanes-33": (lambda: _set(_rans_stream(), 11, "<B", 33), "lane count 33"),
    "block-0": (lambda: _set(_rans_stream(), 12, "<I", 0), "block size is 0"),
    "table-size-huge": (
        lambda: _set(_rans_stream(), 16, "<I", 10**6),
        "truncated rANS",
    ),
    "table-truncated": (
        lambda: _set(_rans_stream(), 16, "<I", 1),
        "truncated rANS frequency table|bytes after",
    ),
    "table-sum": (lambda: _set(_rans_stream(), 21, "<B", 5), "sum to|bytes after"),
    "width-17": (lambda: _set(_rans_stream(), 1, "<B", 17), "symbol width 17"),
    "header-truncated": (lambda: bytes(_rans_stream()[:15]), "truncated rANS stream"),
    "offsets-past-data": (
        lambda: _set(_rans_stream(), _table_end(_rans_stream()) + 4, "<I", 10**6),
        "past the data",
    ),
    "offsets-decrease": (
        lambda: _set(_rans_stream(), _table_end(_rans_stream()) + 4, "<I", 0),
        "offsets decrease",
    ),
    "state-below-2-16": (
        lambda: _set(_rans_stream(), _table_end(_rans_stream()) + 8, "<I", 5),
        "below 2\\*\\*16",
    ),
    "odd-block": (
        lambda: _set(_rans_stream(), _table_end(_rans_stream()), "<I", 17),
        "whole 16-bit words",
    ),
    "data-truncated": (lambda: bytes(_rans_stream()[:-3]), "truncated stream data"),
}


@pytest.mark.parametrize("make, match", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_streams_raise_format_error(make, match):
    with pytest.raises(FormatError, match=match):
        decode_stream(make())


def test_corrupt_words_are_caught():
    """Flipping any one data byte fails (the final states or word counts disagree) or
    at worst decodes other symbols: never a crash. Most flips are caught."""
    clean = _rans_stream(n=2000, lanes=2, block=2000)
    start = len(clean) - struct.unpack_from("<I", clean, 6)[0]
    caught = 0
    for at in range(start, len(clean), 7):
        buf = bytearray(clean)
        buf[at] ^= 0x5A
        try:
            decode_stream(bytes(buf))
        except FormatError:
            caught += 1
    assert caught >= 0.9 * len(range(start, len(clean), 7))


def _payload(coding="rans"):
    return encode_payload(
        element_type=9,
        element_size=1,
        count=5000,
        layout="dense",
        value_kind="codebook",
        codebook=np.array([-1, 0, 1], np.int8),
        indices=_symbols("ternary", 5000, 2, 0),
        value_coding=coding,
    )


def test_payload_version_is_3_only_with_rans():
    assert _payload("rans")[4] == 3
    assert _payload("huffman")[4] == 1
    np.testing.assert_array_equal(
        decode_payload(_payload("rans")), decode_payload(_payload("huffman"))
    )


def test_rans_in_a_version_2_payload_is_malformed():
    buf = bytearray(_payload("rans"))
    buf[4] = 2
    with pytest.raises(FormatError, match="needs payload format version 3"):
        decode_payload(fix_crc(buf))


def test_numpy_reader_steps_per_block_not_per_symbol():
    """The numpy reader loops over interleaving steps (block size / lanes), vectorised
    over every block and lane: a 1M-symbol stream takes a few thousand steps."""
    symbols = _symbols("ternary", 1_000_000, 2, 5)
    info = stream_info(encode_stream(symbols, 2, "rans"))
    assert info.lanes == 16
    assert info.block_size // info.lanes <= _rans.MAX_DEFAULT_BLOCK_SIZE // 16
