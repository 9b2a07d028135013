"""tfedge.keras.prune(block_size=...): block-structured masks for the sparse kernels.

Blocks are stated in TFLite's [out, in] kernel terms; a Keras kernel is [..., in, out],
so (1, 4) runs along axis -2 and (4, 1) along axis -1.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import tfedge.keras
from tfedge.keras import ConstantSparsity, PruningWrapper

# (block_size, Keras kernel shape) including ragged edges (a partial last block).
CASES = [
    ((1, 4), (64, 32)),
    ((4, 1), (64, 32)),
    ((1, 4), (30, 10)),
    ((4, 1), (30, 10)),
    ((1, 4), (1, 1, 24, 16)),  # a 1x1 convolution
    ((4, 1), (3, 3, 8, 12)),
]


def _wrapper(block_size, shape):
    keras.utils.set_random_seed(0)
    if len(shape) == 2:
        layer = keras.layers.Dense(shape[1])
        input_shape = (None, shape[0])
    else:
        layer = keras.layers.Conv2D(shape[3], shape[:2])
        input_shape = (None, 8, 8, shape[2])
    w = PruningWrapper(
        layer, schedule=ConstantSparsity(0.75, begin_step=0), block_size=block_size
    )
    w.build(input_shape)
    return w


def _blocks(kernel: np.ndarray, block_size) -> np.ndarray:
    """The kernel as [lead, in-blocks, bi, out-blocks, bo] (zero-padded)."""
    bi, bo = block_size[1], block_size[0]
    k = kernel.reshape(-1, *kernel.shape[-2:])
    rows, cols = k.shape[1:]
    k = np.pad(k, ((0, 0), (0, -rows % bi), (0, -cols % bo)))
    return k.reshape(k.shape[0], k.shape[1] // bi, bi, k.shape[2] // bo, bo)


@pytest.mark.parametrize(("block_size", "shape"), CASES)
def test_masks_keep_or_drop_whole_blocks(block_size, shape):
    w = _wrapper(block_size, shape)
    w.prune_now(0.75)
    kernel = w.effective_weights()[0]
    blocks = _blocks(kernel != 0, block_size)
    any_kept = blocks.any(axis=(2, 4))
    # Inside the real kernel, a kept block is kept whole (padding aside).
    mask = _blocks(np.ones_like(kernel, bool), block_size)
    assert np.array_equal(blocks, mask & any_kept[:, :, None, :, None])
    n_blocks = any_kept.size
    assert any_kept.sum() == max(round(n_blocks * 0.25), 1)


def test_block_scores_are_block_norms():
    """A block of four medium weights outranks a block holding the one largest."""
    w = _wrapper((1, 4), (8, 1))
    k = np.zeros((8, 1), np.float32)
    k[:4, 0] = 0.5  # block 0: L2 norm 1.0
    k[4, 0] = 0.9  # block 1: L2 norm 0.9, but the largest single weight
    w.layer.kernel.assign(k)
    w.prune_now(0.5)
    kept = w.effective_weights()[0][:, 0] != 0
    assert kept.tolist() == [True] * 4 + [False] * 4


def test_prune_passes_block_size_and_it_survives_serialization():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8)])
    pruned = tfedge.keras.prune(
        model, schedule=ConstantSparsity(0.5, begin_step=0), block_size=(4, 1)
    )
    wrapper = pruned.layers[0]
    assert wrapper.block_size == (4, 1)
    again = PruningWrapper.from_config(wrapper.get_config())
    assert again.block_size == (4, 1)


@pytest.mark.parametrize("bad", [(2, 2), (4,), "1x4", (True, 4), None])
def test_bad_block_size_is_refused(bad):
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8)])
    with pytest.raises(ValueError, match="block_size"):
        tfedge.keras.prune(
            model, schedule=ConstantSparsity(0.5, begin_step=0), block_size=bad
        )


def test_blocks_need_two_axes():
    class BiasOnly(keras.layers.Layer):
        def build(self, shape):
            self.b = self.add_weight(shape=(8,), initializer="ones")

        def call(self, x):
            return x + self.b

        def tfedge_prunable_weights(self):
            return [self.b]

    w = PruningWrapper(
        BiasOnly(), schedule=ConstantSparsity(0.5, begin_step=0), block_size=(1, 4)
    )
    with pytest.raises(ValueError, match="block_size=\\(1, 1\\)"):
        w.build((None, 8))


def test_fit_keeps_block_masks():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((32,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(4),
        ]
    )
    pruned = tfedge.keras.prune(
        model, schedule=ConstantSparsity(0.75, begin_step=0), block_size=(1, 4)
    )
    pruned.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    pruned.fit(
        rng.standard_normal((64, 32)), rng.standard_normal((64, 4)), epochs=2, verbose=0
    )
    stripped = tfedge.keras.strip(pruned)
    for layer in stripped.layers:
        kernel = layer.get_weights()[0]
        blocks = _blocks(kernel != 0, (1, 4)).any(axis=2)
        full = _blocks(kernel != 0, (1, 4)).all(axis=2)
        assert np.array_equal(blocks, full)
        assert np.mean(kernel == 0) == pytest.approx(0.75, abs=0.05)
