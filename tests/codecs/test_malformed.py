"""Every malformed payload raises FormatError (never IndexError, ValueError or
MemoryError), names the tensor, and is caught before any large allocation."""

import struct
import tracemalloc

import numpy as np
import pytest

from tests._payloads import build, channel_section, fix_crc, fixed_stream
from tfedge.codecs import decode_payload, encode_payload, read_header
from tfedge.errors import FormatError


def _real_payload():
    rng = np.random.default_rng(0)
    indices = rng.choice(4, 300, p=[0.85, 0.1, 0.04, 0.01])
    return encode_payload(
        element_type=0,
        element_size=4,
        count=300,
        layout="sparse",
        value_kind="codebook",
        codebook=np.array([0.0, 0.5, -0.5, 2.0], np.float32),
        indices=indices,
        fill=0,
        gap_bits=3,
        value_coding="huffman",
        gap_coding="huffman",
    )


def _raises(payload, match=None, **kwargs):
    with pytest.raises(FormatError, match=match) as info:
        decode_payload(payload, name="dense_1/kernel", **kwargs)
    assert info.value.tensor == "dense_1/kernel"
    assert "dense_1/kernel" in str(info.value)
    return info.value


def test_real_payload_decodes():
    payload = _real_payload()
    assert decode_payload(payload, expected_size=1200).size == 1200


def test_every_truncation_raises():
    payload = _real_payload()
    for length in range(len(payload)):
        _raises(payload[:length])


def test_every_flipped_byte_raises():
    payload = _real_payload()
    for at in range(len(payload)):
        for mask in (0x01, 0x80, 0xFF):
            corrupt = bytearray(payload)
            corrupt[at] ^= mask
            _raises(bytes(corrupt))


def test_mutations_with_a_valid_crc_never_escape_as_other_errors():
    payload = _real_payload()
    rng = np.random.default_rng(7)
    for _ in range(400):
        corrupt = bytearray(payload)
        for at in rng.integers(28, len(payload), rng.integers(1, 4)):
            corrupt[at] = rng.integers(0, 256)
        try:
            out = decode_payload(fix_crc(corrupt), name="w", expected_size=1200)
        except FormatError:
            continue
        assert out.size == 1200  # a mutation that stays well-formed decodes fully


DENSE_RAW_BODY = fixed_stream([1, 2, 3], 8)


def _dense(**fields):
    """The valid dense raw payload of bytes 1, 2, 3, with some header fields changed."""
    return build(DENSE_RAW_BODY, **{"decoded": 3, **fields})


HEADER_CASES = {
    "empty": (b"", "truncated payload"),
    "bad_magic": (_dense(magic=b"TFEQ"), "bad magic"),
    "newer_version": (_dense(version=4), "newer than this reader"),
    "version_zero": (_dense(version=0), "unknown payload format version"),
    "unknown_layout": (_dense(layout=2), "unknown layout"),
    "unknown_kind": (_dense(kind=4), "unknown value kind"),
    "channel_kind_in_version_1": (_dense(kind=2), "needs payload format version 2"),
    "element_size_3": (_dense(es=3), "element size 3"),
    "reserved": (_dense(reserved=b"\0\1\0"), "reserved"),
    "not_multiple": (_dense(es=2, decoded=3), "not a multiple"),
    "bomb": (_dense(decoded=2**40), "exceeds the bound"),
    "body_size_short": (_dense(body_size=12), "body size 12"),
    "body_size_long": (_dense(body_size=14), "body size 14"),
    "bad_crc": (_dense(crc=0x12345678), "CRC mismatch"),
}


@pytest.mark.parametrize(
    "payload, match", HEADER_CASES.values(), ids=HEADER_CASES.keys()
)
def test_bad_headers(payload, match):
    _raises(payload, match)
    with pytest.raises(FormatError, match=match):
        read_header(payload)


def test_header_checks_come_in_format_order():
    # Both the version and the CRC are wrong: the version is reported.
    _raises(_dense(version=9, crc=1), "newer")
    # Both the bound and the body size are wrong: the bound is reported.
    _raises(_dense(decoded=2**35, body_size=1), "exceeds the bound")


