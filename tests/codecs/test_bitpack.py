"""Fixed-width bit packing: exact bytes and lossless round trips for 1..8 bits."""

import numpy as np
import pytest

from tfedge.codecs import crc32, pack_bits, unpack_bits

COUNTS = [0, 1, 7, 8, 9, 63, 1000]
BITS = list(range(1, 9))


def _reference(symbols, bits):
    """Packs bit by bit with Python strings: MSB first, zero padded."""
    text = "".join(format(int(s), f"0{bits}b") for s in symbols)
    text += "0" * (-len(text) % 8)
    return bytes(int(text[i : i + 8], 2) for i in range(0, len(text), 8))


@pytest.mark.parametrize("bits", BITS, ids=[f"bits{b}" for b in BITS])
@pytest.mark.parametrize("count", COUNTS, ids=[f"n{n}" for n in COUNTS])
def test_pack_matches_reference_and_round_trips(bits, count):
    rng = np.random.default_rng(bits * 1000 + count)
    symbols = rng.integers(0, 1 << bits, count)
    packed = pack_bits(symbols, bits)
    assert packed == _reference(symbols, bits)
    np.testing.assert_array_equal(unpack_bits(packed, bits, count), symbols)


@pytest.mark.parametrize("bits", BITS, ids=[f"bits{b}" for b in BITS])
def test_round_trip_across_chunks(bits):
    rng = np.random.default_rng(bits)
    count = (1 << 20) + 13  # more than one internal chunk
    symbols = rng.integers(0, 1 << bits, count).astype(np.uint8)
    packed = pack_bits(symbols, bits)
    assert len(packed) == (count * bits + 7) // 8
    out = unpack_bits(np.frombuffer(packed, np.uint8), bits, count)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, symbols)


def test_known_bytes():
    assert pack_bits([1, 0, 1], 1) == b"\xa0"
    assert pack_bits([5, 3], 3) == bytes([0b10101100])
    assert pack_bits([0xF, 0x1, 0xA], 4) == b"\xf1\xa0"
    assert pack_bits([1, 2, 3], 8) == b"\x01\x02\x03"


@pytest.mark.parametrize(
    "symbols, bits", [([2], 1), ([-1], 4), ([256], 8), ([8], 3)], ids=str
)
def test_symbol_out_of_range_raises(symbols, bits):
    with pytest.raises(ValueError, match="Expected `symbols` in"):
        pack_bits(np.array(symbols), bits)


@pytest.mark.parametrize("bits", [0, 9, -1], ids=str)
def test_bad_bits_raises(bits):
    with pytest.raises(ValueError, match=r"Expected `bits` in \[1, 8\]"):
        pack_bits([0], bits)
    with pytest.raises(ValueError, match=r"Expected `bits` in \[1, 8\]"):
        unpack_bits(b"\0", bits, 1)


def test_unpack_too_short_raises():
    with pytest.raises(ValueError, match="at least 2 bytes"):
        unpack_bits(b"\0", 3, 4)


def test_crc32_is_ieee():
    assert crc32(b"123456789") == 0xCBF43926
    assert crc32(b"6789", crc32(b"12345")) == 0xCBF43926
    assert crc32(np.frombuffer(b"123456789", np.uint8)) == 0xCBF43926
