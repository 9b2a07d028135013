"""The lossy search through `tfedge.compress`: what it measures is what it writes, on
inputs the model takes, with held-out samples, a blind-check refusal, a per-tensor
weight error bound, exact biases, per-channel scaled sharing and mixed bits."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

import tfedge
from tests.pack.test_compress import MODELS
from tfedge.pack import _lossy
from tfedge.pack._compress import (
    FRESH_SAMPLES,
    GROW_HELD_OUT,
    GROW_WHEN_RESERVE,
    UNHELD_MARGIN,
    _Candidate,
    _judged,
    _Measured,
)
from tfedge.pack._report import TensorReport
from tfedge.pack._verify import (
    ModelRunner,
    drift,
    drift_and_errors,
    make_sample_sets,
)
from tfedge.tflite import read, write

RUNNABLE = [m for m, runnable in MODELS if runnable]
# Stage names the report times (seconds per stage, wall clock and CPU).
STAGES = {"reading", "encoding", "samples", "sensitivity", "search", "writing"}
# Per-channel codebooks of the unlike-channels model drift 0.03 at 6 bits; a tolerance
# above that leaves the search room below the 7-8 bit widths.
UNLIKE_CHANNELS_TOLERANCE = 0.05
# A pixel-normalised input, (x - 127.5) / 127.5 over [0, 255], spans [-1, 1].
NORMALISED_RANGE = (-1.0, 1.0)
# int8 inputs are generated over their whole quantized range: with 16 samples of a
# few hundred elements each, both ends are within this of the int8 limits.
INT8_RANGE_SLACK = 8
# The report's note gives the reserve to 3 significant digits.
NOTE_ROUNDING = 5e-3
# Seeds of fresh input sets, none of them the search's (0) or its held-out set's (1).
FRESH_SEEDS = (10, 11, 12, 13)
# One representative sample scaled this much sets the scale of every output...
OUTLIER_FACTOR = 30.0
# ...so the reserve must grow by at least this factor over alike samples' (by about
# OUTLIER_FACTOR: a fresh set without such a sample has that much smaller a scale).
OUTLIER_RESERVE = 5.0
# The wake-word corpus models hold int8 kernels of a few thousand weights: a weight
# error of 1.0 would mean a kernel zeroed, the failure these tests guard against.


def _keras():
    import keras

    keras.utils.set_random_seed(0)
    return keras


def _convert(model) -> bytes:
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


@pytest.mark.parametrize("name", RUNNABLE)
def test_written_drift_is_the_searched_drift(tflite_model, name):
    packed = tfedge.compress(tflite_model(name))
    r = packed.report
    if r.drift is None:  # nothing lossy to verify
        assert r.lossless
        return
    # By construction: the written file gives exactly the outputs the search measured.
    assert r.drift == r.search_drift
    assert r.drift <= r.tolerance
    assert r.held_out_drift is not None and r.held_out_drift <= r.tolerance


def _reserve(report) -> float:
    """The reserve the report's note says the search applied."""
    note = next(n for n in report.notes if "reserve" in n)
    return float(re.search(r"reserve ([0-9.e+]+|inf)x", note).group(1))


@pytest.mark.parametrize("name", ["dense_f32", "conv_f32"])
def test_search_holds_the_estimated_fresh_drift(tflite_model, name):
    r = tfedge.compress(tflite_model(name)).report
    s, h = r.search_drift, r.held_out_drift
    assert s is not None and h is not None
    # The largest drift measured times the reserve the note names (the estimate for
    # FRESH_SAMPLES fresh inputs) is within the tolerance.
    reserve = _reserve(r)
    assert reserve >= 1.0
    assert max(s, h) * reserve <= r.tolerance * (1 + NOTE_ROUNDING)
    assert any(f"{FRESH_SAMPLES} fresh inputs" in n for n in r.notes), r.notes


