"""Uniform grid options of the converter's lossy search (`_lossy.grid_options`): the
values lie on a power-of-two grid, per channel when the channels' ranges differ; the
9-bit grid is at least as accurate as per-channel int8 quantization; each option's
payload decodes to exactly its values; and `tfedge.compress` takes a grid where every
codebook drifts too far, writing what it measured (expand and the Interpreter)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tfedge
from tests.pack.test_lossy import _unlike_channels_model
from tfedge import codecs
from tfedge.pack import _lossy
from tfedge.tflite import buffer_data, read, schema

F32 = schema().TensorType.FLOAT32
F16 = schema().TensorType.FLOAT16
_RNG = np.random.default_rng(0)
# Channel ranges of the "unlike" tensor: 1000 times apart, as in the unlike-channels
# model of test_lossy.py.
_UNLIKE_SCALES = np.exp(_RNG.uniform(np.log(1e-3), 0.0, 16))
# Weight tensors: (dtype, values, shape). Channels of unlike ranges (a per-channel
# grid), channels alike (one grid), a 40%-pruned one (zeros stay zero), a float16 one,
# a [1, H, W, C] depthwise one (channels on the last axis) and a large one (32,768
# weights: every width past GRID_MIN_BYTES); all at least GRID_MIN_BYTES raw.
TENSORS = {
    "unlike": (
        F32,
        (_RNG.standard_normal((16, 3, 3, 32)) * _UNLIKE_SCALES[:, None, None, None])
        .astype(np.float32)
        .reshape(-1),
        [16, 3, 3, 32],
    ),
    "alike": (F32, _RNG.standard_normal(8192).astype(np.float32), [64, 128]),
    "pruned": (
        F32,
        np.where(_RNG.random(8192) < 0.4, 0.0, _RNG.standard_normal(8192)).astype(
            np.float32
        ),
        [64, 128],
    ),
    "float16": (F16, _RNG.standard_normal(8192).astype(np.float16), [64, 128]),
    "depthwise": (
        F32,
        (
            _RNG.standard_normal((1, 9, 9, 64))
            * _UNLIKE_SCALES[None, None, None, :4].repeat(16)
        )
        .astype(np.float32)
        .reshape(-1),
        [1, 9, 9, 64],
    ),
    "large": (F32, _RNG.standard_normal(32768).astype(np.float32), [128, 256]),
}
# Tensors whose channels differ by at least CHANNEL_MIN_SPREAD (each gets its step).
PER_CHANNEL = {"unlike", "depthwise"}
# Bits of the grids checked (the finest codebook is 8 bits; float16 holds 11
# significant bits, so its 14-bit grid is rounded to the dtype and still decodes to
# what the option holds).
BITS = [8, 9, 12, 14]
# A tolerance for the unlike-channels model below its per-channel codebooks' drift
# (0.005 at 7 bits, their finest within the table bound) and above a 12-bit grid's
# (0.0004): the search must take a grid to share the kernel at all.
GRID_TOLERANCE = 0.001


def _steps(values, shape, bits) -> np.ndarray:
    """Each element's grid step, as `grid_values` defines it."""
    layout = _lossy.channel_layout(shape, values.size)
    w = np.abs(values.astype(np.float64))
    levels = 2 ** (bits - 1) - 1
    channels, run = layout
    channel = (np.arange(w.size) // run) % channels
    ranges = np.zeros(channels)
    np.maximum.at(ranges, channel, w)
    if ranges.max() < _lossy.CHANNEL_MIN_SPREAD * np.median(ranges):
        ranges, channel = np.array([w.max()]), np.zeros(w.size, np.int64)
    return np.exp2(np.floor(np.log2(ranges / levels)))[channel]


def _int8_per_channel(values, shape) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per output channel (one scale each, 255 levels), as
    ai-edge-quantizer's weight-only recipe writes: (dequantized values, steps)."""
    channels, run = _lossy.channel_layout(shape, values.size)
    w = values.astype(np.float64)
    channel = (np.arange(w.size) // run) % channels
    ranges = np.zeros(channels)
    np.maximum.at(ranges, channel, np.abs(w))
    step = (ranges / 127)[channel]
    return np.clip(np.round(w / step), -127, 127) * step, step


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("name", TENSORS)
def test_grid_values_are_on_the_power_of_two_grid(name, bits):
    ttype, values, shape = TENSORS[name]
    layout = _lossy.channel_layout(shape, values.size)
    rounded = _lossy.grid_values(values, bits, layout)
    assert rounded.dtype == values.dtype
    step = _steps(values, shape, bits)
    if name in PER_CHANNEL:
        assert np.unique(step).size > 1, "unlike channels get their own steps"
    r = rounded.astype(np.float64)
    if values.dtype == np.float32:
        # Every value a whole number of steps, the nearest one.
        np.testing.assert_array_equal(r / step, np.round(r / step))
        assert np.all(np.abs(r - values) <= step / 2)
    np.testing.assert_array_equal(r[values == 0], 0.0)


@pytest.mark.parametrize("name", sorted(n for n in TENSORS if n != "float16"))
def test_finest_grid_past_codebooks_beats_int8_per_channel(name):
    ttype, values, shape = TENSORS[name]
    layout = _lossy.channel_layout(shape, values.size)
    # The first grid finer than the 8-bit codebooks (the 8-bit grid is int8's
    # rival: one step for channels within CHANNEL_MIN_SPREAD, so a coarser one
    # than int8 per channel gives some of them).
    rounded = _lossy.grid_values(values, 9, layout)
    int8, int8_step = _int8_per_channel(values, shape)
    w = values.astype(np.float64)
    # Element by element within half an int8 step of its channel, and no more error
    # in all.
    assert np.all(np.abs(rounded - w) <= int8_step / 2)
    assert np.linalg.norm(rounded - w) <= np.linalg.norm(int8 - w)


@pytest.mark.parametrize("name", TENSORS)
def test_payload_decodes_to_the_checked_values(name):
    ttype, values, shape = TENSORS[name]
    options = _lossy.grid_options(ttype, values, shape, max_bytes=values.nbytes)
    assert options, "a grid must be smaller than the raw tensor"
    assert [o.weight_error for o in options] == sorted(o.weight_error for o in options)
    for option in options:
        enc = option.encoded()
        assert len(enc.payload) == option.payload_bytes
        decoded = np.frombuffer(bytes(codecs.decode_payload(enc.payload)), np.uint8)
        np.testing.assert_array_equal(decoded, option.decoded)
        got = option.decoded.view(values.dtype).astype(np.float64)
        w = values.astype(np.float64)
        err = np.linalg.norm(got - w) / np.linalg.norm(w)
        assert math.isclose(option.weight_error, err, rel_tol=1e-9)
        assert option.kind == _lossy.GRID_KIND and not enc.lossless
        assert option.label == f"{option.bits} bits grid"


def test_grid_options_respect_the_byte_bounds():
    ttype, values, shape = TENSORS["large"]
    sizes = [o.payload_bytes for o in _lossy.grid_options(ttype, values, shape, 10**9)]
    assert len(sizes) == len(_lossy.GRID_BITS)
    bound = sorted(sizes)[len(sizes) // 2]
    assert bound >= _lossy.GRID_MIN_BYTES
    kept = _lossy.grid_options(ttype, values, shape, max_bytes=bound)
    assert kept and all(o.payload_bytes < bound for o in kept)
    assert len(kept) < len(sizes)
    # A tensor whose exact payload is under GRID_MIN_BYTES gets no grid at all.
    assert not _lossy.grid_options(ttype, values, shape, _lossy.GRID_MIN_BYTES - 1)


def test_float16_grids_stop_at_its_significand():
    ttype, values, shape = TENSORS["float16"]
    bits = {o.bits for o in _lossy.grid_options(ttype, values, shape, 10**9)}
    assert bits and max(bits) <= np.finfo(np.float16).nmant + 1


def test_no_grid_for_integer_tensors():
    int8 = schema().TensorType.INT8
    values = _RNG.integers(-127, 128, 2048).astype(np.int8)
    assert _lossy.grid_options(int8, values, [32, 64], max_bytes=10**9) == []


def _kernel(model_bytes: bytes, shape) -> np.ndarray:
    model = read(model_bytes)
    for t in model.subgraphs[0].tensors:
        if [int(d) for d in t.shape] == shape and t.buffer > 0:
            return buffer_data(model, t.buffer).view(np.float32)
    raise AssertionError(f"no constant tensor of shape {shape}")


def _run(interpreter, data: bytes) -> list[np.ndarray]:
    it = interpreter(model_content=data)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    x = np.random.default_rng(1).standard_normal(d["shape"]).astype(np.float32)
    it.set_tensor(d["index"], x)
    it.invoke()
    return [it.get_tensor(o["index"]) for o in it.get_output_details()]


def test_compress_takes_a_grid_where_codebooks_drift_too_far():
    from ai_edge_litert.interpreter import Interpreter as StockInterpreter

    original = _unlike_channels_model()
    shape = [32, 3, 3, 64]
    packed = tfedge.compress(original, tolerance=GRID_TOLERANCE, progress=False)
    r = packed.report
    (row,) = [t for t in r.tensors if t.shape == shape]
    assert row.quantizer.endswith("bits grid"), row
    assert row.bits in _lossy.GRID_BITS and 0 < row.weight_error
    # What the search measured is what was written...
    assert r.drift == r.search_drift and r.drift <= GRID_TOLERANCE
    # ...and the expanded kernel is on its grid: per channel, each a whole number of
    # its channel's power-of-two steps, smaller than the original's bytes.
    expanded = tfedge.expand(packed)
    kernel = _kernel(expanded, shape)
    want = _lossy.grid_values(
        _kernel(original, shape), row.bits, _lossy.channel_layout(shape, kernel.size)
    )
    np.testing.assert_array_equal(kernel, want)
    assert row.packed_bytes < kernel.nbytes

    # The Interpreter on the packed file gives the expanded model's outputs exactly.
    def stock_kernels(**kw):
        return tfedge.Interpreter(sparse_kernels=False, **kw)

    got, ref = _run(stock_kernels, bytes(packed)), _run(StockInterpreter, expanded)
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_array_equal(a, b)
