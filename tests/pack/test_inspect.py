"""`inspect`: inputs, outputs, quantization, packed tensors' coding and bits."""

from __future__ import annotations

import tfedge
from tfedge.pack._inspect import inspect_model


def test_inputs_outputs_and_quantization(tflite_model):
    info = inspect_model(tflite_model("conv_int8_io"))
    assert [t.dtype for t in info.inputs] == ["INT8"]
    assert info.inputs[0].shape[1:] == [12, 12, 3]
    assert len(info.inputs[0].scale) == 1 and len(info.inputs[0].zero_point) == 1
    assert info.outputs[0].dtype == "INT8"
    text = info.text()
    assert "scale " in text and "zero point" in text
    float_info = inspect_model(tflite_model("dense_f32"))
    assert float_info.inputs[0].quantization() == "-"
    assert float_info.inputs[0].shape == [-1, 32]
    assert "?x32" in float_info.text()


def test_packed_tensors_coding_and_bits(tflite_model):
    packed = tfedge.compress(tflite_model("dense_f32"), bits=4, tolerance=0.5)
    info = inspect_model(bytes(packed))
    rows = {t.name: t for t in packed.report.tensors if t.packed}
    assert {p.tensor for p in info.payloads} == set(rows)
    for p in info.payloads:
        row = rows[p.tensor]
        assert p.encoding == row.encoding
        assert p.bits == row.bits == 4
        assert abs(p.bits_per_weight - row.bits_per_weight) < 1e-9
    assert "b/w" in info.text() and "/cb/" in info.text()