@pytest.mark.parametrize("name", ["dense_f32", "conv_f32"])
def test_written_file_holds_the_tolerance_on_fresh_inputs(tflite_model, name):
    original = tflite_model(name)
    packed = tfedge.compress(original)
    runner, written = ModelRunner(original), ModelRunner(tfedge.expand(packed))
    # Sets of FRESH_SAMPLES inputs drawn as the search's are, from seeds it never used.
    for seed in FRESH_SEEDS:
        fresh = make_sample_sets(runner, None, FRESH_SAMPLES, seed).search
        assert drift(runner.run(fresh), written.run(fresh)) <= packed.report.tolerance


def test_an_outlier_sample_gets_a_larger_reserve(tflite_model):
    model = tflite_model("dense_f32")
    x = np.random.default_rng(5).standard_normal((32, 32)).astype(np.float32)
    alike = tfedge.compress(model, representative_data=x)
    outlier = x.copy()
    outlier[0] *= OUTLIER_FACTOR  # its outputs are the largest by far
    spread = tfedge.compress(model, representative_data=outlier)
    # The other samples' outputs are far below the one that sets the drift's scale: a
    # fresh set without such a sample has a far smaller denominator.
    assert _reserve(spread.report) > OUTLIER_RESERVE * _reserve(alike.report)
    assert len(spread) > len(alike)


def _runs(*samples) -> list:
    """`ModelRunner.run`-shaped outputs: one entry, one float output per sample."""
    return [[[np.asarray(v, np.float64)] for v in samples]]


# (reference samples, output samples, drift)
DRIFTS = [
    ([[1.0, -2.0], [0.5, 0.5]], [[1.0, -2.0], [0.5, 0.5]], 0.0),
    ([[1.0, -2.0], [0.5, 0.5]], [[1.1, -2.0], [0.5, 0.3]], 0.2 / 2.0),
    # NaN on a later sample only is no less a failure than on the first.
    ([[1.0, 2.0], [1.0, 2.0]], [[1.0, 2.0], [1.0, np.nan]], np.inf),
    ([[1.0, 2.0], [1.0, 2.0]], [[1.0, np.inf], [1.0, 2.0]], np.inf),
    # The same non-finite value on both sides is no error.
    ([[1.0, -np.inf], [np.nan, 2.0]], [[1.0, -np.inf], [np.nan, 2.0]], 0.0),
    ([[1.0, -np.inf], [np.nan, 2.0]], [[1.0, -np.inf], [0.0, 2.0]], np.inf),
]


@pytest.mark.parametrize(("want", "got", "expected"), DRIFTS)
def test_drift_of_outputs(want, got, expected):
    assert drift(_runs(*want), _runs(*got)) == pytest.approx(expected)
    both, (per_sample,) = drift_and_errors(_runs(*want), _runs(*got))
    assert both == drift(_runs(*want), _runs(*got))
    if np.isfinite(expected):
        # The drift is the largest per-sample error over the largest scale.
        err, scale = per_sample
        assert np.max(err) / np.max(scale) == pytest.approx(expected)


def _grown(report) -> tuple[int, float] | None:
    """(samples added, the reserve that asked for them) from the report's note."""
    for n in report.notes:
        m = re.search(r"searched again with (\d+) more .* by the ([0-9.e+]+|inf)x", n)
        if m:
            return int(m.group(1)), float(m.group(2))
    return None


def test_a_large_reserve_searches_again_with_more_held_out_samples(tflite_model):
    # conv_f32's first search turns a combination down by a reserve over
    # GROW_WHEN_RESERVE; the second search holds the written file to the drift of
    # the grown held-out set, exactly as the report says.
    model = tflite_model("conv_f32")
    packed = tfedge.compress(model, num_samples=8)
    more, reserve = _grown(packed.report)
    assert more == GROW_HELD_OUT * 8 and reserve > GROW_WHEN_RESERVE
    runner = ModelRunner(model)
    sets = make_sample_sets(runner, None, 8, 0, more)
    held = [h + s for h, s in zip(sets.held_out, sets.spare, strict=True)]
    got = ModelRunner(tfedge.expand(packed)).run(held)
    assert drift(runner.run(held), got) == packed.report.held_out_drift
    assert packed.report.held_out_drift <= packed.report.tolerance


