"""ECSQ candidates of the converter's lossy search (`method="ecsq"`): each option's
payload is the written payload and decodes to exactly the values the drift check
runs; the rate ladder trades bytes for weight error monotonically; the cell
assignment is the exact minimum of the ECSQ cost; `tfedge.compress` picks them on a
Keras model and on a published model and holds its tolerance."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

import tfedge
from tfedge import codecs
from tfedge.pack import _encode, _lossy
from tfedge.tflite import schema

F32 = schema().TensorType.FLOAT32
F16 = schema().TensorType.FLOAT16
# Weight tensors the candidates are checked on: (id, dtype, values). Gaussian and
# Laplacian kernels, a 70%-pruned one (zeros must stay exact), a float16 one, and
# one larger than the ECSQ sample (the whole tensor is assigned after iterating on
# quantiles).
_RNG = np.random.default_rng(0)
TENSORS = {
    "gauss": (F32, _RNG.standard_normal(6000).astype(np.float32)),
    "laplace": (F32, _RNG.laplace(size=6000).astype(np.float32) * 0.01),
    "pruned": (
        F32,
        np.where(_RNG.random(6000) < 0.7, 0.0, _RNG.standard_normal(6000)).astype(
            np.float32
        ),
    ),
    "float16": (F16, _RNG.standard_normal(6000).astype(np.float16)),
    "large": (F32, _RNG.standard_normal(3 * _lossy._ECSQ_SAMPLE).astype(np.float32)),
    "large_laplace": (
        F32,
        _RNG.laplace(size=3 * _lossy._ECSQ_SAMPLE).astype(np.float32),
    ),
}
# The ECSQ point aimed at relative error e lands within this factor of e on these
# tensors: the uniform start has error e exactly, and the rate term moves it by
# less than half either way.
ERROR_AIM_FACTOR = 1.5
# k-means codebooks at 1-8 bits and ECSQ are both per-tensor codebooks coded by the
# same streams: on tensors of tens of thousands of weights (where the codebook is a
# small part of the payload) ECSQ must be no larger than k-means' bytes interpolated
# between its two neighbouring widths at the same weight error (it is 1-3% smaller;
# larger would be a sizing error). On a few thousand weights its larger codebooks
# can cost it up to 1%, and the search then keeps k-means.
ECSQ_VS_KMEANS_BYTES = 1.0


def _ladder(ttype, values):
    return [_lossy.ecsq_option(ttype, values, e) for e in _lossy.ECSQ_ERRORS]


def _decode(payload: bytes) -> np.ndarray:
    return np.frombuffer(bytes(codecs.decode_payload(payload)), np.uint8)


# The ladder checks: every kind of tensor once (the Laplacian one also small).
LADDER = [n for n in TENSORS if n != "large_laplace"]


@pytest.mark.parametrize("name", LADDER)
def test_payload_is_the_written_one_and_decodes_to_the_checked_values(name):
    ttype, values = TENSORS[name]
    for option in _ladder(ttype, values):
        enc = option.encoded()
        # The bytes the search counts are the bytes written...
        assert len(enc.payload) == option.payload_bytes
        # ...and what the drift check runs is what the payload expands to.
        np.testing.assert_array_equal(_decode(enc.payload), option.decoded)
        np.testing.assert_array_equal(enc.decoded, option.decoded)
        decoded = option.decoded.view(values.dtype)
        err = np.linalg.norm(decoded.astype(np.float64) - values) / np.linalg.norm(
            values.astype(np.float64)
        )
        assert math.isclose(option.weight_error, err, rel_tol=1e-9)
        assert option.label.startswith("ecsq ")


@pytest.mark.parametrize("name", LADDER)
def test_rate_ladder_is_monotone(name):
    ttype, values = TENSORS[name]
    ladder = _ladder(ttype, values)
    sizes = [o.payload_bytes for o in ladder]
    errors = [o.weight_error for o in ladder]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)
    assert errors == sorted(errors) and len(set(errors)) == len(errors)
    for aim, err in zip(_lossy.ECSQ_ERRORS, errors, strict=True):
        assert aim / ERROR_AIM_FACTOR <= err <= aim * ERROR_AIM_FACTOR


def test_pruned_zeros_stay_exact():
    ttype, values = TENSORS["pruned"]
    for option in _ladder(ttype, values):
        decoded = option.decoded.view(values.dtype)
        np.testing.assert_array_equal(decoded[values == 0], 0.0)


@pytest.mark.parametrize("name", ["large", "large_laplace"])
def test_ecsq_is_no_larger_than_kmeans_at_the_same_weight_error(name):
    ttype, values = TENSORS[name]
    kmeans = sorted(
        (o.weight_error, o.payload_bytes)
        for o in (
            _lossy.shared_option(ttype, values, _encode.share(values, b))
            for b in range(2, 9)
        )
    )
    errors, sizes = zip(*kmeans, strict=True)
    for option in _ladder(ttype, values):
        at = np.interp(option.weight_error, errors, sizes)
        assert option.payload_bytes <= ECSQ_VS_KMEANS_BYTES * at, option.label


def test_envelope_assignment_is_the_exact_minimum():
    rng = np.random.default_rng(1)
    values = rng.standard_normal(5000)
    centroids = rng.standard_normal(40)
    penalty = rng.uniform(0, 0.5, 40)
    got = _lossy._envelope_assign(values, centroids, penalty)
    cost = (values[:, None] - centroids[None, :]) ** 2 + penalty[None, :]
    want = cost[np.arange(values.size), got]
    np.testing.assert_allclose(want, cost.min(axis=1), rtol=0, atol=1e-12)


def test_iteration_matches_codecs_ecsq():
    """The converter's iteration is `codecs.ecsq_1d`'s (same start, same cost), with
    an exact interval assignment in place of the cost matrix."""
    values = np.sort(np.random.default_rng(2).standard_normal(4000))
    k, rate = 24, 0.01
    variance = float(np.var(values))
    centroids, _ = _lossy._ecsq_iterate(values, k, rate * variance)
    want, labels = codecs.ecsq_1d(values, k, rate)
    used = np.bincount(labels, minlength=k) > 0
    np.testing.assert_allclose(np.sort(centroids), np.sort(want[used]), atol=1e-6)


# Output drift allowed on the Keras model: its Laplacian kernels drift 0.011-0.012
# at 8-bit k-means each, so the default 0.02 leaves the search no step below 8 bits;
# at 0.1 it takes 6-7 bits or the ECSQ points near them.
KERAS_TOLERANCE = 0.1


def _keras_model() -> bytes:
    """An MLP whose kernels are Laplacian (heavy-tailed, as trained kernels are;
    on uniform random-init weights a uniform quantizer is already k-means'
    optimum and ECSQ has nothing to gain)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((128,)),
            keras.layers.Dense(256, activation="relu", name="fc1"),
            keras.layers.Dense(128, activation="relu", name="fc2"),
            keras.layers.Dense(10, name="out"),
        ]
    )
    rng = np.random.default_rng(0)
    for layer in model.layers:
        k, b = layer.get_weights()
        k = rng.laplace(size=k.shape) / np.sqrt(k.shape[0])
        layer.set_weights([k.astype(np.float32), b])
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def test_compress_with_ecsq_picks_them_and_holds_its_tolerance():
    data = _keras_model()
    packed = tfedge.compress(
        data, method="ecsq", tolerance=KERAS_TOLERANCE, progress=False
    )
    r = packed.report
    assert r.drift is not None and r.drift == r.search_drift <= r.tolerance
    assert r.held_out_drift is not None and r.held_out_drift <= r.tolerance
    chosen = [t.quantizer for t in r.tensors if t.quantizer]
    assert any(q.startswith("ecsq") for q in chosen), chosen
    for t in r.tensors:
        assert t.weight_error <= _lossy.MAX_WEIGHT_ERROR, t
    # The report's drift is that of the written file (compress expands it and
    # checks every tensor against the values the search measured).
    assert len(packed) < len(data)
    # k-means alone never reports an ECSQ coding.
    kmeans = tfedge.compress(
        data, method="kmeans", tolerance=KERAS_TOLERANCE, progress=False
    ).report
    assert kmeans.tensors and not any(
        t.quantizer.startswith("ecsq") for t in kmeans.tensors
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(method="lloyd"), "Expected `method`"),
        (dict(method="ecsq", bits=4), "bits=None"),
        (dict(method="ecsq", target="tflm"), "target='tfedge'"),
    ],
    ids=["unknown", "with-bits", "tflm"],
)
def test_bad_method_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tfedge.compress(b"not read before the options are checked", **kwargs)