def test_expected_size_is_the_bound():
    payload = _dense()
    _raises(payload, "exceeds the bound of 2", expected_size=2)
    _raises(payload, "disagrees with the tensor's 4 bytes", expected_size=4)
    _raises(payload, "exceeds the bound of 2", max_decoded=2)
    assert decode_payload(payload, expected_size=3).tolist() == [1, 2, 3]


BOMBS = {
    "fixed_stream": build(
        b"\x00\x08" + struct.pack("<II", 2**31 - 1, 2**31 - 1), decoded=2**31 - 1
    ),
    "huffman_stream": build(
        b"\x01\x08"
        + struct.pack("<III", 2**31 - 1, 1, 1)
        + b"\x10"
        + b"\0" * 127
        + b"\0",
        decoded=2**31 - 1,
    ),
    "sparse_gaps": build(
        b"\0" + b"\x00\x08" + struct.pack("<II", 2**31 - 1, 2**31 - 1),
        layout=1,
        decoded=2**31 - 1,
    ),
    "huffman_block_size": build(
        b"\x01\x01" + struct.pack("<III", 2**30, 2**27, 2**32 - 1) + b"\x11",
        decoded=2**31 - 1,
    ),
}


@pytest.mark.parametrize("payload", BOMBS.values(), ids=BOMBS.keys())
def test_decoded_size_bombs_fail_without_allocating(payload):
    tracemalloc.start()
    try:
        _raises(payload)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def _book(k, entries=None):
    entries = bytes(range(k)) if entries is None else entries
    return struct.pack("<H", k) + entries


BODY_CASES = {
    "codebook_size_zero": (
        dict(kind=1, decoded=1),
        _book(0) + fixed_stream([0], 1),
        "codebook size 0",
    ),
    "codebook_size_257": (
        dict(kind=1, decoded=1),
        _book(257, bytes(257)) + fixed_stream([0], 1),
        "codebook size 257",
    ),
    "codebook_truncated": (
        dict(kind=1, decoded=1),
        _book(4, b"\0\1"),
        "truncated codebook",
    ),
    "codebook_size_truncated": (
        dict(kind=1, decoded=1),
        b"\x02",
        "truncated codebook size",
    ),
    "index_not_below_k": (
        dict(kind=1, decoded=4),
        _book(3) + fixed_stream([0, 1, 3, 2], 2),
        "codebook index 3",
    ),
    "fill_truncated": (
        dict(layout=1, es=4, etype=0, decoded=8),
        b"\0\0",
        "truncated fill",
    ),
    "cursor_past_end": (
        dict(layout=1, decoded=4),
        b"\0" + fixed_stream([1, 2], 2) + fixed_stream([7, 7], 8),
        "past the 4",
    ),
    "more_gaps_than_elements": (
        dict(layout=1, decoded=2),
        b"\0" + fixed_stream([0, 0, 0], 1) + fixed_stream([7] * 3, 8),
        "more than the 2 allowed",
    ),
    "values_fewer_than_entries": (
        dict(layout=1, decoded=4),
        b"\0" + fixed_stream([0, 1], 1) + fixed_stream([7], 8),
        "holds 1 symbols, expected 2",
    ),
    "values_more_than_elements": (
        dict(decoded=2),
        fixed_stream([1, 2, 3], 8),
        "more than the 2",
    ),
    "raw_values_not_8_bit": (
        dict(decoded=3),
        fixed_stream([1, 2, 3], 4),
        "8-bit symbols",
    ),
    "trailing_bytes": (
        dict(decoded=3),
        fixed_stream([1, 2, 3], 8) + b"\0",
        "1 trailing bytes",
    ),
    "missing_value_stream": (
        dict(kind=1, decoded=1),
        _book(1),
        "truncated stream header",
    ),
    "non_prefix_lengths": (
        dict(decoded=2),
        b"\x01\x08"
        + struct.pack("<III", 2, 1, 16)
        + b"\x11\x10"
        + bytes(126)
        + b"\x00",
        "over-subscribed",
    ),
    "incomplete_lengths": (
        dict(decoded=2),
        b"\x01\x08" + struct.pack("<III", 2, 1, 16) + b"\x12" + bytes(127) + b"\x00",
        "incomplete",
    ),
    "one_symbol_bad_code": (
        dict(decoded=2),
        b"\x01\x08" + struct.pack("<III", 2, 1, 16) + b"\x10" + bytes(127) + b"\x40",
        "no code",
    ),
}


