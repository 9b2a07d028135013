"""Real data (slow, run with -m slow): Qiu's claim on a trained LeNet-5, small scale."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import tfedge.fixed_point as fp
from tfedge.datasets import fashion_mnist, has_fashion_mnist

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not has_fashion_mnist(), reason="apt-get install -y dataset-fashion-mnist"
    ),
]

# Qiu et al. report 8-bit dynamic fixed point within a fraction of a point of float;
# 1 point allows for the 2,000-image test subset used here (a 0.5 point target is
# checked on the full test set by scripts/fixed_point.py).
DYNAMIC_8BIT_POINTS = 1.0
# Static fixed point with the 4-bit fully-connected kernels loses more: measured 1.1
# points behind dynamic on this subset (1.2 on the full test set after 3 epochs); half
# a point leaves room for run-to-run noise of a 2,000-image test.
STATIC_GAP_POINTS = 0.5


def _accuracy(model, x, y) -> float:
    logits = keras.ops.convert_to_numpy(model.predict(x, batch_size=500, verbose=0))
    return 100.0 * float(np.mean(logits.argmax(1) == y))


def _tflite_accuracy(flat: bytes, x, y) -> float:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=flat)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    return 100.0 * float(np.mean(interp.get_tensor(out["index"]).argmax(1) == y))


def test_lenet5_dynamic_fixed_point_on_fashion_mnist():
    (x_tr, y_tr), (x_te, y_te) = fashion_mnist()
    x_tr, x_te = x_tr[:20000, ..., None], x_te[:2000, ..., None]
    y_tr, y_te = y_tr[:20000], y_te[:2000]
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(20, 5, name="conv1"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(50, 5, name="conv2"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(500, activation="relu", name="fc1"),
            keras.layers.Dense(10, name="fc2"),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_tr, y_tr, batch_size=128, epochs=1, verbose=0)
    float_acc = _accuracy(model, x_te, y_te)
    calib = x_tr[:300]
    fc4 = {"fc1": 4, "fc2": 4}
    dynamic = fp.quantize(model, calib)
    dynamic_acc = _tflite_accuracy(bytes(dynamic), x_te, y_te)
    assert abs(dynamic_acc - _accuracy(dynamic.model, x_te, y_te)) < 0.3
    assert dynamic_acc > float_acc - DYNAMIC_8BIT_POINTS
    static4 = fp.quantize(model, calib, bits_per_layer=fc4, mode="static")
    dynamic4 = fp.quantize(model, calib, bits_per_layer=fc4)
    gap = _tflite_accuracy(bytes(dynamic4), x_te, y_te) - _tflite_accuracy(
        bytes(static4), x_te, y_te
    )
    assert gap > STATIC_GAP_POINTS, (float_acc, dynamic_acc, gap)