# A float32 published model (tests/corpus/manifest.json) whose default lossy packing
# takes a few seconds.
CORPUS_MODEL = "mediapipe-hand_recrop"


def test_published_model_with_ecsq():
    root = Path(
        os.environ.get("TFEDGE_CORPUS_DIR", Path.home() / ".cache/tfedge/corpus")
    )
    path = root / f"{CORPUS_MODEL}.tflite"
    if not path.exists():
        pytest.skip(f"corpus not fetched: run `python scripts/corpus.py` ({path})")
    original = path.read_bytes()
    packed = tfedge.compress(original, method="ecsq", progress=False)
    r = packed.report
    assert len(bytes(packed)) < len(original)
    assert r.drift is not None and r.drift == r.search_drift <= r.tolerance
    assert r.held_out_drift is not None and r.held_out_drift <= r.tolerance
    assert any(t.quantizer.startswith("ecsq") for t in r.tensors)
    for t in r.tensors:
        assert t.weight_error <= _lossy.MAX_WEIGHT_ERROR, t


def test_ladder_points_a_rival_dominates_are_not_sized():
    ttype, values = TENSORS["gauss"]
    ladder = _ladder(ttype, values)
    assert [o.label for o in _lossy.ecsq_options(ttype, values, [])] == [
        o.label for o in ladder
    ]
    kmeans = [
        _lossy.shared_option(ttype, values, _encode.share(values, b))
        for b in range(3, 9)
    ]
    kept = _lossy.ecsq_options(ttype, values, kmeans)
    for o in kept:
        assert not any(
            r.weight_error <= o.weight_error and r.payload_bytes <= o.payload_bytes
            for r in kmeans
        ), o.label
    # A rival exact and smaller than any payload leaves nothing to size.
    free = _lossy.Option("free", 1, 0, 0.0, values.view(np.uint8))
    assert _lossy.ecsq_options(ttype, values, [free]) == []


def test_cli_compress_method_ecsq(tmp_path):
    from tests.cli.test_main import run_cli

    model, out, report = (tmp_path / f for f in ("m.tflite", "p.tflite", "r.json"))
    model.write_bytes(_keras_model())
    r = run_cli(
        "compress",
        str(model),
        "-o",
        str(out),
        "--method",
        "ecsq",
        "--tolerance",
        str(KERAS_TOLERANCE),
        "--report",
        str(report),
    )
    assert r.returncode == 0, r.stderr
    rows = json.loads(report.read_text())["tensors"]
    assert any(t["quantizer"].startswith("ecsq") for t in rows)
    r = run_cli("compress", str(model), "-o", str(out), "--method", "lloyd")
    assert r.returncode == 1 and "--method" in r.stderr