def test_representative_data_lends_its_spare_samples(tflite_model):
    model = tflite_model("conv_f32")
    x = np.random.default_rng(4).standard_normal((80, 12, 12, 3)).astype(np.float32)
    runner = ModelRunner(model)
    sets = make_sample_sets(runner, x, 8, spare=GROW_HELD_OUT * 8)
    assert len(sets.search[0]) == len(sets.held_out[0]) == 8
    # The spare samples are those after the first 2 x num_samples, as many as asked.
    np.testing.assert_array_equal(sets.spare[0][0][0], x[16:17])
    assert len(sets.spare[0]) == GROW_HELD_OUT * 8
    # Samples alike: a small reserve, and the first search stands.
    alike = tfedge.compress(model, representative_data=x, num_samples=8)
    assert _grown(alike.report) is None
    # One sample whose outputs are far larger than the rest's: a large reserve.
    x[0] *= OUTLIER_FACTOR
    packed = tfedge.compress(model, representative_data=x, num_samples=8)
    assert _grown(packed.report)[0] == GROW_HELD_OUT * 8
    # Data with none to spare: the first search stands.
    exact = tfedge.compress(model, representative_data=x[:16], num_samples=8)
    assert _grown(exact.report) is None


def _errors(err, scale=None) -> list[tuple[np.ndarray, np.ndarray]]:
    err = np.asarray(err, np.float64)
    scale = np.ones_like(err) if scale is None else np.asarray(scale, np.float64)
    return [(err, scale)]


_N = 32
_RISING = np.linspace(0.0, 1.0, _N)
# Per-sample errors (one output, 16 + 16 samples) and scales, and the bounds of the
# judged drift over the largest measured (0.01 in each): (low, high) reserve.
SYNTHETIC = [
    # Tightly concentrated errors and scales: a few percent.
    ("concentrated", 0.0098 + 0.0002 * _RISING, None, 1.0, 1.05),
    # Errors spread evenly: more, but well under the old fixed 1 / 0.6.
    ("spread", 0.005 + 0.005 * _RISING, None, 1.05, 1.5),
    # One sample's error 5 times the others': a heavy tail, more of its like (and
    # larger) among fresh inputs.
    ("one error outlier", np.r_[0.002 + 0.0001 * _RISING[1:], 0.01], None, 1.3, np.inf),
    # One sample's output sets the scale: fresh sets without it drift ~20 times more.
    (
        "one scale outlier",
        0.0098 + 0.0002 * _RISING,
        np.r_[np.full(_N - 1, 0.05), 1.0],
        15.0,
        np.inf,
    ),
]


@pytest.mark.parametrize(
    ("err", "scale", "low", "high"),
    [s[1:] for s in SYNTHETIC],
    ids=[s[0] for s in SYNTHETIC],
)
def test_reserve_from_per_sample_drifts(err, scale, low, high):
    errors = _errors(err, scale)
    measured = _Measured(0.01, 0.01, errors)
    assert low <= _judged(measured) / 0.01 <= high


# (search drift, held-out drift or None, per-sample errors, the judged drift)
JUDGED = [
    (0.01, None, [], 0.01 / UNHELD_MARGIN),  # nothing held out
    (0.01, 0.01, _errors([0.01] * 4), 0.01 / UNHELD_MARGIN),  # too few for a tail
    (0.0, 0.0, _errors([0.0] * _N), 0.0),  # exact
    # Quantized outputs: a few samples moved by one step, the rest not at all: no
    # spread to extrapolate (the scale is the same on every sample).
    (0.01, 0.01, _errors(np.r_[np.full(3, 0.01), np.zeros(_N - 3)]), 0.01),
    (0.01, 0.02, _errors(np.full(_N, 0.02)), 0.02),  # all alike: the measured drift
]


