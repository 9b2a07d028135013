"""The native decoder against the numpy reference: same bytes out, same refusals."""

from __future__ import annotations

import re
import struct
import zlib

import numpy as np
import pytest

from tests._native import NATIVE
from tests._payloads import (
    ELEMENTS,
    SHARED_MODES,
    build,
    channel_section,
    fix_crc,
    fixed_stream,
    random_payload,
    reseal,
)
from tfedge.codecs import (
    decode_payload,
    encode_payload,
    inspect_payload,
)
from tfedge.errors import FormatError
from tfedge.runtime import _native
from tfedge.runtime._native import decode_payload_native

pytestmark = NATIVE

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
    ("dense-channel-fixed", "dense", "channel_codebook", "fixed", "auto"),
    ("dense-channel-huffman", "dense", "channel_codebook", "huffman", "auto"),
    ("sparse-channel-fixed", "sparse", "channel_codebook", "fixed", "fixed"),
    ("sparse-channel-huffman", "sparse", "channel_codebook", "huffman", "huffman"),
    ("sparse-channel-mixed", "sparse", "channel_codebook", "fixed", "huffman"),
    ("dense-raw-rans", "dense", "raw", "rans", "auto"),
    ("dense-codebook-rans", "dense", "codebook", "rans", "auto"),
    ("sparse-raw-rans", "sparse", "raw", "rans", "rans"),
    ("sparse-codebook-rans", "sparse", "codebook", "rans", "huffman"),
    ("dense-channel-rans", "dense", "channel_codebook", "rans", "auto"),
    ("sparse-channel-rans", "sparse", "channel_codebook", "rans", "rans"),
    ("dense-planes-auto", "dense", "planes", "auto", "auto"),
    ("dense-planes-huffman", "dense", "planes", "huffman", "auto"),
    ("sparse-planes-rans", "sparse", "planes", "rans", "rans"),
    ("sparse-planes-fixed", "sparse", "planes", "fixed", "huffman"),
    # Codebooks of 257 to 65535 entries (format version 3): 9- to 16-bit indices.
    ("dense-large-codebook", "dense", "large_codebook", "auto", "auto"),
    ("sparse-large-codebook", "sparse", "large_codebook", "rans", "huffman"),
]
SEEDS = range(8)
# Random payloads per seed for the mutation test: enough to reach every check of
# the body (streams, tables, offsets, indices, gaps) many times, under two seconds.
MUTATIONS_PER_SEED = 80


def _outcome(decode, payload: bytes):
    try:
        return decode(payload).tobytes()
    except FormatError as e:
        return ("FormatError", e.tensor)


@pytest.mark.parametrize(
    "layout,kind,value_coding,gap_coding",
    [c[1:] for c in CODECS],
    ids=[c[0] for c in CODECS],
)
@pytest.mark.parametrize("seed", SEEDS)
def test_identical_bytes_to_numpy(layout, kind, value_coding, gap_coding, seed):
    rng = np.random.default_rng(seed)
    # Per-channel codebooks: every number of shared entries, each for two seeds.
    shared = SHARED_MODES[seed % len(SHARED_MODES)]
    payload = random_payload(rng, layout, kind, value_coding, gap_coding, shared)
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
            # After a cut or an append, the body size too when a header is left.
            resize = op in (2, 3) and len(data) >= 28
            data = bytearray(reseal(data) if resize else fix_crc(data))
        ref = _outcome(lambda p: decode_payload(p, name="w"), bytes(data))
        got = _outcome(lambda p: decode_payload_native(p, name="w"), bytes(data))
        assert got == ref, f"mutation {i} (op {op}) disagrees"
        agreed += 1
        refused += isinstance(ref, tuple)
    # The mutations must exercise both outcomes, or this test would prove little.
    assert 0 < refused < agreed


