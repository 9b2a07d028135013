"""Deep Compression by hand, through the public API only, from Keras to every reader.

A Keras MLP is pruned in `model.fit` (no callback), stripped, weight-shared and
fine-tuned in `model.fit`, stripped again and packed losslessly by `tfedge.compress`.
The packed file then runs, or is expanded, by every reader, which must agree:
`tfedge.Interpreter` on the packed file (the decoder delegate, with and without the
sparse kernels), the stock interpreter on `tfedge.expand` (numpy and native decoders),
and the Java unpacker. The other tests check each stage alone, on models built already
pruned or shared; this one checks that what training leaves behind survives to the
device.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import tfedge
import tfedge.keras as tk
from tests.android import _java
from tfedge.codecs import decode_payload
from tfedge.tflite import buffer_data, read

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TFLite export needs TensorFlow"
)

SEED = 0
FEATURES, CLASSES, EXAMPLES, BATCH = 64, 8, 2048, 64
SPARSITY = 0.9
# Shared values per kernel: 2^BITS, besides the pruned zeros.
BITS = 4
# Lossless packing of 90%-sparse kernels with 4-bit indices: the sparse index and the
# 10% of indices left cost about 1 bit per weight against float32's 32, so the file
# is under a tenth of the plain one (0.048 measured: 9,776 of 204,200 bytes); 0.1
# leaves room for the graph, the biases and the codebooks.
MAX_SIZE_RATIO = 0.1
# The converted graph against Keras: the same float32 weights accumulated by another
# kernel, logits of order 10 apart by a few float32 ulps (1.4e-6 measured).
KERAS_ATOL = 1e-4
# The sparse kernels skip the zeros and so add the same products in another order
# (1.9e-6 measured).
SPARSE_KERNEL_ATOL = 1e-5


def _data():
    rng = np.random.default_rng(SEED)
    centers = rng.normal(size=(CLASSES, FEATURES))
    y = rng.integers(0, CLASSES, EXAMPLES)
    x = (centers[y] + rng.normal(scale=0.8, size=(EXAMPLES, FEATURES))).astype(
        np.float32
    )
    return x, y


def _compile(model):
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


@pytest.fixture(scope="module")
def trained():
    """(x, y, the pruned then shared and stripped Keras model, its pruned kernels)."""
    x, y = _data()
    keras.utils.set_random_seed(SEED)
    model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(256, activation="relu", name="fc1"),
            keras.layers.Dense(128, activation="relu", name="fc2"),
            keras.layers.Dense(CLASSES, name="fc3"),
        ]
    )
    steps = EXAMPLES // BATCH
    schedule = tk.PolynomialDecay(
        0.0, SPARSITY, begin_step=0, end_step=2 * steps, frequency=steps // 2
    )
    pruned = _compile(tk.prune(model, schedule=schedule))
    pruned.fit(x, y, batch_size=BATCH, epochs=3, verbose=0)
    pruned = tk.strip(pruned)
    zeros = {
        layer.name: layer.get_weights()[0] == 0
        for layer in pruned.layers
        if layer.get_weights()
    }
    shared = _compile(tk.share_weights(pruned, bits=BITS))
    shared.fit(x, y, batch_size=BATCH, epochs=2, verbose=0)
    return x, y, tk.strip(shared), zeros


@pytest.fixture(scope="module")
def packed(trained):
    _x, _y, model, _zeros = trained
    return tfedge.compress(model, lossless=True, progress=False)


def _run(interpreter, x) -> np.ndarray:
    runner = interpreter.get_signature_runner()
    (name,) = runner.get_input_details()
    return next(iter(runner(**{name: x}).values()))


def _stock(model: bytes, x) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    return _run(Interpreter(model_content=model), x)


def test_training_leaves_sparse_shared_kernels(trained):
    _x, _y, model, zeros = trained
    for layer in model.layers:
        kernel = layer.get_weights()[0]
        # Sharing keeps every pruned zero and adds none of its own.
        np.testing.assert_array_equal(kernel == 0, zeros[layer.name])
        assert np.mean(kernel == 0) == pytest.approx(SPARSITY, abs=0.01), layer.name
        assert len(np.unique(kernel[kernel != 0])) <= 2**BITS, layer.name


def test_packed_file_is_small_and_lossless(trained, packed):
    _x, _y, model, _zeros = trained
    report = packed.report
    assert report.packed_bytes == len(bytes(packed))
    assert report.packed_bytes <= MAX_SIZE_RATIO * report.original_bytes
    expanded = read(tfedge.expand(bytes(packed), decoder=decode_payload))
    kernels = {
        bytes(buffer_data(expanded, t.buffer))
        for t in expanded.subgraphs[0].tensors
        if t.shape is not None and len(t.shape) == 2
    }
    for layer in model.layers:
        # TFLite stores a Dense kernel as [out, in].
        kernel = layer.get_weights()[0]
        assert np.ascontiguousarray(kernel.T).tobytes() in kernels, layer.name


def test_every_reader_gives_the_same_outputs(trained, packed):
    x, y, model, _zeros = trained
    data = bytes(packed)
    reference = model.predict(x, verbose=0)
    numpy_expanded = tfedge.expand(data, decoder=decode_payload)
    assert tfedge.expand(data) == numpy_expanded  # the native decoder, if built
    stock = _stock(numpy_expanded, x)
    np.testing.assert_allclose(stock, reference, rtol=0, atol=KERAS_ATOL)
    dense = _run(tfedge.Interpreter(model_content=data, sparse_kernels=False), x)
    np.testing.assert_array_equal(dense, stock)
    sparse = _run(tfedge.Interpreter(model_content=data), x)
    np.testing.assert_allclose(sparse, stock, rtol=0, atol=SPARSE_KERNEL_ATOL)
    # And it learned: well above the 1 in 8 of chance on its training data.
    assert np.mean(np.argmax(sparse, axis=1) == y) > 0.9


def test_java_unpacker_expands_like_python(packed, tmp_path):
    reason = _java.missing_jdk()
    if reason:
        pytest.skip(reason)
    cp = _java.compile_unpacker(tmp_path / "classes", with_tests=False)
    (tmp_path / "packed.tflite").write_bytes(bytes(packed))
    (err,) = _java.run_batch(
        cp,
        tmp_path,
        [
            (
                "expand",
                str(tmp_path / "packed.tflite"),
                str(tmp_path / "expanded.tflite"),
            )
        ],
    )
    assert err is None, err
    java = read((tmp_path / "expanded.tflite").read_bytes())
    python = read(tfedge.expand(bytes(packed), decoder=decode_payload))
    assert [bytes(buffer_data(java, i)) for i in range(len(java.buffers))] == [
        bytes(buffer_data(python, i)) for i in range(len(python.buffers))
    ]
