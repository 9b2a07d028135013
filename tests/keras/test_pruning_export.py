"""strip then tfedge.compress: the zeros that pruning leaves shrink the packed file."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import tfedge
import tfedge.keras as tk

pytestmark = [
    pytest.mark.skipif(
        keras.backend.backend() != "tensorflow", reason="TFLite export needs TensorFlow"
    ),
    pytest.mark.slow,  # two TFLite conversions: ~15 s
]

SPARSITY = 0.9
# Lossless packing of a 90%-sparse float32 kernel: the sparse index plus the 10% of
# values left cost well under half of what the dense kernel costs (about 0.2 to 0.3x
# here); 0.5 leaves room for headers and the small bias vectors.
MAX_SIZE_RATIO = 0.5
# The expanded model runs the same float32 graph with the same weights: only the
# interpreter's accumulation order may differ.
OUTPUT_ATOL = 1e-4


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(128, activation="relu", name="fc1"),
            keras.layers.Dense(10, name="out"),
        ]
    )


def test_strip_then_compress_shrinks_by_the_sparsity():
    from ai_edge_litert.interpreter import Interpreter

    dense = _model()
    pruned = tk.prune(dense, schedule=tk.ConstantSparsity(SPARSITY, 0))
    for w in pruned.layers:
        w.prune_now(SPARSITY)
    plain = tk.strip(pruned)
    assert all(type(x) is keras.layers.Dense for x in plain.layers)
    packed_dense = tfedge.compress(dense, lossless=True)
    packed_pruned = tfedge.compress(plain, lossless=True)
    ratio = len(packed_pruned) / len(packed_dense)
    assert ratio < MAX_SIZE_RATIO, (len(packed_pruned), len(packed_dense))

    x = np.random.default_rng(1).normal(size=(4, 64)).astype("float32")
    interpreter = Interpreter(model_content=packed_pruned.expand())
    interpreter.resize_tensor_input(
        interpreter.get_input_details()[0]["index"], x.shape
    )
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, plain.predict(x, verbose=0), atol=OUTPUT_ATOL)