@pytest.mark.parametrize("es", sorted(ELEMENTS))
@pytest.mark.parametrize("layout", ["dense", "sparse"])
@pytest.mark.parametrize("kind", ["raw", "codebook", "channel_codebook"])
def test_many_huffman_blocks(es, layout, kind):
    """Streams of 4096-symbol blocks: groups of four, then a short tail, then errors."""
    rng = np.random.default_rng(es)
    etype, dtype = ELEMENTS[es]
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
    elif kind == "codebook":
        kw["codebook"] = np.arange(256, dtype=dtype) * 3
        kw["indices"] = np.minimum(values, 255)
    else:
        # N = 3 x 12329: three channels of one long run each, or of one element each.
        kw["channel_run"] = n // 3 if es in (1, 4) else 1
        book = np.arange(256) * 3 + np.arange(3)[:, None] * 7
        book[:, 0] = 0  # the fill, common to every channel
        kw["codebook"] = book.astype(dtype)
        kw["indices"] = np.minimum(values, 255)
    payload = encode_payload(**kw)
    np.testing.assert_array_equal(
        decode_payload_native(payload), decode_payload(payload)
    )
    # Corrupt the coded data near the end (CRC fixed up): both readers agree.
    for back in (1, 3, 40, 400):
        bad = bytearray(payload)
        bad[-back] ^= 0xA5
        bad = fix_crc(bad)
        assert _outcome(decode_payload_native, bad) == _outcome(decode_payload, bad)


# (C, R, repeats, element size): one channel, runs of one element (a depthwise kernel,
# [1, H, W, C]), a conv kernel [O, H, W, I] (C = O, R = H x W x I), a tensor that is
# one run per channel, and a single element.
TILINGS = [
    (1, 50, 3, 4),
    (16, 1, 9, 4),
    (8, 36, 1, 4),
    (5, 3, 4, 1),
    (3, 4100, 2, 2),
    (7, 1, 1, 8),
    (1, 1, 1, 1),
]


