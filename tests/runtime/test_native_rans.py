"""The native rANS decoder's fast paths against the numpy reader (and the CRC-32 that
guards every payload, which the CPU's carry-less multiplies compute where it has them).

The C++ reader decodes whole rounds of a block (one symbol of every lane) without
per-symbol bounds checks while the block has two bytes a lane left, with AVX2 for 8,
16 and 32 lanes where the CPU has it (the environment variable TFEDGE_NO_SIMD selects
the scalar rounds), and maps one-byte codebook entries through its slot table. Each
case here runs both kinds of rounds and must give the numpy reader's bytes, or its
refusal, on streams long enough for the fast rounds, on frequency tables the encoder
never writes (scale bits above 12 for 8-bit symbols, symbols past the codebook), and
on corrupted data.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from tests._native import NATIVE
from tests._payloads import build, rans_reference_encode, reseal
from tfedge.codecs import decode_payload, encode_stream
from tfedge.errors import FormatError
from tfedge.runtime._native import (
    crc32_native,
    decode_payload_native,
)

pytestmark = NATIVE

ROUNDS = ("simd", "scalar")


@pytest.fixture(params=ROUNDS)
def rounds(request, monkeypatch):
    """Runs a test with the AVX2 rounds (where the CPU has them) and the scalar ones."""
    if request.param == "scalar":
        monkeypatch.setenv("TFEDGE_NO_SIMD", "1")
    else:
        monkeypatch.delenv("TFEDGE_NO_SIMD", raising=False)
    return request.param


def _outcome(decode, payload: bytes):
    try:
        return decode(payload).tobytes()
    except FormatError:
        return "FormatError"


def _symbols(rng, kind: str, n: int, bits: int) -> np.ndarray:
    top = (1 << bits) - 1
    if kind == "uniform":
        return rng.integers(0, top + 1, n)
    if kind == "skewed":
        return np.minimum(rng.geometric(0.05, n) - 1, top)
    # ternary-like: one dominant symbol
    return rng.choice(3, n, p=[0.15, 0.7, 0.15])


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _table(freqs) -> bytes:
    """The frequency table of docs/FORMAT.md 2.3 (zero runs coded as runs)."""
    a = int(np.flatnonzero(freqs)[-1]) + 1
    out = bytearray(_varint(a))
    s = 0
    while s < a:
        if freqs[s]:
            out += _varint(int(freqs[s]))
            s += 1
            continue
        run = 0
        while freqs[s + 1 + run] == 0:
            run += 1
        out += _varint(0) + _varint(run)
        s += 1 + run
    return bytes(out)


def _hand_stream(symbols, bits, freqs, scale, lanes, block) -> bytes:
    """A rANS stream of any frequency table, written from docs/FORMAT.md 2.3 one symbol
    at a time (the encoder under test never writes such tables)."""
    offsets, data = rans_reference_encode(symbols, freqs, scale, lanes, block)
    table = _table(freqs)
    return (
        struct.pack("<BBII", 2, bits, len(symbols), len(data))
        + struct.pack("<BBII", scale, lanes, block, len(table))
        + table
        + struct.pack(f"<{len(offsets)}I", *offsets)
        + data
    )


def _raw(stream: bytes, n: int) -> bytes:
    return build(stream, decoded=n, version=3, kind=0, etype=3, es=1)


def _codebook(stream: bytes, entries: np.ndarray, n: int) -> bytes:
    es = entries.dtype.itemsize
    body = struct.pack("<H", entries.size) + entries.tobytes() + stream
    etype = {1: 9, 4: 0}[es]
    return build(body, decoded=n * es, version=3, kind=1, etype=etype, es=es)


def _planes(streams: list[bytes], n: int, rotation: int) -> bytes:
    body = struct.pack("<B", rotation) + b"".join(streams)
    es = len(streams)
    return build(body, decoded=n * es, version=3, kind=3, etype=0, es=es)


def _encoded(rng, kind, n, bits, lanes, block):
    symbols = _symbols(rng, kind, n, bits)
    return symbols, encode_stream(symbols, bits, "rans", block, lanes=lanes)


# (id, kind, symbols, bits, lanes, block size): 8-bit raw streams of the encoder.
RAW = [
    ("uniform-16-lanes", "uniform", 200_003, 8, 16, None),
    ("skewed-8-lanes-odd-blocks", "skewed", 70_001, 8, 8, 5003),
    ("ternary-32-lanes", "ternary", 90_000, 8, 32, 65_536),
    ("skewed-16-lanes-tiny-blocks", "skewed", 20_000, 8, 16, 33),
    ("uniform-24-lanes", "uniform", 50_000, 8, 24, 4096),
    ("skewed-4-lanes", "skewed", 30_000, 8, 4, None),
]


@pytest.mark.parametrize(
    "kind, n, bits, lanes, block", [r[1:] for r in RAW], ids=[r[0] for r in RAW]
)
def test_raw_streams(rounds, kind, n, bits, lanes, block):
    rng = np.random.default_rng(n)
    symbols, stream = _encoded(rng, kind, n, bits, lanes, block)
    payload = _raw(stream, n)
    out = decode_payload_native(payload)
    np.testing.assert_array_equal(out, symbols.astype(np.uint8))
    np.testing.assert_array_equal(out, decode_payload(payload))


# (id, scale bits, lanes): 8-bit symbols whose table has more than 12 scale bits (the
# slot table then keeps symbols apart from frequencies).
WIDE_SCALE = [
    ("L13-16-lanes", 13, 16),
    ("L16-8-lanes", 16, 8),
    ("L14-32-lanes", 14, 32),
]


@pytest.mark.parametrize(
    "scale, lanes", [r[1:] for r in WIDE_SCALE], ids=[r[0] for r in WIDE_SCALE]
)
def test_scale_bits_above_12(rounds, scale, lanes):
    rng = np.random.default_rng(scale)
    n = 6000
    symbols = _symbols(rng, "skewed", n, 8)
    counts = np.bincount(symbols, minlength=256)
    freqs = np.where(counts > 0, 1, 0)
    freqs[np.argmax(counts)] += (1 << scale) - freqs.sum()
    payload = _raw(_hand_stream(symbols, 8, freqs, scale, lanes, 4000), n)
    np.testing.assert_array_equal(decode_payload_native(payload), symbols)
    np.testing.assert_array_equal(decode_payload(payload), symbols)


def test_sixteen_bit_codebook_indices(rounds):
    rng = np.random.default_rng(5)
    k, n = 3000, 50_000
    book = np.sort(rng.normal(0, 1, k)).astype(np.float32)
    idx = np.clip(np.round(rng.normal(k / 2, k / 6, n)), 0, k - 1).astype(np.int64)
    stream = encode_stream(idx, 12, "rans", lanes=16)
    payload = _codebook(stream, book, n)
    want = book[idx].view(np.uint8)
    np.testing.assert_array_equal(decode_payload_native(payload), want)
    np.testing.assert_array_equal(decode_payload(payload), want)


@pytest.mark.parametrize("rotation", [0, 1, 9])
def test_float32_byte_planes(rounds, rotation):
    rng = np.random.default_rng(rotation)
    n = 40_003  # three chunks of planes, the last short
    w = rng.normal(0, 0.05, n).astype(np.float32).view(np.uint32)
    r = (w << np.uint32(rotation)) | (w >> np.uint32((32 - rotation) % 32))
    r = np.where(rotation == 0, w, r).astype(np.uint32)
    planes = [(r >> np.uint32(8 * b)) & np.uint32(0xFF) for b in range(4)]
    streams = [encode_stream(p, 8, "rans", 4099, lanes=16) for p in planes]
    payload = _planes(streams, n, rotation)
    want = w.view(np.uint8)
    np.testing.assert_array_equal(decode_payload_native(payload), want)
    np.testing.assert_array_equal(decode_payload(payload), want)


# (id, codebook size K, the symbols the table describes, the symbols coded): one-byte
# codebooks are mapped through the slot table only when the table holds no symbol
# >= K; otherwise every index is checked as it is decoded.
CODEBOOK = [
    ("table-within-K", 3, 3, 3),
    ("table-past-K-unused", 3, 4, 3),
    ("index-past-K", 3, 4, 4),
]


@pytest.mark.parametrize(
    "k, described, coded", [r[1:] for r in CODEBOOK], ids=[r[0] for r in CODEBOOK]
)
def test_one_byte_codebooks(rounds, k, described, coded):
    rng = np.random.default_rng(k + described + coded)
    n = 40_000
    symbols = rng.choice(coded, n, p=np.full(coded, 1 / coded))
    freqs = np.full(described, 4096 // described)
    freqs[0] += 4096 - freqs.sum()
    stream = _hand_stream(symbols, 2, freqs, 12, 16, 16_384)
    entries = np.array([-7, 0, 7, 100][:k], np.int8)
    payload = _codebook(stream, entries, n)
    native = _outcome(decode_payload_native, payload)
    assert native == _outcome(decode_payload, payload)
    if coded <= k:
        assert native == entries[symbols].tobytes()
    else:
        assert native == "FormatError"


def _corruptions(stream: bytes, rng) -> list[bytes]:
    """Streams with bytes of their data changed, words dropped from a block, or a
    block offset moved."""
    head = 20
    t = struct.unpack_from("<I", stream, 16)[0]
    count, block = (
        struct.unpack_from("<I", stream, 2)[0],
        struct.unpack_from("<I", stream, 12)[0],
    )
    nblocks = -(-count // block)
    data_at = head + t + 4 * (nblocks - 1)
    out = []
    for _ in range(8):
        s = bytearray(stream)
        for at in rng.integers(data_at, len(s), rng.integers(1, 4)):
            s[at] ^= int(rng.integers(1, 256))
        out.append(bytes(s))
    # A block two bytes short or long: its words run out, or are left over.
    for delta in (-2, 2):
        s = bytearray(stream)
        at = head + t  # block 1's offset
        struct.pack_into("<I", s, at, struct.unpack_from("<I", s, at)[0] + delta)
        out.append(bytes(s))
    # The last block's final words cut (data size and the stream both shorter).
    s = bytearray(stream[:-4])
    struct.pack_into("<I", s, 6, struct.unpack_from("<I", s, 6)[0] - 4)
    out.append(bytes(s))
    return out


@pytest.mark.parametrize("lanes", [8, 16, 32])
def test_corrupted_streams_agree_with_numpy(rounds, lanes):
    rng = np.random.default_rng(lanes)
    n = 24_000
    _, stream = _encoded(rng, "skewed", n, 8, lanes, 8_000)
    for bad in _corruptions(stream, rng):
        payload = reseal(_raw(bad, n))
        assert _outcome(decode_payload_native, payload) == _outcome(
            decode_payload, payload
        )


# Lengths around the carry-less CRC's steps: under 64 bytes (tables only), whole and
# partial 16- and 64-byte chunks.
CRC_LENGTHS = [0, 1, 15, 16, 63, 64, 65, 79, 80, 127, 128, 129, 191, 1000, 10_007]


@pytest.mark.parametrize("n", CRC_LENGTHS)
def test_crc32_matches_zlib(rounds, n):
    data = np.random.default_rng(n).integers(0, 256, n + 3, dtype=np.uint8).tobytes()
    for start in (0, 3):  # unaligned too
        chunk = data[start : start + n]
        assert crc32_native(chunk) == zlib.crc32(chunk)
        assert crc32_native(chunk, 0x1234_5678) == zlib.crc32(chunk, 0x1234_5678)
