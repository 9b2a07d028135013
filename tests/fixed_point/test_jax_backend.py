"""`fixed_point.quantize` and its export on the JAX backend (a fresh process).

The JAX export turns a convolution with one input channel into DEPTHWISE_CONV_2D
(kernel (1, kh, kw, filters)), and with an unknown batch size adds biases outside the
weight ops; the exporter converts with batch 1 on JAX and writes each kernel in the
layout of the op the converter chose.
"""

from __future__ import annotations

from tests._backends import run_on_backend

_CHECK = """
import keras
import numpy as np
from tfedge import fixed_point

assert keras.backend.backend() == "jax"
keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((12, 12, 1)),
    keras.layers.Conv2D(8, 3, activation="relu", name="conv1"),
    keras.layers.MaxPooling2D(2),
    keras.layers.Conv2D(6, 3, name="conv2"),
    keras.layers.Flatten(),
    keras.layers.Dense(5, name="fc"),
])
rng = np.random.default_rng(1)
for layer in model.layers:
    if layer.weights:  # non-zero biases: they must land in the weight ops
        k, b = layer.get_weights()
        layer.set_weights([k, rng.normal(0, 0.1, b.shape).astype("float32")])
x = np.random.default_rng(0).uniform(0, 1, (32, 12, 12, 1)).astype("float32")
result = fixed_point.quantize(model, x)
data = bytes(result)
assert result.export_drift_lsb <= fixed_point.MAX_DRIFT_LSB, result.export_drift_lsb
print("ok", len(data))
"""


def test_quantize_and_export_on_jax():
    run_on_backend("jax", _CHECK)