@pytest.mark.parametrize("zero", [0, 2], ids=["zero-first", "zero-last"])
@pytest.mark.parametrize("coding", ["fixed", "huffman"])
@pytest.mark.parametrize("layout", ["dense", "sparse"])
@pytest.mark.parametrize(
    "channels,run,repeats,es", TILINGS, ids=["x".join(map(str, t)) for t in TILINGS]
)
def test_channel_codebook_tilings(channels, run, repeats, es, layout, coding, zero):
    """Ternary-like kernels {0, -a_c, +b_c}: element i in channel (i // R) % C. The
    zero first is a shared entry (G = 1); last, an own entry of every channel (G = 0),
    the sparse fill nonetheless. One channel shares everything (G = K)."""
    rng = np.random.default_rng(channels * 1000 + run)
    etype, dtype = ELEMENTS[es]
    n = channels * run * repeats
    book = rng.integers(1, np.iinfo(dtype).max, (channels, 3), dtype=np.uint64)
    book = book.astype(dtype)
    book[:, zero] = 0
    p = [0.1, 0.1, 0.1]
    p[zero] = 0.8
    idx = rng.choice(3, n, p=p)
    kw = dict(
        element_type=etype,
        element_size=es,
        count=n,
        layout=layout,
        value_kind="channel_codebook",
        codebook=book,
        indices=idx,
        channel_run=run,
        value_coding=coding,
        gap_coding=coding,
    )
    if layout == "sparse":
        kw.update(fill=zero, gap_bits=1)  # any gap of 2 or more takes filler entries
    payload = encode_payload(**kw)
    shared = 3 if channels == 1 else 1 if zero == 0 else 0
    assert inspect_payload(payload).shared_entries == shared
    want = book[(np.arange(n) // run) % channels, idx]
    np.testing.assert_array_equal(decode_payload(payload).view(dtype), want)
    np.testing.assert_array_equal(decode_payload_native(payload).view(dtype), want)
    if layout == "sparse" and n > 10:
        assert inspect_payload(payload).gaps.count > np.count_nonzero(idx != zero), (
            "the case must have filler entries"
        )


# (id, header byte offset, new value, expected error offset)
HEADER_FAULTS = [
    ("magic", 0, ord("X"), 0),
    ("version-newer", 4, 4, 4),
    ("version-zero", 4, 0, 4),
    ("layout", 5, 2, 5),
    ("value-kind", 6, 7, 6),
    ("channel-kind-in-version-1", 6, 2, 6),
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


def _channel_payload(body: bytes, *, decoded, layout=0, version=2, es=1) -> bytes:
    """A payload of value kind 2 (uint8 elements unless `es` says otherwise)."""
    etype = ELEMENTS[es][0]
    return build(
        body,
        decoded=decoded,
        version=version,
        layout=layout,
        kind=2,
        etype=etype,
        es=es,
    )


# 2 channels of runs of 2 over 8 uint8 elements: channels 0 0 1 1 0 0 1 1.
_GOOD_CHANNEL_BODY = channel_section(2, 2, 2, b"\x0a\x0b\x14\x15")
# The same tiling with index 0 shared (7 in both channels), index 1 own (11, 21).
_SHARED_CHANNEL_BODY = channel_section(2, 2, 2, b"\x07\x0b\x15", shared=1)
_FOUR_ZEROS = fixed_stream([0] * 4, 1)  # a value stream of 4 one-bit indices

# (id, payload, the native error, matched against its message)
CHANNEL_FAULTS = [
    (
        "kind-2-in-version-1",
        _channel_payload(
            _GOOD_CHANNEL_BODY + fixed_stream([0] * 8, 1), decoded=8, version=1
        ),
        "needs payload format version 2, this payload says 1",
    ),
    (
        "k-zero",
        _channel_payload(channel_section(0, 1, 1) + _FOUR_ZEROS, decoded=4),
        "codebook has 0 entries, expected 1..256",
    ),
    (
        "k-257",
        _channel_payload(channel_section(257, 1, 1, bytes(257)), decoded=4),
        "codebook has 257 entries",
    ),
    (
        "truncated-shared-channels-and-run",
        _channel_payload(struct.pack("<HHI", 1, 0, 2), decoded=4),
        "truncated shared entry count, channel count and channel run: 10 bytes "
        "needed, 6 left",
    ),
    (
        "truncated-after-k",
        _channel_payload(struct.pack("<H", 1), decoded=4),
        "truncated shared entry count, channel count and channel run: 10 bytes "
        "needed, 0 left",
    ),
    (
        "shared-above-k",
        _channel_payload(
            channel_section(2, 2, 2, b"\1\2\3", shared=3) + _FOUR_ZEROS, decoded=4
        ),
        "3 shared entries, more than the K=2 entries",
    ),
    (
        # G > K is refused before C and R are looked at.
        "shared-above-k-and-zero-channels",
        _channel_payload(channel_section(1, 0, 0, shared=0xFFFF), decoded=4),
        "65535 shared entries, more than the K=1 entries",
    ),
    (
        "zero-channels",
        _channel_payload(channel_section(1, 0, 1) + _FOUR_ZEROS, decoded=4),
        "channel count 0 and channel run 1 must both be >= 1",
    ),
    (
        "zero-run",
        _channel_payload(channel_section(1, 2, 0, b"\1\2") + _FOUR_ZEROS, decoded=4),
        "channel count 2 and channel run 0 must both be >= 1",
    ),
    (
        "not-tiling",
        _channel_payload(channel_section(1, 3, 1, b"\1\2\3") + _FOUR_ZEROS, decoded=4),
        "3 channels of 1 elements do not tile the tensor's 4 elements",
    ),
    (
        "run-too-long",
        _channel_payload(channel_section(1, 2, 3, b"\1\2") + _FOUR_ZEROS, decoded=4),
        "2 channels of 3 elements do not tile",
    ),
    (
        "u32-max-channels-and-run",
        _channel_payload(channel_section(1, 0xFFFFFFFF, 0xFFFFFFFF), decoded=4),
        "4294967295 channels of 4294967295 elements do not tile",
    ),
    (
        # C x R = 2^32 + 2^16 wraps to 2^16 in 32 bits, which would divide N = 2^16.
        "u32-wrapping-product",
        _channel_payload(channel_section(1, 0x10000, 0x10001), decoded=0x10000),
        "65536 channels of 65537 elements do not tile",
    ),
    (
        "truncated-entries",
        _channel_payload(channel_section(2, 2, 2, b"\1\2\3"), decoded=4),
        "per-channel codebook entries need 4 bytes, 3 left",
    ),
    (
        # G + C x (K - G) = 1 + 2 x 1 entries.
        "truncated-shared-entries",
        _channel_payload(channel_section(2, 2, 2, b"\1\2", shared=1), decoded=4),
        "per-channel codebook entries need 3 bytes, 2 left (1 shared entries, 2 "
        "channels of 1 own entries)",
    ),
    (
        # Every entry shared: K entries, however many channels.
        "truncated-all-shared-entries",
        _channel_payload(
            channel_section(256, 0xFFFFFFFF, 1, bytes(2047), shared=256),
            decoded=0,
            es=8,
        ),
        "entries need 2048 bytes, 2047 left",
    ),
    (
        # N = 0 tiles with anything; C x K x element size = 2^43 - 2^11 bytes.
        "entries-size-past-32-bits",
        _channel_payload(channel_section(256, 0xFFFFFFFF, 1), decoded=0, es=8),
        "entries need 8796093020160 bytes, 0 left",
    ),
    (
        "dense-index-beyond-k",
        _channel_payload(_GOOD_CHANNEL_BODY + fixed_stream([0, 1, 2, 0], 2), decoded=4),
        "element 2 has codebook index 2, codebook has 2 entries per channel",
    ),
    (
        # Index K is past the last own entry, not the first entry of the next channel.
        "dense-index-k-with-shared",
        _channel_payload(
            _SHARED_CHANNEL_BODY + fixed_stream([0, 1, 2, 0], 2), decoded=4
        ),
        "element 2 has codebook index 2, codebook has 2 entries per channel",
    ),
    (
        "dense-index-beyond-k-all-shared",
        _channel_payload(
            channel_section(2, 2, 2, b"\1\2", shared=2) + fixed_stream([1, 0, 1, 3], 2),
            decoded=4,
        ),
        "element 3 has codebook index 3, codebook has 2 entries per channel",
    ),
    (
        "sparse-index-beyond-k",
        _channel_payload(
            _GOOD_CHANNEL_BODY
            + b"\x0a"
            + fixed_stream([1, 2], 2)
            + fixed_stream([1, 3], 2),
            decoded=8,
            layout=1,
        ),
        "stored entry 1 has codebook index 3, codebook has 2 entries per channel",
    ),
    (
        "sparse-cursor-past-end",
        _channel_payload(
            _GOOD_CHANNEL_BODY
            + b"\x0a"
            + fixed_stream([3, 5], 3)
            + fixed_stream([1, 1], 1),
            decoded=8,
            layout=1,
        ),
        "stored entry 1 lands at element 9, past the 8 elements",
    ),
    (
        "trailing-bytes",
        _channel_payload(
            _GOOD_CHANNEL_BODY + fixed_stream([0] * 8, 1) + b"\0", decoded=8
        ),
        "1 trailing bytes",
    ),
]


@pytest.mark.parametrize(
    "payload,match", [f[1:] for f in CHANNEL_FAULTS], ids=[f[0] for f in CHANNEL_FAULTS]
)
def test_channel_codebook_faults_are_refused_like_numpy(payload, match):
    with pytest.raises(FormatError, match="tensor 'conv/w'") as native:
        decode_payload_native(payload, name="conv/w")
    assert re.search(re.escape(match), str(native.value)), str(native.value)
    with pytest.raises(FormatError) as numpy_error:
        decode_payload(payload, name="conv/w")
    assert native.value.offset == numpy_error.value.offset


# (id, payload, decoded elements): the fault cases' builders make payloads both readers
# accept when unbroken.
HAND_BUILT_CHANNEL_PAYLOADS = [
    (
        "dense",
        _channel_payload(
            _GOOD_CHANNEL_BODY + fixed_stream([0, 1, 0, 1, 1, 1, 0, 0], 1), decoded=8
        ),
        [10, 11, 20, 21, 11, 11, 20, 20],
    ),
    (
        # Stored entries at elements 1, 4 (channel 0) and 6 (channel 1); fill 10.
        "sparse",
        _channel_payload(
            _GOOD_CHANNEL_BODY
            + b"\x0a"
            + fixed_stream([1, 2, 1], 2)
            + fixed_stream([1, 1, 1], 1),
            decoded=8,
            layout=1,
        ),
        [10, 11, 10, 10, 11, 10, 21, 10],
    ),
    (
        # One shared entry: index 0 is 7 in both channels, index 1 is 11 or 21.
        "dense-shared",
        _channel_payload(
            _SHARED_CHANNEL_BODY + fixed_stream([0, 1, 0, 1, 1, 1, 0, 0], 1), decoded=8
        ),
        [7, 11, 7, 21, 11, 11, 7, 7],
    ),
    (
        # Stored entries at elements 1 (own), 4 (shared), 6 (own, channel 1); fill 9.
        "sparse-shared",
        _channel_payload(
            _SHARED_CHANNEL_BODY
            + b"\x09"
            + fixed_stream([1, 2, 1], 2)
            + fixed_stream([1, 0, 1], 1),
            decoded=8,
            layout=1,
        ),
        [9, 11, 9, 9, 7, 9, 21, 9],
    ),
    (
        # Every entry shared (G = K): K entries stored once for both channels.
        "all-shared",
        _channel_payload(
            channel_section(2, 2, 2, b"\x05\x06", shared=2)
            + fixed_stream([0, 1, 0, 1, 1, 1, 0, 0], 1),
            decoded=8,
        ),
        [5, 6, 5, 6, 6, 6, 5, 5],
    ),
    (
        # 16-bit elements, 3 channels of runs of 1, K = 3, G = 2: own entries 30 + c.
        "uint16",
        _channel_payload(
            channel_section(3, 3, 1, struct.pack("<5H", 100, 200, 30, 31, 32), shared=2)
            + fixed_stream([2, 2, 2, 0, 1, 2], 2),
            decoded=12,
            es=2,
        ),
        [30, 31, 32, 100, 200, 32],
    ),
    (
        # Zero elements tile with any C and R, given their entries.
        "empty",
        _channel_payload(
            channel_section(1, 3, 5, b"\1\2\3") + fixed_stream([], 1), decoded=0
        ),
        [],
    ),
]


@pytest.mark.parametrize(
    "payload, want",
    [case[1:] for case in HAND_BUILT_CHANNEL_PAYLOADS],
    ids=[case[0] for case in HAND_BUILT_CHANNEL_PAYLOADS],
)
def test_hand_built_channel_payloads_decode(payload, want):
    es = payload[8]
    word = {1: np.uint8, 2: np.uint16}[es]
    assert decode_payload_native(payload).view(word).tolist() == want
    assert decode_payload(payload).view(word).tolist() == want


def test_shared_entries_are_stored_and_read_once():
    """G = K with one channel per element: C x K entries would be 16 MiB; the payload
    stores K, and both readers decode from those alone."""
    n = 1 << 14
    rng = np.random.default_rng(7)
    row = rng.integers(0, 2**32, 256, dtype=np.uint64).astype(np.uint32)
    idx = rng.integers(0, 256, n)
    payload = encode_payload(
        element_type=0,
        element_size=4,
        count=n,
        layout="dense",
        value_kind="channel_codebook",
        codebook=np.broadcast_to(row, (n, 256)),
        indices=idx,
        channel_run=1,
    )
    info = inspect_payload(payload)
    assert (info.k, info.shared_entries, info.channels) == (256, 256, n)
    assert info.codebook_bytes == 12 + 256 * 4
    got = decode_payload_native(payload)
    np.testing.assert_array_equal(got, decode_payload(payload))
    np.testing.assert_array_equal(got.view(np.uint32), row[idx])


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
    payload = fix_crc(payload)
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
    payload = build(bytes(body), decoded=4)  # version 1, dense raw uint8
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
