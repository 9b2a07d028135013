"""Codebooks past 256 entries (format version 3): 9- to 16-bit rANS-coded indices."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from tests._payloads import reseal
from tfedge.codecs import (
    decode_payload,
    encode_payload,
    inspect_payload,
    payload_size,
)
from tfedge.errors import FormatError

# (id, K, dtype, TFLite type, layout)
CASES = [
    ("f32-300-dense", 300, np.float32, 0, "dense"),
    ("f32-1000-sparse", 1000, np.float32, 0, "sparse"),
    ("f16-4000-dense", 4000, np.float16, 1, "dense"),
    ("i64-65535-sparse", 65535, np.int64, 4, "sparse"),
]


def _book_and_indices(k, dtype, layout, n=40_000, seed=0):
    rng = np.random.default_rng(seed)
    book = np.arange(k).astype(dtype) if np.dtype(dtype).kind == "i" else None
    if book is None:
        book = np.unique(rng.standard_normal(2 * k).astype(dtype))[:k]
    idx = np.minimum(rng.geometric(3.0 / k, n) - 1, k - 1)
    idx[: min(k, n)] = np.arange(min(k, n))  # every entry used
    if layout == "sparse":
        idx[rng.random(n) < 0.6] = 0
    return book, idx


def _kw(k, dtype, etype, layout, **extra):
    book, idx = _book_and_indices(k, dtype, layout)
    return dict(
        element_type=etype,
        element_size=np.dtype(dtype).itemsize,
        count=idx.size,
        layout=layout,
        value_kind="codebook",
        codebook=book,
        indices=idx,
        **extra,
    )


@pytest.mark.parametrize(
    "k, dtype, etype, layout", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_round_trip(k, dtype, etype, layout):
    kw = _kw(k, dtype, etype, layout)
    payload = encode_payload(**kw)
    assert payload[4] == 3
    expected = kw["codebook"][kw["indices"]]
    np.testing.assert_array_equal(decode_payload(payload), expected.view(np.uint8))
    assert payload_size(**kw) == len(payload)
    info = inspect_payload(payload)
    assert info.k == k and info.values.coding == "rans"
    assert info.values.bits == (k - 1).bit_length()


def test_version_2_payloads_keep_256_entries():
    payload = bytearray(encode_payload(**_kw(300, np.float32, 0, "dense")))
    payload[4] = 2
    with pytest.raises(FormatError, match=r"codebook size 300 is not in \[1, 256\]"):
        decode_payload(reseal(payload))


def test_one_byte_elements_keep_256_entries():
    payload = bytearray(encode_payload(**_kw(300, np.float32, 0, "dense")))
    payload[8] = 1  # element size 1: 300 entries are more than a byte has values
    payload[12:20] = struct.pack("<Q", 40_000)
    with pytest.raises(FormatError, match=r"codebook size 300 is not in \[1, 256\]"):
        decode_payload(reseal(payload))


def test_index_past_k_is_malformed():
    kw = _kw(300, np.float32, 0, "dense")
    kw["codebook"] = kw["codebook"][:299]
    kw["indices"] = np.minimum(kw["indices"], 298)
    kw["indices"][5] = 298
    payload = bytearray(encode_payload(**kw))
    struct.pack_into("<H", payload, 28, 298)  # K = 298 < the 299 stored
    payload = payload[:30] + payload[30 + 4 :]  # drop one entry
    with pytest.raises(
        FormatError, match="codebook index 298, but the codebook has 298"
    ):
        decode_payload(reseal(payload))


@pytest.mark.parametrize("coding", ["fixed", "huffman"])
def test_wide_indices_need_rans(coding):
    with pytest.raises(ValueError, match="needs value_coding 'rans' or 'auto'"):
        encode_payload(**_kw(300, np.float32, 0, "dense", value_coding=coding))
