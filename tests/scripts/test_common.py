"""scripts/_common.py: the ResNet builder, with batch norms and without (the graph of
the folded model, into which scripts/deep_compression.py copies it for tfmot)."""

from __future__ import annotations

import numpy as np
import pytest

from tests._scripts import load_script

# Folding reorders float32 products and sums (kernel * scale before the convolution
# instead of after it, through 20 layers): relative differences of a few 1e-6 per
# layer; 1e-4 of the logits' scale is far below any change of a prediction.
FOLD_RTOL = 1e-4


@pytest.fixture(scope="module")
def common():
    return load_script("_common.py", "_common")


def test_folded_weights_fit_the_resnet_without_batch_norm(common):
    import keras

    import tfedge.keras as tk

    keras.utils.set_random_seed(0)
    trained = common.resnet(keras, 8)
    rng = np.random.default_rng(0)
    for layer in trained.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 2.0, n).astype(np.float32),  # gamma
                    rng.normal(0, 0.5, n).astype(np.float32),  # beta
                    rng.normal(0, 0.5, n).astype(np.float32),  # moving mean
                    rng.uniform(0.2, 3.0, n).astype(np.float32),  # moving variance
                ]
            )
    folded = common.resnet(keras, 8, batch_norm=False)
    folded.set_weights(tk.fold_batch_norm(trained).get_weights())

    assert not any(
        isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers
    )
    assert [lyr.name for lyr in folded.layers if lyr.weights] == [
        lyr.name
        for lyr in trained.layers
        if lyr.weights and not isinstance(lyr, keras.layers.BatchNormalization)
    ]
    x = rng.uniform(0, 1, (8, 28, 28, 1)).astype(np.float32)
    want = np.asarray(trained(x, training=False))
    got = np.asarray(folded(x, training=False))
    np.testing.assert_allclose(got, want, rtol=0, atol=FOLD_RTOL * np.abs(want).max())


def test_resnet_rejects_a_depth_outside_the_family(common):
    import keras

    with pytest.raises(ValueError, match="6n\\+2"):
        common.resnet(keras, 21)


RESNET_LAYERS = ["conv1", "s1b0_c1", "s2b0_c1", "s2b0_proj", "s3b0_c1", "fc"]
LAYER_VALUES = {
    "names": ("fc1=0.95,fc2=0.9", {"fc1": 0.95, "fc2": 0.9}),
    "star": (
        "*=0.9,conv1=0.5,fc=0.5",
        {n: 0.9 for n in RESNET_LAYERS} | {"conv1": 0.5, "fc": 0.5},
    ),
    "patterns_first_match_star_last": (
        "*=0.93,s2*=0.9,s2b0_*=0.8,fc=0.5",
        {
            "conv1": 0.93,
            "s1b0_c1": 0.93,
            "s2b0_c1": 0.9,
            "s2b0_proj": 0.9,
            "s3b0_c1": 0.93,
            "fc": 0.5,
        },
    ),
    "empty": ("  ", None),
}


@pytest.mark.parametrize("case", list(LAYER_VALUES), ids=list(LAYER_VALUES))
def test_layer_values(common, case):
    text, want = LAYER_VALUES[case]
    assert common.layer_values(text, RESNET_LAYERS) == want


def test_layer_values_needs_name_equals_value(common):
    with pytest.raises(ValueError, match="layer=value"):
        common.layer_values("fc1:0.9", RESNET_LAYERS)
