"""Streams: exact bytes, exact sizes, "auto" choice and lossless round trips."""

import struct

import numpy as np
import pytest

from tfedge.codecs import decode_stream, default_block_size, encode_stream, stream_size
from tfedge.errors import FormatError

CODINGS = ["fixed", "huffman", "rans", "auto"]


def _symbols(kind, bits, n, seed):
    rng = np.random.default_rng(seed)
    top = 1 << bits
    if kind == "empty":
        return np.zeros(0, np.uint8)
    if kind == "one":
        return np.array([top - 1])
    if kind == "zeros":
        return np.zeros(n, np.uint8)
    if kind == "equal":
        return np.full(n, top // 2)
    if kind == "all_values":
        return rng.permutation(np.tile(np.arange(top), max(1, n // top)))
    if kind == "skewed":
        return (rng.geometric(0.4, n) - 1).clip(0, top - 1)
    return rng.integers(0, top, n)


KINDS = ["empty", "one", "zeros", "equal", "all_values", "skewed", "uniform"]


@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize("bits", range(1, 9), ids=lambda b: f"bits{b}")
@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_and_exact_size(kind, bits, coding):
    symbols = _symbols(kind, bits, 5000, bits)
    buf = encode_stream(symbols, bits, coding)
    assert len(buf) == stream_size(symbols, bits, coding)
    out, end = decode_stream(b"xy" + buf + b"z", 2)
    assert end == 2 + len(buf)
    np.testing.assert_array_equal(out, symbols)
    if coding == "auto":
        sizes = [stream_size(symbols, bits, c) for c in CODINGS[:3]]
        assert len(buf) == min(sizes)


def test_round_trip_many_blocks():
    symbols = _symbols("skewed", 6, 50000, 0)
    for block in (1, 100, 4999, 50000):
        buf = encode_stream(symbols, 6, "huffman", block_size=block)
        assert len(buf) == stream_size(symbols, 6, "huffman", block_size=block)
        np.testing.assert_array_equal(decode_stream(buf)[0], symbols)


def test_round_trip_across_encoder_chunks():
    symbols = _symbols("skewed", 5, (1 << 20) + 4321, 3)  # more than one chunk
    buf = encode_stream(symbols, 5, "huffman", block_size=5000)
    assert len(buf) == stream_size(symbols, 5, "huffman", block_size=5000)
    np.testing.assert_array_equal(decode_stream(buf)[0], symbols)


def test_exact_fixed_bytes():
    buf = encode_stream(np.array([1, 2, 3]), 2, "fixed")
    assert buf == b"\x00\x02" + struct.pack("<II", 3, 1) + bytes([0b01101100])


def test_exact_huffman_bytes():
    # Frequencies 4,2,1,1 over 2-bit symbols: the only optimal lengths are 1,2,3,3
    # (codes 0, 10, 110, 111).
    buf = encode_stream(np.array([0, 0, 0, 0, 1, 1, 2, 3]), 2, "huffman")
    expected = (
        b"\x01\x02"
        + struct.pack("<II", 8, 2)  # count, data size
        + struct.pack("<I", 4096)  # block size
        + bytes([0x12, 0x33])  # nibbles 1,2,3,3
        + bytes([0b00001010, 0b11011100])  # 0 0 0 0 10 10 110 111
    )
    assert buf == expected


def test_default_block_size_keeps_offsets_small():
    assert default_block_size(100, 300) == 4096
    count = 25_000_000
    for bits_per_symbol in (1, 3, 8):
        total = count * bits_per_symbol
        block = default_block_size(count, total)
        offsets = 4 * (-(-count // block) - 1)
        assert offsets < 0.005 * total / 8


@pytest.mark.parametrize(
    "bits, coding, block, match",
    [
        (0, "fixed", None, "bits"),
        (3, "zip", None, "coding"),
        (3, "huffman", 0, "block_size"),
    ],
    ids=["bits", "coding", "block"],
)
def test_bad_arguments(bits, coding, block, match):
    with pytest.raises(ValueError, match=match):
        encode_stream(np.zeros(3, np.uint8), bits, coding, block_size=block)


def _huffman_stream(symbols, bits, block=None):
    return bytearray(
        encode_stream(np.array(symbols), bits, "huffman", block_size=block)
    )


MALFORMED = {
    "short_header": lambda: bytearray(b"\x00\x02\x03"),
    "unknown_coding": lambda: bytearray(b"\x02\x02") + struct.pack("<II", 0, 0),
    "bits_zero": lambda: bytearray(b"\x00\x00") + struct.pack("<II", 0, 0),
    "bits_nine": lambda: bytearray(b"\x00\x09") + struct.pack("<II", 0, 0),
    "fixed_size_mismatch": lambda: (
        bytearray(b"\x00\x08") + struct.pack("<II", 2, 1) + b"ab"
    ),
    "fixed_truncated": lambda: (
        bytearray(b"\x00\x08") + struct.pack("<II", 3, 3) + b"ab"
    ),
    "huffman_block_zero": lambda: _patch(
        _huffman_stream([0, 1, 2], 2), 10, b"\0\0\0\0"
    ),
    "huffman_non_prefix": lambda: _patch(_huffman_stream([0, 1, 2, 3], 2), 14, b"\x11"),
    "huffman_incomplete": lambda: _patch(_huffman_stream([0, 1, 2, 3], 2), 14, b"\x23"),
    "huffman_count_too_big": lambda: _patch(
        _huffman_stream([0, 1, 2, 3], 2), 2, struct.pack("<I", 10**9)
    ),
    "huffman_offsets_decrease": lambda: _patch(
        _huffman_stream([0, 1, 2, 3, 0, 1], 2, block=2), 16, struct.pack("<II", 5, 2)
    ),
    "huffman_offset_past_data": lambda: _patch(
        _huffman_stream([0, 1, 2, 3, 0, 1], 2, block=2), 16, struct.pack("<II", 4, 99)
    ),
    "huffman_table_truncated": lambda: _huffman_stream([0, 1, 2], 2)[:15],
    "huffman_data_truncated": lambda: _huffman_stream([0, 1, 2] * 9, 2)[:-1],
    "huffman_reads_past_data": lambda: _patch(
        _huffman_stream([3] * 8, 2), 2, struct.pack("<I", 9)
    ),
}


def _patch(buf, at, new):
    buf[at : at + len(new)] = new
    return buf


@pytest.mark.parametrize("make", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_streams_raise_format_error(make):
    with pytest.raises(FormatError) as info:
        decode_stream(bytes(make()), 0, name="w")
    assert info.value.tensor == "w"
    assert info.value.offset is not None


def test_max_count_is_checked_before_decoding():
    buf = encode_stream(np.zeros(100, np.uint8), 1, "fixed")
    with pytest.raises(FormatError, match="more than the 99 allowed"):
        decode_stream(buf, max_count=99)
    assert decode_stream(buf, max_count=100)[0].size == 100


def test_huffman_data_past_512_mib_is_refused_not_wrapped():
    """Block offsets are u32 bit offsets: coded data of 2**32 bits or more (512 MiB)
    would wrap them, so the encoder refuses it (the old guard compared bytes with
    4 GiB)."""
    from tfedge.codecs._streams import check_huffman_bits

    check_huffman_bits(2**32 - 1)
    with pytest.raises(ValueError, match="512 MiB"):
        check_huffman_bits(2**32)


def test_block_size_is_bounded():
    from tfedge.codecs import MAX_BLOCK_SIZE

    symbols = np.zeros(10, np.uint8)
    encode_stream(symbols, 2, "huffman", block_size=MAX_BLOCK_SIZE)
    with pytest.raises(ValueError, match="block_size"):
        encode_stream(symbols, 2, "huffman", block_size=MAX_BLOCK_SIZE + 1)
