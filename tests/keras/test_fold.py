"""`tfedge.keras.fold_batch_norm`: batch normalisations folded into the layer before
keep the model's function (inference mode), keep a pruned kernel's zeros as +0.0, and
leave alone the batch normalisations that cannot fold."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

import tfedge.keras as tk

# Folding reorders float32 products (kernel * scale before the convolution instead of
# after it): differences of a few float32 ulps of the outputs per folded layer; 1e-5 of
# the outputs' scale is far above that and far below any real change of function.
FOLD_RTOL = 1e-5


def _set_statistics(model, seed: int = 0) -> None:
    """Gives every batch normalisation of `model` random statistics, some scales
    negative (the sign of a folded zero must not flip)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            values = {
                "gamma": rng.uniform(-2.0, 2.0, n),
                "beta": rng.normal(0, 0.5, n),
                "moving_mean": rng.normal(0, 0.5, n),
                "moving_variance": rng.uniform(0.2, 3.0, n),
            }
            layer.set_weights(
                [values[w.name].astype(np.float32) for w in layer.weights]
            )


def _residual():
    """Conv (no bias) + BN + ReLU, a residual block with a 1x1 projection, a depthwise
    conv with a bias + BN, a dense + BN: every kind that folds."""
    keras.utils.set_random_seed(0)
    L = keras.layers
    x_in = keras.Input((8, 8, 2))
    x = L.Conv2D(4, 3, padding="same", use_bias=False, name="c1")(x_in)
    x = L.ReLU()(L.BatchNormalization(name="c1_bn")(x))
    y = L.Conv2D(6, 3, strides=2, padding="same", use_bias=False, name="c2")(x)
    y = L.BatchNormalization(name="c2_bn")(y)
    p = L.Conv2D(6, 1, strides=2, use_bias=False, name="proj")(x)
    p = L.BatchNormalization(name="proj_bn")(p)
    x = L.ReLU()(L.Add()([y, p]))
    x = L.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)
    x = L.BatchNormalization(name="dw_bn")(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(5, name="fc")(x)
    out = L.BatchNormalization(name="fc_bn")(x)
    return keras.Model(x_in, out)


def _close(got, want):
    np.testing.assert_allclose(got, want, rtol=0, atol=FOLD_RTOL * np.abs(want).max())


def test_functional_fold_keeps_the_function_and_the_names():
    model = _residual()
    _set_statistics(model)
    assert tk.foldable_batch_norms(model) == {
        "c1_bn": "c1",
        "c2_bn": "c2",
        "proj_bn": "proj",
        "dw_bn": "dw",
        "fc_bn": "fc",
    }
    folded = tk.fold_batch_norm(model)
    kinds = [type(layer) for layer in folded.layers]
    assert keras.layers.BatchNormalization not in kinds
    for name in ("c1", "c2", "proj", "dw", "fc"):
        assert folded.get_layer(name).use_bias
    x = np.random.default_rng(1).normal(size=(4, 8, 8, 2)).astype(np.float32)
    _close(np.asarray(folded(x)), np.asarray(model(x, training=False)))
    # The input model is not changed.
    assert any(
        isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers
    )


def test_pruned_zeros_stay_positive_zeros():
    model = _residual()
    _set_statistics(model)
    rng = np.random.default_rng(2)
    masks = {}
    for name in ("c1", "c2", "dw"):
        layer = model.get_layer(name)
        weights = layer.get_weights()
        masks[name] = rng.uniform(size=weights[0].shape) < 0.7
        weights[0] = np.where(masks[name], 0.0, weights[0]).astype(np.float32)
        layer.set_weights(weights)
    folded = tk.fold_batch_norm(model)
    for name, mask in masks.items():
        kernel = np.asarray(folded.get_layer(name).kernel)
        zeros = kernel == 0
        np.testing.assert_array_equal(zeros, mask)
        assert not np.signbit(kernel[zeros]).any(), name


def test_sequential_fold():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((10,)),
            keras.layers.Dense(6, name="fc1"),
            keras.layers.BatchNormalization(name="bn1"),
            keras.layers.ReLU(name="relu"),
            keras.layers.Dense(3, name="fc2"),
        ]
    )
    _set_statistics(model)
    assert tk.foldable_batch_norms(model) == {"bn1": "fc1"}
    folded = tk.fold_batch_norm(model)
    assert [layer.name for layer in folded.layers] == ["fc1", "relu", "fc2"]
    x = np.random.default_rng(1).normal(size=(4, 10)).astype(np.float32)
    _close(np.asarray(folded(x)), np.asarray(model(x, training=False)))


def _unfoldable():
    """Batch normalisations that must stay: after an activation, after a conv whose
    output is read twice, over an axis other than the channels."""
    keras.utils.set_random_seed(0)
    L = keras.layers
    x_in = keras.Input((6, 6, 3))
    a = L.Conv2D(4, 3, activation="relu", name="relu_conv")(x_in)
    a = L.BatchNormalization(name="after_relu")(a)
    b = L.Conv2D(4, 3, name="shared_out")(x_in)
    b = L.Add()([L.BatchNormalization(name="twice_read")(b), b])
    c = L.Conv2D(4, 3, name="rows")(x_in)
    c = L.BatchNormalization(axis=1, name="over_rows")(c)
    out = L.Concatenate()([L.Flatten()(a), L.Flatten()(b), L.Flatten()(c)])
    return keras.Model(x_in, out)


def test_batch_norms_that_cannot_fold_stay():
    model = _unfoldable()
    _set_statistics(model)
    assert tk.foldable_batch_norms(model) == {}
    folded = tk.fold_batch_norm(model)
    names = {layer.name for layer in folded.layers}
    assert {"after_relu", "twice_read", "over_rows"} <= names
    x = np.random.default_rng(1).normal(size=(2, 6, 6, 3)).astype(np.float32)
    _close(np.asarray(folded(x)), np.asarray(model(x, training=False)))


def test_rejects_a_subclassed_model():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(2, 3)
            self.bn = keras.layers.BatchNormalization()

        def call(self, x):
            return self.bn(self.conv(x))

    net = Net()
    net(np.zeros((1, 5, 5, 1), np.float32))
    with pytest.raises(ValueError, match="fold_batch_norm"):
        tk.fold_batch_norm(net)
