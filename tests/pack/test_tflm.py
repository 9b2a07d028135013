"""target="tflm": files TFLite Micro's own runtime decodes, checked in that runtime."""

from __future__ import annotations

import numpy as np
import pytest

import tfedge
from tfedge.pack import _tflm
from tfedge.pack._verify import ModelRunner, make_samples
from tfedge.tflite import buffer_data, opcode_name, read, tensor_array, write

pytest.importorskip(
    "tflite_micro", reason="tflite-micro (a test extra) is not installed"
)

# Lossy TFLM output of the float conv model: 4-7 bit LUT indices (no Huffman, no sparse
# index: TFLM decodes neither) give about 5x on its float32 weights, 3x on the file.
TFLM_FILE_RATIO = 2.5
# When the search aimed at half the tolerance, at the default one it kept the conv
# model's kernels exact (measured: 1.005x); 5% leaves room below the 7-8 bit widths
# these checks were written for. (At 4% the int8 conv model stays exact: its outputs'
# per-sample scales spread from 0.05 to 0.24 on the generated inputs, so the drift
# estimated for 8 fresh inputs, whose largest output is smaller, is 2.4 times the
# measured 0.018 at 8 bits.)
TFLM_TOLERANCE = 0.05


def _tflm_outputs(model: bytes, samples):
    return _tflm.run_in_tflm(model, samples)


def _samples(model: bytes, n=3):
    return make_samples(ModelRunner(model), None, n, seed=7)[0]


def _ops(model: bytes) -> list[str]:
    m = read(model)
    return [opcode_name(m, op.opcodeIndex) for op in m.subgraphs[0].operators]


@pytest.mark.parametrize("name", ["dense_f32", "conv_f32", "conv_int8"])
def test_lossy_tflm_runs_in_tflm_within_tolerance(tflite_model, name):
    original = tflite_model(name)
    packed = tfedge.compress(original, target="tflm", tolerance=TFLM_TOLERANCE)
    out = bytes(packed)
    assert "TFLM_DECODE" in _ops(out)
    samples = _samples(original)
    got = _tflm_outputs(out, samples)
    want = _tflm_outputs(original, samples)
    scale = max(float(np.max(np.abs(w[0]))) for w in want)
    err = max(
        float(np.max(np.abs(g[0] - w[0]))) for g, w in zip(got, want, strict=True)
    )
    # Measured on new samples (the report's drift used others): the search kept the
    # drift's growth to its held-out samples in reserve for them.
    assert err / scale <= packed.report.tolerance
    assert any("verified in TFLM's interpreter" in n for n in packed.report.notes)
    assert packed.report.tflm_scratch_bytes > 0


def test_tflm_ratio(tflite_model):
    original = tflite_model("conv_f32")
    packed = tfedge.compress(original, target="tflm", tolerance=TFLM_TOLERANCE)
    assert len(original) / len(bytes(packed)) >= TFLM_FILE_RATIO
    assert all(t.bits <= 7 for t in packed.report.tensors if t.packed)


def _clustered(model_bytes: bytes, levels: int) -> bytes:
    """The model with every large weight snapped to `levels` values (an exact
    codebook)."""
    m = read(model_bytes)
    for t in m.subgraphs[0].tensors:
        a = tensor_array(m, t)
        if a.size >= 256 and a.dtype in (np.float32, np.int8):
            flat = a.reshape(-1).astype(np.float64)
            cb = np.linspace(flat.min(), flat.max(), levels)
            if a.dtype == np.int8:
                cb = np.round(cb)
            q = cb[np.abs(flat[:, None] - cb[None]).argmin(1)].astype(a.dtype)
            m.buffers[t.buffer].data = q.view(np.uint8)
    return write(m)


@pytest.mark.parametrize("name", ["dense_f32", "conv_int8"])
def test_exact_codebook_is_exact_in_tflm(tflite_model, name):
    clustered = _clustered(tflite_model(name), 16)
    packed = tfedge.compress(clustered, target="tflm", lossless=True)
    rows = [t for t in packed.report.tensors if t.packed]
    assert rows and all(t.bits == 4 for t in rows)
    samples = _samples(clustered)
    for g, w in zip(
        _tflm_outputs(bytes(packed), samples),
        _tflm_outputs(clustered, samples),
        strict=True,
    ):
        np.testing.assert_array_equal(g[0], w[0])


def _ancillary_headers(m) -> list[bytes]:
    """The 16-byte headers of every TFLM_DECODE op's ancillary inputs."""
    out = []
    for op in m.subgraphs[0].operators:
        if opcode_name(m, op.opcodeIndex) == "TFLM_DECODE":
            for ti in list(op.inputs)[1::2]:
                out.append(
                    bytes(buffer_data(m, m.subgraphs[0].tensors[ti].buffer)[:16])
                )
    return out


def test_per_channel_tables_follow_quantization(tflite_model):
    packed = tfedge.compress(
        _clustered(tflite_model("conv_int8"), 8), target="tflm", lossless=True
    )
    m = read(bytes(packed))
    headers = _ancillary_headers(m)
    assert headers
    for h in headers:
        assert h[0] == 0 and h[1] == 1 and h[4] == 1  # LUT, header v1, LUT v1
        assert h[5] >> 4 == 0  # int8 weights are per-channel quantized along axis 0
        assert h[6] == 2 ** (h[5] & 0x7)


def test_float_tables_are_per_tensor(tflite_model):
    packed = tfedge.compress(tflite_model("dense_f32"), target="tflm")
    m = read(bytes(packed))
    headers = _ancillary_headers(m)
    assert headers and all(h[5] >> 4 == _tflm.PER_TENSOR_AXIS for h in headers)


def test_tflm_leaves_what_it_cannot_take(tflite_model):
    packed = tfedge.compress(tflite_model("dense_f32"), target="tflm", lossless=True)
    assert bytes(packed) == tflite_model("dense_f32")
    assert all(
        "128 distinct" in t.reason or "min_bytes" in t.reason or "INT32" in t.reason
        for t in packed.report.tensors
    )


def test_tflm_bits_range(tflite_model):
    with pytest.raises(ValueError, match=r"\[1, 7\]"):
        tfedge.compress(tflite_model("dense_f32"), target="tflm", bits=8)
