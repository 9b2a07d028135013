"""`deep_compress`: the three Deep Compression stages in one call, on tiny data.

Two pipeline runs are shared by the tests (module fixtures): array data with given
sparsities and bits, and tf.data datasets with sensitivity-chosen sparsities. Bad input
is checked without training.
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

import tfedge
from tfedge._deep_compress import deep_compress
from tfedge.pack import interpreter_class

# Given sparsities and bits of the array run. Bits are small because the layers are:
# share_weights warns when a layer has fewer distinct weights than 2^bits.
SPARSITY = {"conv": 0.5, "fc1": 0.8, "fc2": 0.5}
BITS = {"conv": 3, "fc1": 4, "fc2": 3}
# The final file is packed losslessly, so the expanded model is the converted one bit
# for bit; the interpreter may still pick other kernels for it, hence not 0.
LOSSLESS_OUTPUT_TOLERANCE = 1e-5
# Keras vs the TFLite interpreter on the same weights: float32 summation order only.
CONVERTER_TOLERANCE = 1e-4


def _data(n: int, seed: int):
    """4 classes on 8x8x1 "images": the brightest quadrant (linearly separable)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 1)).astype("float32")
    quadrants = x.reshape(n, 2, 4, 2, 4).mean(axis=(2, 4)).reshape(n, 4)
    return x, np.argmax(quadrants, axis=1).astype("int64")


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(6, 3, name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu", name="fc1"),
            keras.layers.Dense(4, name="fc2"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x, y = _data(512, 1)
    model.fit(x, y, batch_size=64, epochs=8, verbose=0)
    return model


@pytest.fixture(scope="module")
def trained():
    return _model()


@pytest.fixture(scope="module")
def result(trained):
    return deep_compress(
        trained,
        _data(512, 1),
        _data(256, 2),
        sparsity=SPARSITY,
        bits=BITS,
        prune_rounds=2,
        prune_epochs=2,
        share_epochs=1,
        batch_size=64,
    )


def _run(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    it = interpreter_class()(model_content=model_bytes)
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], list(x.shape))
    it.allocate_tensors()
    it.set_tensor(inp["index"], x)
    it.invoke()
    return np.array(it.get_tensor(it.get_output_details()[0]["index"]))


def test_stages_run_and_shrink_in_order(result):
    names = [s.name for s in result.stages]
    assert names == ["float", "pruned", "shared", "tfedge"]
    sizes = [s.bytes for s in result.stages]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 4, sizes
    assert result.stage("tfedge").bytes == len(result) == len(bytes(result))
    for s in result.stages:
        assert 0.0 <= s.accuracy <= 1.0
        assert s.ratio == pytest.approx(result.stage("float").bytes / s.bytes)
        assert s.weight_ratio == pytest.approx(result.float_weight_bytes / s.bytes)
    assert result.stage("float").ratio == 1.0
    # A linearly separable problem: every stage still classifies well.
    assert result.stage("float").accuracy > 0.7
    assert result.stage("tfedge").accuracy > result.stage("float").accuracy - 0.1
    assert result.sparsity == SPARSITY
    assert result.bits == BITS


def test_final_model_keeps_pruned_zeros_and_few_values(result):
    for name, sparsity in SPARSITY.items():
        kernel = np.asarray(result.model.get_layer(name).kernel)
        zeros = float(np.mean(kernel == 0))
        # IterativePruning keeps round(n * (1 - s)) weights: within one weight of s.
        assert zeros >= sparsity - 1.0 / kernel.size, (name, zeros)
        distinct = np.unique(kernel[kernel != 0])
        assert 1 < distinct.size <= 2 ** BITS[name], (name, distinct.size)
    # The pruned stage's zeros are still zero after sharing.
    for name in SPARSITY:
        pruned = np.asarray(result.stage_models["pruned"].get_layer(name).kernel)
        final = np.asarray(result.model.get_layer(name).kernel)
        assert np.all(final[pruned == 0] == 0), name


def test_packed_file_expands_and_runs_like_the_stripped_model(result):
    packed = bytes(result)
    assert result.report.lossless
    x, _ = _data(64, 3)
    reference = _run(result.tflite, x)
    expanded = _run(tfedge.expand(packed), x)
    np.testing.assert_allclose(expanded, reference, atol=LOSSLESS_OUTPUT_TOLERANCE)
    keras_out = result.model.predict(x, verbose=0)
    np.testing.assert_allclose(expanded, keras_out, atol=CONVERTER_TOLERANCE)
    # The packed file is smaller than the plain .tflite of the same final model.
    assert len(packed) < len(result.tflite)


def test_layer_rows_describe_the_packed_tensors(result):
    rows = {r.layer: r for r in result.layers}
    assert "fc1" in rows, [r.tensor for r in result.layers]
    fc1 = rows["fc1"]
    assert fc1.weights == 6 * 6 * 6 * 32  # conv output 6x6x6, flattened, x 32 units
    assert fc1.kept == pytest.approx(1 - SPARSITY["fc1"], abs=1 / fc1.weights)
    assert fc1.shared_bits == BITS["fc1"]
    # The payload's codebook also holds the pruned weights' zero: one more index bit.
    assert fc1.bits is not None and fc1.bits <= BITS["fc1"] + 1
    # Deep Compression's relative index, unless (format version 3) one rANS stream of
    # the indices, zeros included, is smaller: then there is no index stream.
    sparse = fc1.encoding.startswith("sparse/")
    if sparse:
        assert fc1.index_bits is not None and fc1.coded_index_bits > 0
    else:
        assert fc1.encoding == "dense/codebook/rans" and fc1.index_bits is None
    assert 0 < fc1.value_bits <= 8
    assert sum(r.packed_bytes for r in result.layers) < len(result)
    assert "fc1" in result.table() or fc1.tensor[-30:] in result.table()
    # The coded streams (headers and code tables included) cost at least their
    # entropy; the whole payload per kept weight at least both.
    assert 0 < fc1.value_entropy <= fc1.value_bits
    if sparse:
        assert 0 < fc1.index_entropy <= fc1.coded_index_bits
        assert fc1.nonzero_bits >= fc1.value_entropy + fc1.index_entropy
    assert "val H" in result.table() and "idx H" in result.table()


# ECSQ's default entropy target for fc1's 5 bits: bits - 2 per kept weight.
ECSQ_BITS = {"conv": 3, "fc1": 5, "fc2": 3}
ECSQ_FC1_TARGET = 3.0


@pytest.fixture(scope="module")
def ecsq_result(trained):
    return deep_compress(
        trained,
        _data(512, 1),
        _data(256, 2),
        sparsity=SPARSITY,
        bits=ECSQ_BITS,
        method="ecsq",
        prune_rounds=1,
        prune_epochs=1,
        share_epochs=1,
        batch_size=64,
    )


def test_ecsq_meets_its_entropy_target_in_the_packed_file(ecsq_result):
    rows = {r.layer: r for r in ecsq_result.layers}
    fc1 = rows["fc1"]
    # Fine-tuning moves centroids but not indices: the packed value stream has the
    # entropy ECSQ chose (or less, if two centroids met).
    assert fc1.value_entropy <= ECSQ_FC1_TARGET
    assert fc1.value_entropy <= fc1.value_bits
    sizes = [s.bytes for s in ecsq_result.stages]
    assert sizes == sorted(sizes, reverse=True)
    kernel = np.asarray(ecsq_result.model.get_layer("fc1").kernel)
    assert np.unique(kernel[kernel != 0]).size <= 2 ** ECSQ_BITS["fc1"]


@pytest.fixture(scope="module")
def from_datasets(trained):
    import tensorflow as tf

    x, y = _data(512, 1)
    xv, yv = _data(256, 2)
    train = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(512, seed=0).batch(64)
    val = tf.data.Dataset.from_tensor_slices((xv, yv)).batch(64)
    return deep_compress(
        trained,
        train,
        val,
        sensitivity_sparsities=(0.5, 0.75),
        max_loss=1.0,  # accept every sparsity tried: the choice is then known
        bits=None,  # the paper's bits, fewer where a layer has fewer values
        prune_rounds=1,
        prune_epochs=1,
        share_epochs=1,
    )


def test_datasets_and_sensitivity_choice(from_datasets):
    r = from_datasets
    assert r.sensitivity is not None
    assert set(r.sensitivity.scores) == {"conv", "fc1", "fc2"}
    assert r.sparsity == {"conv": 0.75, "fc1": 0.75, "fc2": 0.75}
    # Default bits: the paper's (8 conv, less 1 for the pruned zero; 5 fc), but
    # never more than the pruned layer's distinct non-zero weights need. The run
    # itself checks that share_weights did not warn (warnings are errors).
    pruned = r.stage_models["pruned"]
    for name, paper in (("conv", 7), ("fc1", 5), ("fc2", 5)):
        kernel = np.asarray(pruned.get_layer(name).kernel)
        distinct = np.unique(kernel[kernel != 0]).size
        assert r.bits[name] == min(paper, math.ceil(math.log2(distinct))), name
    assert r.bits["conv"] < 7  # 54 weights, a quarter kept
    sizes = [s.bytes for s in r.stages]
    assert sizes == sorted(sizes, reverse=True)
    for name in ("conv", "fc1", "fc2"):
        kernel = np.asarray(r.model.get_layer(name).kernel)
        assert np.mean(kernel == 0) >= 0.75 - 1.0 / kernel.size
        assert np.unique(kernel[kernel != 0]).size <= 2 ** r.bits[name]


def test_block_size_prunes_whole_blocks(trained):
    """(1, 4): each output unit's inputs in runs of four, all zero or all kept, in the
    packed file's own order (a TFLite kernel is [out, in], the Keras one [in, out])."""
    block = deep_compress(
        trained,
        _data(512, 1),
        _data(256, 2),
        sparsity={"fc1": 0.75},
        bits={"fc1": 3, "fc2": 3, "conv": 3},
        block_size=(1, 4),
        prune_rounds=1,
        prune_epochs=1,
        share_epochs=0,
        batch_size=64,
        verbose=0,
    )
    kernel = np.asarray(block.model.get_layer("fc1").kernel)
    blocks = (kernel.T.reshape(kernel.shape[1], -1, 4) != 0).sum(axis=-1)
    assert set(np.unique(blocks)) <= {0, 4}, np.unique(blocks)
    assert np.mean(kernel == 0) >= 0.75 - 4.0 / kernel.size
    assert block.sparsity["fc1"] == 0.75


# --- a net with batch normalisation: pruned with it, folded before sharing ------------

BN_SPARSITY = {"conv": 0.5, "fc": 0.75}
BN_BITS = {"conv": 3, "fc": 3}


def _bn_model():
    """conv (no bias) + batch norm + ReLU, dense: the convolution's kernel reaches the
    .tflite scaled per output channel unless the batch norm is folded first."""
    keras.utils.set_random_seed(0)
    x_in = keras.Input((8, 8, 1))
    # 8 filters: 72 weights, past the converter's 256-byte minimum for packing.
    x = keras.layers.Conv2D(8, 3, use_bias=False, name="conv")(x_in)
    x = keras.layers.BatchNormalization(name="conv_bn")(x)
    x = keras.layers.ReLU()(x)
    out = keras.layers.Dense(4, name="fc")(keras.layers.Flatten()(x))
    model = keras.Model(x_in, out)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x, y = _data(512, 1)
    model.fit(x, y, batch_size=64, epochs=8, verbose=0)
    return model


def test_batch_norm_net_is_folded_between_pruning_and_sharing():
    model = _bn_model()
    r = deep_compress(
        model,
        _data(512, 1),
        _data(256, 2),
        sparsity=BN_SPARSITY,
        bits=BN_BITS,
        prune_rounds=1,
        prune_epochs=1,
        share_epochs=1,
        batch_size=64,
        verbose=0,
    )

    def batch_norms(m):
        return [lyr.name for lyr in m.layers if "Normalization" in type(lyr).__name__]

    assert batch_norms(r.stage_models["float"]) == ["conv_bn"]
    assert batch_norms(r.stage_models["pruned"]) == []
    assert batch_norms(r.model) == []
    # The float32 weights as converted: the folded conv's kernel and bias, the dense
    # layer's; not the batch norm's four vectors.
    assert r.float_weight_bytes == 4 * (3 * 3 * 8 + 8 + 6 * 6 * 8 * 4 + 4)
    pruned = np.asarray(r.stage_models["pruned"].get_layer("conv").kernel)
    final = np.asarray(r.model.get_layer("conv").kernel)
    assert np.mean(pruned == 0) >= BN_SPARSITY["conv"] - 1.0 / pruned.size
    assert np.all(final[pruned == 0] == 0)
    assert np.unique(final[final != 0]).size <= 2 ** BN_BITS["conv"]
    # One codebook per tensor in the packed file: the shared values and the zero,
    # not per-channel copies of them (what folding after sharing would give).
    conv = next(row for row in r.layers if row.layer == "conv")
    assert conv.bits is not None and conv.bits <= BN_BITS["conv"] + 1
    x, _ = _data(64, 3)
    expanded = _run(tfedge.expand(bytes(r)), x)
    keras_out = r.model.predict(x, verbose=0)
    np.testing.assert_allclose(expanded, keras_out, atol=CONVERTER_TOLERANCE)
    assert r.stage("tfedge").accuracy > r.stage("float").accuracy - 0.1


# --- bad input: errors before any training --------------------------------------------

_XY = _data(32, 4)

BAD_INPUT = {
    "not_a_model": (lambda m: dict(model="model.keras"), "Keras 3 model"),
    "x_y_lengths": (
        lambda m: dict(train_data=(_XY[0], _XY[1][:5])),
        "same, non-zero number",
    ),
    "train_not_tuple": (lambda m: dict(train_data=_XY[0]), "tuple \\(x, y\\)"),
    "sparsity_one": (lambda m: dict(sparsity=1.0), "sparsity"),
    "sparsity_unknown_layer": (
        lambda m: dict(sparsity={"nope": 0.5}),
        "'nope'.*Prunable layers: \\['",
    ),
    "bits_nine": (lambda m: dict(bits=9), "bits"),
    "bits_unknown_layer": (lambda m: dict(bits={"nope": 4}), "'nope'"),
    "sparsity_all_zero": (lambda m: dict(sparsity=0.0), "prunes no layer"),
    "prune_rounds_zero": (lambda m: dict(prune_rounds=0), "prune_rounds"),
    "block_size": (lambda m: dict(block_size=(1, 8)), "block_size"),
    "max_loss_negative": (lambda m: dict(max_loss=-0.1), "max_loss"),
    "init": (lambda m: dict(init="kmeans++"), "init"),
    "metric": (lambda m: dict(metric="top5"), "metric"),
    "learning_rate": (lambda m: dict(share_learning_rate=0.0), "share_learning_rate"),
    "method": (lambda m: dict(method="lloyd"), "method"),
    "rate_for_kmeans": (lambda m: dict(rate=0.1), "ecsq"),
    "negative_rate": (lambda m: dict(method="ecsq", rate=-1.0), "rate"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT), ids=list(BAD_INPUT))
def test_bad_input_raises(trained, case):
    make, match = BAD_INPUT[case]
    kwargs = dict(model=trained, train_data=_XY, val_data=_XY)
    kwargs.update(make(trained))
    with pytest.raises(ValueError, match=match):
        deep_compress(
            kwargs.pop("model"),
            kwargs.pop("train_data"),
            kwargs.pop("val_data"),
            **kwargs,
        )


def test_infinite_dataset_needs_steps(trained):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(_XY).batch(8).repeat()
    with pytest.raises(ValueError, match="steps_per_epoch"):
        deep_compress(trained, ds, _XY, sparsity=0.5)


def test_model_without_prunable_layer():
    model = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])
    x = np.zeros((8, 4), np.float32)
    with pytest.raises(ValueError, match="no prunable layer"):
        deep_compress(model, (x, np.zeros(8)), (x, np.zeros(8)))


def test_default_bits_fit_the_codebook_with_the_zero():
    from tfedge._deep_compress._share import _default_bits

    conv = keras.layers.Conv2D(4, 3, name="c")
    dense = keras.layers.Dense(4, name="d")
    pick = _default_bits({"c", "d"})
    # 2^8 values plus the pruned zero would exceed the 256-entry codebook: 7 bits.
    assert pick(conv) == 7 and pick(dense) == 5
    unpruned = _default_bits(set())
    assert unpruned(conv) == 8 and unpruned(dense) == 5


def test_default_bits_hold_each_distinct_value_once():
    from tfedge._deep_compress._share import _default_bits

    conv = keras.layers.Conv2D(8, 3, name="conv1")
    conv.build((None, 8, 8, 1))
    assert _default_bits(set())(conv) == 7  # 72 distinct weights: 7 bits, not 8
    conv.kernel.assign(np.where(np.arange(72) % 2, 0.5, -0.25).reshape(3, 3, 1, 8))
    assert _default_bits(set())(conv) == 1
