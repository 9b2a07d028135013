"""The native rANS encoder against the numpy one, tfedge.codecs' reference: the same
bytes and block offsets on every layout the format allows (1..32 lanes, blocks shorter
and longer than a lane round, 1- to 16-bit symbols, scale bits up to 16), and a clear
refusal of symbols the table cannot code. tfedge.pack installs it, so every packed
file's rANS streams come from it when the library is built."""

from __future__ import annotations

import numpy as np
import pytest

import tfedge.pack  # noqa: F401  (installs the native encoder)
from tests._native import NATIVE
from tfedge.codecs import _rans, decode_stream, encode_stream
from tfedge.runtime._native import rans_encode_native

pytestmark = NATIVE

# (bits, symbols, lanes, block size or None for the default)
LAYOUTS = [
    (8, 0, None, None),
    (1, 1, 1, None),
    (1, 5000, 3, None),
    (2, 17, 32, None),
    (4, 1000, 8, 7),
    (8, 100, 16, 1),
    (8, 70_000, 16, None),
    (8, 200_000, 8, 65_536),
    (8, 300_000, None, None),
    (12, 50_000, 5, 1000),
    (16, 40_000, 32, None),
    (16, 3, 2, None),
]


def _skewed(rng, bits: int, n: int) -> np.ndarray:
    alphabet = min(1 << bits, 300)
    p = rng.dirichlet(np.full(alphabet, 0.3))
    return rng.choice(alphabet, size=n, p=p) * ((1 << bits) // alphabet)


@pytest.mark.parametrize(("bits", "n", "lanes", "block"), LAYOUTS)
def test_native_encoder_writes_the_numpy_bytes(bits, n, lanes, block):
    sym = _skewed(np.random.default_rng(bits * 7 + n), bits, n)
    p = _rans.plan(
        np.bincount(sym, minlength=1 << bits), bits, lanes=lanes, block_size=block
    )
    offsets, data = rans_encode_native(sym, p)
    want_offsets, want_data = _rans.rans_encode_numpy(sym, p)
    assert data == want_data
    np.testing.assert_array_equal(offsets, want_offsets)


@pytest.mark.parametrize("scale_bits", [13, 16])
def test_native_encoder_at_scales_past_the_default(scale_bits):
    rng = np.random.default_rng(scale_bits)
    sym = _skewed(rng, 8, 20_000)
    counts = np.bincount(sym, minlength=256)
    freqs = _rans.quantize_frequencies(counts, scale_bits)
    p = _rans.RansPlan(scale_bits, freqs, _rans.write_table(freqs), 8, 4096, 0.0)
    assert rans_encode_native(sym, p)[1] == _rans.rans_encode_numpy(sym, p)[1]


def test_packed_streams_use_it_and_decode():
    """After `import tfedge.pack` every rANS stream is the native encoder's, and the
    numpy reader decodes it."""
    sym = _skewed(np.random.default_rng(3), 8, 100_000)
    stream = encode_stream(sym, 8, "rans")
    previous = _rans.set_rans_encoder(None)
    try:
        assert encode_stream(sym, 8, "rans") == stream
    finally:
        _rans.set_rans_encoder(previous)
    assert previous is rans_encode_native
    decoded, _ = decode_stream(stream)
    np.testing.assert_array_equal(decoded, sym)


@pytest.mark.parametrize("bad", ["zero frequency", "past the table", "negative"])
def test_native_encoder_refuses_symbols_the_table_cannot_code(bad):
    counts = np.zeros(256, np.int64)
    counts[[1, 2, 3]] = [10, 20, 30]
    p = _rans.plan(counts, 8)
    sym = np.array([1, 2, 3, 1], np.int64)
    sym[2] = {"zero frequency": 0, "past the table": 4000, "negative": -1}[bad]
    with pytest.raises(ValueError, match="non-zero frequency"):
        rans_encode_native(sym, p)