@pytest.mark.parametrize(("search", "held", "errors", "judged"), JUDGED)
def test_judged_drift(search, held, errors, judged):
    assert _judged(_Measured(search, held, errors)) == pytest.approx(judged)


def _option(kind: str, weight_error: float) -> _lossy.Option:
    return _lossy.Option("x", 4, 1, weight_error, np.zeros(1, np.uint8), kind=kind)


# (measured (weight error, drift) points, an option's weight error, its prediction)
PREDICTED = [
    ([(0.01, 0.1)], 0.005, 0.05),  # below the finest: proportional
    ([(0.01, 0.1)], 0.02, 0.2),  # one point: proportional beyond it too
    ([(0.01, 0.1), (0.1, 0.2)], 0.055, 0.15),  # between two points: linear
    ([(0.01, 0.1), (0.1, 0.2)], 0.2, 0.4),  # past the coarsest: proportional to it
]


@pytest.mark.parametrize(("points", "weight_error", "want"), PREDICTED)
def test_predicted_drift_interpolates_measured_points(points, weight_error, want):
    row = TensorReport(
        subgraph=0, tensor=0, name="w", shape=[4], dtype="FLOAT32", original_bytes=16
    )
    cand = _Candidate(1, 0, np.zeros(4, np.float32), row)
    cand.sensitivity["tensor"] = points
    assert cand.predicted(_option("tensor", weight_error)) == pytest.approx(want)
    assert cand.predicted(_option("channel", weight_error)) == 0.0  # not measured
    assert cand.predicted(None) == 0.0


def test_weight_error_bounded_and_small_tensors_exact(tflite_model):
    packed = tfedge.compress(tflite_model("conv_f32"))
    rows = packed.report.tensors
    assert any(t.weight_error > 0 for t in rows), "something must be shared"
    for t in rows:
        assert t.weight_error <= _lossy.MAX_WEIGHT_ERROR, t
        n = int(np.prod(t.shape)) if t.shape else 1
        if len([d for d in t.shape if d > 1]) < 2 or n < _lossy.LOSSY_MIN_ELEMENTS:
            assert t.weight_error == 0.0, t


def _saturated_model() -> bytes:
    """A classifier whose sigmoid output is exactly 0 on every input."""
    keras = _keras()
    model = keras.Sequential(
        [
            keras.Input((32,)),
            keras.layers.Dense(64, activation="relu", name="fc"),
            keras.layers.Dense(1, activation="sigmoid", name="score"),
        ]
    )
    k, _ = model.get_layer("score").get_weights()
    model.get_layer("score").set_weights([k * 0, np.full(1, -1e4, np.float32)])
    return _convert(model)


def test_blind_check_packs_losslessly_and_asks_for_data():
    with pytest.warns(UserWarning, match="representative_data"):
        packed = tfedge.compress(_saturated_model())
    assert packed.report.lossless
    assert all(t.weight_error == 0.0 for t in packed.report.tensors)
    assert any("do not change" in n for n in packed.report.notes)


def _two_branch_model() -> bytes:
    """Two equal Dense kernels side by side; one branch reaches the output scaled by
    1000x less, so its weights barely move the drift."""
    keras = _keras()
    x = keras.Input((64,))
    loud = keras.layers.Dense(64, name="loud")(x)
    quiet = keras.layers.Dense(64, name="quiet")(x)
    quiet = keras.layers.Rescaling(1e-3)(quiet)
    out = keras.layers.Concatenate()([loud, quiet])
    return _convert(keras.Model(x, out))


