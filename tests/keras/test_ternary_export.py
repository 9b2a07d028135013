"""Ternary and shared-weight models through strip -> tfedge.compress, losslessly."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import tfedge
from tfedge.keras import share_weights, strip, ternarize

# A ternary kernel holds three values: 2-bit indices, or a Huffman code whose three
# code lengths are (1, 2, 2) bits; on random-init kernels (about 5% zeros) Huffman gives
# about 1.6 bits, which leaves room for the payload header and codebook within 2 bits.
TERNARY_BITS_PER_WEIGHT = 2.0
# Payload header plus a codebook of up to 8 float32 values (docs/FORMAT.md): a fixed
# cost on top of the 3-bit indices of a 3-bit shared layer.
HEADER_AND_CODEBOOK_BYTES = 128
# Lossless packing must give the stripped model's own answers: the same .tflite weights,
# so the only difference is float32 rounding between Keras and the TFLite kernels.
OUTPUT_ATOL = 1e-5


def _mlp(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((32,)),
            keras.layers.Dense(128, activation="relu", name="fc1"),
            keras.layers.Dense(64, activation="relu", name="fc2"),
            keras.layers.Dense(10, name="fc3"),
        ]
    )


def _run_tflite(data: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], x.shape)
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


def _rows(report, layer_name):
    return [t for t in report.tensors if layer_name in t.name and len(t.shape) == 2]


def _pack_and_check(model, x):
    plain = strip(model)
    packed = tfedge.compress(plain, lossless=True, progress=False)
    assert packed.report.lossless
    out = _run_tflite(tfedge.expand(bytes(packed)), x)
    np.testing.assert_allclose(out, plain.predict(x, verbose=0), atol=OUTPUT_ATOL)
    return plain, packed


def test_stripped_ternary_model_packs_losslessly_to_two_bits_per_weight():
    model = ternarize(_mlp(), threshold=0.05, exclude_first_last=False)
    x = np.random.default_rng(0).normal(size=(8, 32)).astype("float32")
    plain, packed = _pack_and_check(model, x)
    for name in ("fc1", "fc2"):
        kernel = plain.get_layer(name).kernel.numpy()
        assert len(np.unique(kernel)) == 3
        (row,) = _rows(packed.report, name)
        assert row.packed, row.reason
        assert row.bits_per_weight <= TERNARY_BITS_PER_WEIGHT, row
        assert row.weight_error == 0.0


def test_stripped_shared_model_packs_losslessly_with_its_codebook():
    model = share_weights(_mlp(), bits=3)
    x = np.random.default_rng(1).normal(size=(8, 32)).astype("float32")
    _, packed = _pack_and_check(model, x)
    for name in ("fc1", "fc2"):
        (row,) = _rows(packed.report, name)
        assert row.packed, row.reason
        n = int(np.prod(row.shape))
        assert row.packed_bytes <= n * 3 / 8 + HEADER_AND_CODEBOOK_BYTES, row


@pytest.mark.parametrize("wrap", [ternarize, share_weights], ids=["ternary", "shared"])
def test_compress_strips_the_wrappers_itself(wrap):
    model = wrap(_mlp())
    x = np.random.default_rng(2).normal(size=(4, 32)).astype("float32")
    packed = tfedge.compress(model, lossless=True, progress=False)
    out = _run_tflite(tfedge.expand(bytes(packed)), x)
    np.testing.assert_allclose(out, model.predict(x, verbose=0), atol=OUTPUT_ATOL)


def _conv_bn(seed=0):
    """Conv -> BN -> ReLU twice, then a classifier (the ResNet building block)."""
    keras.utils.set_random_seed(seed)
    L = keras.layers
    inputs = keras.Input((12, 12, 3))
    x = inputs
    for i, filters in enumerate((8, 16, 16)):
        x = L.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = L.BatchNormalization(name=f"bn{i}")(x)
        x = L.ReLU()(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(4, name="fc")(x))


def test_ternary_convs_with_batchnorm_pack_per_channel_at_two_bits():
    # TFLite folds each BN scale into the kernel before it: channel c holds
    # {-Wn s_c, 0, +Wp s_c}. The packer stores them losslessly as per-channel codebooks.
    model = ternarize(_conv_bn(), threshold=0.05)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(32, 12, 12, 3)).astype("float32")
    model.compile("adam", "mse")
    model.fit(x, rng.normal(size=(32, 4)), epochs=2, verbose=0)  # BN statistics move
    plain, packed = _pack_and_check(model, x[:8])
    rows = {
        name: max(_conv_rows(packed.report, name), key=lambda t: t.original_bytes)
        for name in ("conv1", "conv2")
    }
    for row in rows.values():
        assert "channel_codebook" in row.encoding, row
        assert row.weight_error == 0.0
        # 2-bit (or Huffman) indices, plus three float32 entries per output channel.
        channels, n = row.shape[0], int(np.prod(row.shape))
        table_bytes = channels * 3 * 4 + HEADER_AND_CODEBOOK_BYTES
        assert row.packed_bytes * 8 <= TERNARY_BITS_PER_WEIGHT * n + 8 * table_bytes, (
            row
        )
    # Version 2 for the per-channel codebooks, 3 where a stream is rANS coded.
    assert packed.report.format_version in (2, 3)


def _conv_rows(report, layer_name):
    return [t for t in report.tensors if layer_name in t.name and len(t.shape) == 4]
