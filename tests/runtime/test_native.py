"""The native decoder against the numpy reference: same bytes out, same refusals."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from tfedge.codecs import crc32, decode_payload, encode_payload
from tfedge.errors import FormatError
from tfedge.runtime import _native
from tfedge.runtime._native import decode_payload_native, native_available

pytestmark = [
    pytest.mark.native,
    pytest.mark.skipif(
        not native_available(), reason="the native library is not built (no compiler)"
    ),
]

# element size -> (TFLite TensorType, numpy dtype of the element bits)
_ELEMENTS = {1: (9, np.uint8), 2: (1, np.uint16), 4: (0, np.uint32), 8: (4, np.uint64)}

# (id, layout, value kind, value coding, gap coding)
CODECS = [
    ("dense-raw-fixed", "dense", "raw", "fixed", "auto"),
    ("dense-raw-huffman", "dense", "raw", "huffman", "auto"),
    ("dense-codebook-fixed", "dense", "codebook", "fixed", "auto"),
    ("dense-codebook-huffman", "dense", "codebook", "huffman", "auto"),
    ("sparse-raw-fixed", "sparse", "raw", "fixed", "fixed"),
    ("sparse-raw-huffman", "sparse", "raw", "huffman", "huffman"),
    ("sparse-codebook-fixed", "sparse", "codebook", "fixed", "fixed"),
    ("sparse-codebook-huffman", "sparse", "codebook", "huffman", "huffman"),
    ("sparse-codebook-mixed", "sparse", "codebook", "huffman", "fixed"),
]
SEEDS = range(8)
# Random payloads per seed for the mutation test: enough to reach every check of
# the body (streams, tables, offsets, indices, gaps) many times, under two seconds.
MUTATIONS_PER_SEED = 80


def random_payload(rng: np.random.Generator, layout, kind, value_coding, gap_coding):
    """A payload of a random tensor: size, element size, skew and sparsity vary."""
    es = int(rng.choice(list(_ELEMENTS)))
    etype, dtype = _ELEMENTS[es]
    # Up to 70,000 elements: Huffman streams of many 4096-symbol blocks, which the
    # native decoder decodes four at a time, with a shorter tail block.
    n = int(
        rng.choice(
            [0, 1, 7, int(rng.integers(2, 5000)), int(rng.integers(16384, 70000))]
        )
    )
    density = float(rng.choice([0.02, 0.2, 0.7]))
    kw = dict(
        element_type=etype,
        element_size=es,
        count=n,
        layout=layout,
        value_kind=kind,
        value_coding=value_coding,
        gap_coding=gap_coding,
    )
    skew = rng.geometric(float(rng.choice([0.05, 0.3, 0.9])), n) - 1
    if kind == "raw":
        values = rng.integers(0, np.iinfo(dtype).max, n, dtype=np.uint64, endpoint=True)
        values = np.where(rng.random(n) < 0.5, skew, values).astype(dtype)
        if layout == "sparse":
            values[rng.random(n) >= density] = 0
        kw["elements"] = values
    else:
        k = int(rng.integers(1, 257))
        kw["codebook"] = rng.integers(
            0, np.iinfo(dtype).max, k, dtype=np.uint64
        ).astype(dtype)
        idx = np.minimum(skew, k - 1)
        if layout == "sparse":
            idx[rng.random(n) >= density] = 0
        kw["indices"] = idx
        if rng.random() < 0.3:
            kw["index_bits"] = int(rng.integers(max(1, (k - 1).bit_length()), 9))
    return encode_payload(**kw)


def _outcome(decode, payload: bytes):
    try:
        return decode(payload).tobytes()
    except FormatError as e:
        return ("FormatError", e.tensor)


def _refresh_crc(payload: bytearray) -> bytearray:
    """Recomputes the CRC so that a mutation reaches the body checks behind it."""
    if len(payload) >= 28:
        crc = crc32(bytes(payload[28:]), crc32(bytes(payload[:24])))
        payload[24:28] = struct.pack("<I", crc)
    return payload


@pytest.mark.parametrize(
    "layout,kind,value_coding,gap_coding",
    [c[1:] for c in CODECS],
    ids=[c[0] for c in CODECS],
)
@pytest.mark.parametrize("seed", SEEDS)
def test_identical_bytes_to_numpy(layout, kind, value_coding, gap_coding, seed):
    rng = np.random.default_rng(seed)
    payload = random_payload(rng, layout, kind, value_coding, gap_coding)
    expected = decode_payload(payload)
    got = decode_payload_native(payload, name="w")
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)
    # The tensor's own size as the bound is accepted.
    np.testing.assert_array_equal(
        decode_payload_native(payload, expected_size=expected.size), expected
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_mutated_payloads_agree_with_numpy(seed):
    """Flipped, overwritten, cut and extended payloads: same bytes, or both refuse."""
    rng = np.random.default_rng(100 + seed)
    agreed = refused = 0
    for i in range(MUTATIONS_PER_SEED):
        _, layout, kind, vc, gc = CODECS[i % len(CODECS)]
        data = bytearray(random_payload(rng, layout, kind, vc, gc))
        op = rng.integers(4)
        if op == 0:  # flip bits of a few bytes
            for at in rng.integers(0, len(data), int(rng.integers(1, 4))):
                data[at] ^= 1 << int(rng.integers(8))
        elif op == 1:  # overwrite a byte of the body's structure with a random value
            at = int(rng.integers(28, max(29, min(len(data), 80))))
            if at < len(data):
                data[at] = int(rng.integers(256))
        elif op == 2:  # truncate
            data = data[: int(rng.integers(0, len(data)))]
        else:  # append
            data += bytes(rng.integers(0, 256, int(rng.integers(1, 5)), dtype=np.uint8))
        if rng.random() < 0.8:
            data = _refresh_crc(data)
            if op == 2 or op == 3:
                if len(data) >= 28:
                    data[20:24] = struct.pack("<I", len(data) - 28)
                    data = _refresh_crc(data)
        ref = _outcome(lambda p: decode_payload(p, name="w"), bytes(data))
        got = _outcome(lambda p: decode_payload_native(p, name="w"), bytes(data))
        assert got == ref, f"mutation {i} (op {op}) disagrees"
        agreed += 1
        refused += isinstance(ref, tuple)
    # The mutations must exercise both outcomes, or this test would prove little.
    assert 0 < refused < agreed


@pytest.mark.parametrize("es", sorted(_ELEMENTS))
@pytest.mark.parametrize("layout", ["dense", "sparse"])
@pytest.mark.parametrize("kind", ["raw", "codebook"])
def test_many_huffman_blocks(es, layout, kind):
    """Streams of 4096-symbol blocks: groups of four, then a short tail, then errors."""
    rng = np.random.default_rng(es)
    etype, dtype = _ELEMENTS[es]
    n = 4096 * 9 + 123
    kw = dict(
        element_type=etype,
        element_size=es,
        count=n,
        layout=layout,
        value_kind=kind,
        value_coding="huffman",
        gap_coding="huffman",
    )
    values = (rng.geometric(0.2, n) - 1).astype(dtype)
    if layout == "sparse":
        values[rng.random(n) < 0.3] = 0
    if kind == "raw":
        kw["elements"] = values
    else:
        kw["codebook"] = np.arange(256, dtype=dtype) * 3
        kw["indices"] = np.minimum(values, 255)
    payload = encode_payload(**kw)
    np.testing.assert_array_equal(
        decode_payload_native(payload), decode_payload(payload)
    )
    # Corrupt the coded data near the end (CRC fixed up): both readers agree.
    for back in (1, 3, 40, 400):
        bad = bytearray(payload)
        bad[-back] ^= 0xA5
        bad = bytes(_refresh_crc(bad))
        assert _outcome(decode_payload_native, bad) == _outcome(decode_payload, bad)


# (id, header byte offset, new value, expected error offset)
HEADER_FAULTS = [
    ("magic", 0, ord("X"), 0),
    ("version-newer", 4, 2, 4),
    ("version-zero", 4, 0, 4),
    ("layout", 5, 2, 5),
    ("value-kind", 6, 7, 6),
    ("element-size", 8, 3, 8),
    ("reserved", 10, 1, 9),
    ("decoded-size-not-multiple", 12, 0x41, 12),
    ("body-size", 20, 0xFF, 20),
    ("crc", 25, 0x00, 24),
]


@pytest.mark.parametrize(
    "at,value,offset", [f[1:] for f in HEADER_FAULTS], ids=[f[0] for f in HEADER_FAULTS]
)
def test_header_faults_name_tensor_and_offset(at, value, offset):
    payload = bytearray(
        encode_payload(
            element_type=0,
            element_size=4,
            count=64,
            layout="dense",
            value_kind="codebook",
            codebook=np.arange(4, dtype=np.float32),
            indices=np.arange(64) % 4,
        )
    )
    if payload[at] == value:
        value ^= 0x10
    payload[at] = value
    with pytest.raises(FormatError, match="tensor 'conv/w'") as native:
        decode_payload_native(bytes(payload), name="conv/w")
    with pytest.raises(FormatError) as numpy_error:
        decode_payload(bytes(payload), name="conv/w")
    assert native.value.offset == numpy_error.value.offset == offset


def test_decompression_bomb_is_refused_before_allocating():
    payload = bytearray(
        encode_payload(
            element_type=3,
            element_size=1,
            count=16,
            layout="sparse",
            value_kind="raw",
            elements=np.zeros(16, np.uint8),
        )
    )
    payload[12:20] = struct.pack("<Q", 2**62)  # claims 4 EiB of zeros
    payload = _refresh_crc(payload)
    with pytest.raises(FormatError, match="exceeds the bound"):
        decode_payload_native(bytes(payload))
    with pytest.raises(FormatError, match="exceeds the bound of 8 bytes"):
        decode_payload_native(bytes(payload), max_decoded=8)


def test_expected_size_must_match():
    payload = encode_payload(
        element_type=0,
        element_size=4,
        count=10,
        layout="dense",
        value_kind="raw",
        elements=np.arange(10, dtype=np.float32),
    )
    assert decode_payload_native(payload, expected_size=40).size == 40
    with pytest.raises(FormatError, match="bound of 36"):
        decode_payload_native(payload, expected_size=36)
    with pytest.raises(FormatError, match="disagrees"):
        decode_payload_native(payload, expected_size=44)


def test_invalid_huffman_table_is_refused():
    # Dense raw, 4 symbols Huffman-coded with lengths {1, 1, 1}: over-subscribed.
    body = bytearray()
    body += struct.pack("<BBII", 1, 8, 4, 1)  # Huffman, 8 bits, 4 symbols, 1 byte
    body += struct.pack("<I", 4)  # one block
    lengths = bytearray(128)
    lengths[0] = 0x11
    lengths[1] = 0x10
    body += lengths + b"\x00"
    header = bytearray(b"TFEP" + bytes([1, 0, 0, 3, 1, 0, 0, 0]))
    header += struct.pack("<QI", 4, len(body))
    header += struct.pack("<I", zlib.crc32(bytes(body), zlib.crc32(bytes(header))))
    payload = bytes(header + body)
    with pytest.raises(FormatError, match="prefix code"):
        decode_payload_native(payload, name="t")
    with pytest.raises(FormatError):
        decode_payload(payload, name="t")


def test_crc32_matches_zlib():
    data = np.random.default_rng(0).integers(0, 256, 10007, dtype=np.uint8).tobytes()
    assert _native.crc32_native(data) == zlib.crc32(data)
    assert _native.crc32_native(data[5:], _native.crc32_native(data[:5])) == zlib.crc32(
        data
    )
    assert _native.crc32_native(b"") == 0


def test_max_decoded_must_be_non_negative():
    with pytest.raises(ValueError, match="max_decoded"):
        decode_payload_native(b"TFEP", max_decoded=-1)
