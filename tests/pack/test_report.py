"""The compress report as people read it: Keras names, 100 columns, a summary."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tfedge
from tfedge._table import MAX_WIDTH
from tfedge.pack import Report, TensorReport
from tfedge.pack._report import LEGEND


def _keras_mlp():
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((32,)),
            keras.layers.Dense(
                64, activation="relu", name="fc1", bias_initializer="random_normal"
            ),
            keras.layers.Dense(
                64, activation="relu", name="fc2", bias_initializer="random_normal"
            ),
            keras.layers.Dense(10, name="out", bias_initializer="random_normal"),
        ]
    )


@pytest.fixture(scope="module")
def keras_packed():
    return tfedge.compress(_keras_mlp(), lossless=True)


def test_keras_source_names_rows_by_layer_and_weight(keras_packed):
    labels = {t.label for t in keras_packed.report.tensors}
    want = {
        f"{layer}.{w}" for layer in ("fc1", "fc2", "out") for w in ("kernel", "bias")
    }
    assert want <= labels
    rows = json.loads(keras_packed.report.to_json())["tensors"]
    assert {r["keras_name"] for r in rows} >= want
    assert all(r["name"] for r in rows)  # the TFLite names stay in the JSON


def test_tflite_source_keeps_tflite_names(tflite_model):
    report = tfedge.compress(tflite_model("dense_f32"), lossless=True).report
    assert all(t.keras_name == "" for t in report.tensors)
    assert all(t.label == t.name.split(";")[0] for t in report.tensors)


def test_equal_weights_are_told_apart_by_layer_name():
    """Two biases with the same values: the tensor's name decides, else no name."""
    model = _keras_mlp()
    same = np.linspace(-1, 1, 64).astype(np.float32)
    for name in ("fc1", "fc2"):
        layer = model.get_layer(name)
        layer.set_weights([layer.get_weights()[0], same])
    report = tfedge.compress(model, lossless=True).report
    for t in report.tensors:
        if t.keras_name.endswith(".bias") and t.keras_name != "out.bias":
            layer = t.keras_name.split(".")[0]
            assert layer in t.name, (t.keras_name, t.name)
    assert {"fc1.kernel", "fc2.kernel", "out.bias"} <= {t.label for t in report.tensors}


def test_table_fits_100_columns_and_explains_columns_once(keras_packed):
    for text in (keras_packed.report.table(), keras_packed.report.summary()):
        lines = text.splitlines()
        assert max(len(line) for line in lines) <= MAX_WIDTH
        assert text.count("columns:") == 1
        assert " ".join(text.split()).endswith(LEGEND)
        assert lines[0].split()[:3] == ["tensor", "shape", "type"]


def _row(name: str, nbytes: int, *, reason: str = "", packed: int = 0) -> TensorReport:
    return TensorReport(
        subgraph=0,
        tensor=0,
        name=name,
        shape=[nbytes // 4],
        dtype="FLOAT32",
        original_bytes=nbytes,
        encoding="dense/codebook/huffman" if packed else "raw",
        bits=5 if packed else None,
        packed_bytes=packed,
        reason=reason,
    )


def _report() -> Report:
    rows = [_row(f"big{i}", 4000 + i, packed=1000 + i) for i in range(6)]
    rows += [
        _row(f"small{i}", 40, reason=f"no gain: best payload {30 + i} bytes")
        for i in range(5)
    ]
    rows.append(_row("mlp/fc1/MatMul;mlp/fc1/Relu", 8000, packed=900))
    rows[-1].keras_name = "fc1.kernel"
    return Report(
        original_bytes=40000,
        packed_bytes=12000,
        lossless=False,
        tolerance=0.02,
        drift=0.011,
        tensors=rows,
        backed_off=[
            "mlp/fc1/MatMul;mlp/fc1/Relu: 4 bits -> 5 bits (its own drift 0.03)"
        ],
    )


def test_summary_totals_largest_and_backed_off():
    report = _report()
    summary = report.summary()
    body = summary.split("\n-")[1]  # the rows between the rules
    assert "big5" in body and "big0" not in body  # the 5 largest after packing
    assert "(the 5 largest of 12 weight tensors" in summary
    assert "weights: " in summary and "measured output drift: 0.011" in summary
    assert "backed off: fc1.kernel: 4 bits -> 5 bits" in summary
    kept = [ln for ln in summary.splitlines() if ln.startswith("kept as is")]
    assert kept == ["kept as is (no gain): small0, small1, small2 and 2 more"]


def test_table_lists_every_tensor():
    report = _report()
    table = report.table()
    for t in report.tensors:
        assert t.label in table
    assert sum(ln.startswith("kept: ") for ln in table.splitlines()) == 5


def test_drift_not_measured_reads_so():
    report = _report()
    report.drift = None
    assert "measured output drift: not measured" in report.summary()
    packed = tfedge.pack.Packed(b"\x00" * 12000, report)
    assert (
        repr(packed) == "<tfedge.Packed 12000 bytes, 3.33x smaller, drift not measured>"
    )