@pytest.mark.parametrize(
    "fields, body, match", BODY_CASES.values(), ids=BODY_CASES.keys()
)
def test_bad_bodies(fields, body, match):
    _raises(build(body, **fields), match)


def test_well_formed_hand_built_bodies_decode():
    # The builders above make valid payloads when nothing is broken.
    assert decode_payload(
        build(_book(3) + fixed_stream([0, 1, 2, 2], 2), kind=1, decoded=4)
    ).tolist() == [0, 1, 2, 2]
    sparse = build(
        b"\x09" + fixed_stream([1, 1], 2) + fixed_stream([7, 8], 8), layout=1, decoded=4
    )
    assert decode_payload(sparse).tolist() == [9, 7, 9, 8]
    one = b"\x01\x08" + struct.pack("<III", 2, 1, 16) + b"\x10" + bytes(127) + b"\x00"
    assert decode_payload(build(one, decoded=2)).tolist() == [
        0,
        0,
    ]  # symbol 0, code "0"


def _channel(k, channels, run, entries, values, *, decoded, es=1, shared=0):
    """A version-2 dense per-channel-codebook payload of uint8 elements."""
    body = channel_section(k, channels, run, entries, shared=shared)
    return build(body + values, version=2, kind=2, es=es, decoded=decoded)


CHANNEL_CASES = {
    "zero_channels": (
        _channel(1, 0, 1, b"", fixed_stream([0] * 4, 1), decoded=4),
        ">= 1",
    ),
    "zero_run": (
        _channel(1, 2, 0, b"\1\2", fixed_stream([0] * 4, 1), decoded=4),
        ">= 1",
    ),
    "not_tiling": (
        _channel(1, 3, 1, b"\1\2\3", fixed_stream([0] * 4, 1), decoded=4),
        "tile",
    ),
    "run_too_long": (
        _channel(1, 2, 3, b"\1\2", fixed_stream([0] * 4, 1), decoded=4),
        "tile",
    ),
    "huge_channels": (
        _channel(1, 0xFFFFFFFF, 0xFFFFFFFF, b"", b"", decoded=4),
        "tile",
    ),
    "shared_above_k": (
        _channel(2, 2, 2, b"\1\2\3", fixed_stream([0] * 4, 1), decoded=4, shared=3),
        "3 shared entries, more than the K=2",
    ),
    "truncated_header": (
        build(struct.pack("<HHI", 1, 0, 2), version=2, kind=2, decoded=4),
        "truncated shared entry count, channel count",
    ),
    "truncated_entries": (
        _channel(2, 2, 2, b"\1\2\3", b"", decoded=4),
        "truncated codebook: 4 bytes needed, 3 present",
    ),
    "truncated_shared_entries": (
        _channel(2, 2, 2, b"\1\2", b"", decoded=4, shared=1),
        "truncated codebook: 3 bytes needed, 2 present",
    ),
    "index_beyond_k": (
        _channel(2, 2, 2, b"\1\2\3\4", fixed_stream([0, 1, 2, 0], 2), decoded=4),
        "codebook index 2, but the codebook has 2 entries per channel",
    ),
}


@pytest.mark.parametrize(
    "payload, match", CHANNEL_CASES.values(), ids=CHANNEL_CASES.keys()
)
def test_bad_per_channel_codebooks(payload, match):
    _raises(payload, match)


def test_a_hand_built_per_channel_payload_decodes():
    # 2 channels of runs of 2 over 8 elements: channels 0 0 1 1 0 0 1 1.
    payload = _channel(
        2,
        2,
        2,
        b"\x0a\x0b\x14\x15",
        fixed_stream([0, 1, 0, 1, 1, 1, 0, 0], 1),
        decoded=8,
    )
    assert decode_payload(payload).tolist() == [10, 11, 20, 21, 11, 11, 20, 20]
    # One shared entry (index 0 = 7 in both channels), one own entry per channel.
    payload = _channel(
        2,
        2,
        2,
        b"\x07\x0b\x15",
        fixed_stream([0, 1, 0, 1, 1, 1, 0, 0], 1),
        decoded=8,
        shared=1,
    )
    assert decode_payload(payload).tolist() == [7, 11, 7, 21, 11, 11, 7, 7]