def test_bits_follow_measured_sensitivity():
    packed = tfedge.compress(_two_branch_model(), tolerance=0.01)
    rows = {t.name: t for t in packed.report.tensors if len(t.shape) == 2}
    loud = next(t for n, t in rows.items() if "loud" in n)
    # The converter folds the rescaling into the quiet kernel (named after it).
    (quiet,) = [t for n, t in rows.items() if "loud" not in n]
    # Same size and distribution: the insensitive one takes the coarser coding.
    assert quiet.packed_bytes < loud.packed_bytes
    assert quiet.weight_error > loud.weight_error
    assert packed.report.drift <= 0.01


def _unlike_channels_model() -> bytes:
    """A convolution whose 32 output channels span ranges 1000x apart, 576 weights
    each, and a per-channel scale after it that undoes the ranges (as a batch norm
    folded into the next layer does): every channel's relative error reaches the
    output alike."""
    keras = _keras()
    model = keras.Sequential(
        [
            keras.Input((8, 8, 64)),
            keras.layers.Conv2D(32, 3, name="conv"),
            keras.layers.DepthwiseConv2D(1, name="rescale"),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )
    rng = np.random.default_rng(0)
    scale = np.exp(rng.uniform(np.log(1e-3), 0.0, 32))
    conv = model.get_layer("conv")
    k, b = conv.get_weights()
    conv.set_weights([(rng.standard_normal(k.shape) * scale).astype(np.float32), b])
    rescale = model.get_layer("rescale")
    k, b = rescale.get_weights()
    rescale.set_weights([(1 / scale).reshape(k.shape).astype(np.float32), b])
    return _convert(model)


def test_per_channel_scaling_for_channels_of_unlike_range():
    original = _unlike_channels_model()
    # One codebook for all channels drifts 0.6 even at 8 bits (the small channels
    # lose every level); per-channel codebooks reach 0.03 at 6 bits.
    packed = tfedge.compress(original, tolerance=UNLIKE_CHANNELS_TOLERANCE)
    (kernel,) = [t for t in packed.report.tensors if t.shape == [32, 3, 3, 64]]
    assert "channel_codebook" in kernel.encoding, kernel
    # Each channel gets its own levels: a small error at few bits per weight.
    assert kernel.bits <= _lossy.CHANNEL_MAX_BITS
    assert kernel.weight_error <= _lossy.MAX_WEIGHT_ERROR
    assert packed.report.drift <= packed.report.tolerance


def _support_metadata(mean: float, std: float) -> bytes:
    """A TFLite Support ModelMetadata flatbuffer (metadata_schema.fbs) whose one input
    has NormalizationOptions(mean, std)."""
    import flatbuffers

    b = flatbuffers.Builder(256)

    def floats(values):
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependFloat32(v)
        return b.EndVector()

    def table(fields):  # fields: [(slot, kind, value)]
        b.StartObject(max(slot for slot, _, _ in fields) + 1)
        for slot, kind, value in fields:
            if kind == "offset":
                b.PrependUOffsetTRelativeSlot(slot, value, 0)
            else:
                b.PrependUint8Slot(slot, value, 0)
        return b.EndObject()

    def vector(offsets):
        b.StartVector(4, len(offsets), 4)
        for o in reversed(offsets):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    mean_v, std_v = floats([mean]), floats([std])
    options = table([(0, "offset", mean_v), (1, "offset", std_v)])
    unit = table([(0, "u8", 1), (1, "offset", options)])  # NormalizationOptions = 1
    units = vector([unit])
    tensor = table([(4, "offset", units)])  # TensorMetadata.process_units
    inputs = vector([tensor])
    subgraph = table([(2, "offset", inputs)])  # input_tensor_metadata
    subgraphs = vector([subgraph])
    root = table([(3, "offset", subgraphs)])  # ModelMetadata.subgraph_metadata
    b.Finish(root, file_identifier=b"M001")
    return bytes(b.Output())


def _with_metadata(model_bytes: bytes, meta: bytes) -> bytes:
    from tfedge.tflite import new_buffer, schema

    model = read(model_bytes)
    model.buffers.append(new_buffer(meta))
    m = schema().MetadataT()
    m.name = "TFLITE_METADATA"
    m.buffer = len(model.buffers) - 1
    model.metadata = list(model.metadata or []) + [m]
    return write(model)


def test_inputs_follow_support_metadata_normalisation(tflite_model):
    model = _with_metadata(tflite_model("dense_f32"), _support_metadata(127.5, 127.5))
    search, held, where, _ = make_sample_sets(ModelRunner(model), None, 8)
    assert "metadata" in where
    for samples in (search, held):
        x = np.concatenate([s[0].reshape(-1) for s in samples[0]])
        assert NORMALISED_RANGE[0] <= x.min() and x.max() <= NORMALISED_RANGE[1]
        assert x.min() < -0.9 and x.max() > 0.9  # the whole range, not a corner
    packed = tfedge.compress(model)
    assert any("metadata" in n for n in packed.report.notes)


def test_int8_inputs_cover_their_quantized_range(tflite_model):
    search = make_sample_sets(
        ModelRunner(tflite_model("conv_int8_io")), None, 16
    ).search
    x = np.concatenate([s[0].reshape(-1) for s in search[0]])
    assert x.dtype == np.int8
    assert x.min() <= -128 + INT8_RANGE_SLACK and x.max() >= 127 - INT8_RANGE_SLACK


def test_representative_data_alternates_held_out_samples(tflite_model):
    model = tflite_model("dense_f32")
    x = np.random.default_rng(3).standard_normal((10, 32)).astype(np.float32)
    packed = tfedge.compress(model, representative_data=x, num_samples=5)
    assert packed.report.held_out_drift is not None
    assert packed.report.held_out_drift <= packed.report.tolerance
    # The held-out drift is the drift on exactly the odd samples.
    runner = ModelRunner(model)
    held = make_sample_sets(runner, x, 5).held_out
    got = ModelRunner(tfedge.expand(packed)).run(held)
    assert drift(runner.run(held), got) == packed.report.held_out_drift
    one = tfedge.compress(model, representative_data=x[:1])
    assert one.report.held_out_drift is None


def test_report_times_each_stage(tflite_model):
    packed = tfedge.compress(tflite_model("conv_f32"))
    r = packed.report
    assert STAGES <= set(r.stage_seconds) and STAGES <= set(r.stage_cpu_seconds)
    assert all(v >= 0 for v in r.stage_seconds.values())
    d = json.loads(r.to_json())
    assert set(d["stage_seconds"]) == set(r.stage_seconds)
    assert "seconds:" in r.table()


# Published models (tests/corpus/manifest.json, fetched by scripts/corpus.py): a float32
# landmark model and an int8 wake-word model whose outputs sit near 0 on generated
# inputs.
CORPUS = ["mediapipe-hand_recrop", "pymicro_wakeword-hey_mycroft"]


def _corpus_model(model_id: str) -> bytes:
    root = Path(
        os.environ.get("TFEDGE_CORPUS_DIR", Path.home() / ".cache/tfedge/corpus")
    )
    path = root / f"{model_id}.tflite"
    if not path.exists():
        pytest.skip(f"corpus not fetched: run `python scripts/corpus.py` ({path})")
    return path.read_bytes()


@pytest.mark.parametrize("model_id", CORPUS)
def test_published_model_default_lossy(model_id):
    original = _corpus_model(model_id)
    packed = tfedge.compress(original)
    r = packed.report
    assert len(bytes(packed)) <= len(original)
    for t in r.tensors:
        assert t.weight_error <= _lossy.MAX_WEIGHT_ERROR, t
    if r.drift is not None:
        assert r.drift == r.search_drift <= r.tolerance
        assert r.held_out_drift is None or r.held_out_drift <= r.tolerance
