"""`representative_data` in every accepted form, through `tfedge.compress`.

Equivalent forms of the same data must give the same packed bytes and the same
measured drift as a plain array; data that does not fit the model's inputs fails in
tfedge with plain numbers in the message, before any interpreter sees it.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import tfedge
from tfedge.pack._compress import GROW_HELD_OUT

# Samples per compress call: enough to exercise splitting, few enough to stay fast.
NUM_SAMPLES = 4
# A numpy scalar repr such as np.int32(1) or np.float64(2.0) in an error message.
NUMPY_REPR = re.compile(r"np\.\w+\(")

# The dense_f32 fixture: one input of shape (None, 32), signature name
# `keras_tensor`, tensor name `serving_default_keras_tensor:0`.
_X = np.random.default_rng(1).standard_normal((NUM_SAMPLES, 32)).astype(np.float32)
_Y = np.arange(NUM_SAMPLES)


def _gen_lists():
    for row in _X:
        yield [row[None]]


def _gen_tuples():
    for row in _X:
        yield (row[None],)


# Each form holds the same NUM_SAMPLES samples as `_X`.
SINGLE_INPUT_FORMS = {
    "array": lambda: _X,
    "float64_array": lambda: _X.astype(np.float64),
    "xy_tuple": lambda: (_X, _Y),
    "x_tuple": lambda: (_X,),
    "xyw_tuple": lambda: (_X, _Y, np.ones(NUM_SAMPLES)),
    "list_of_samples": lambda: list(_X),
    "list_of_batches": lambda: [_X[:2], _X[2:]],
    "dict_signature_name": lambda: {"keras_tensor": _X},
    "dict_tensor_name": lambda: {"serving_default_keras_tensor:0": _X},
    "iterable_of_dicts": lambda: [{"keras_tensor": r} for r in _X],
    "iterable_of_xy": lambda: [(_X[:3], _Y[:3]), (_X[3:], _Y[3:])],
    "generator": lambda: (r for r in _X),
    "tflite_callable_lists": lambda: _gen_lists,
    "tflite_callable_tuples": lambda: _gen_tuples,
    "stacked_samples": lambda: _X[:, None, :],
}


def _pack(model: bytes, data) -> tfedge.Packed:
    return tfedge.compress(model, representative_data=data, num_samples=NUM_SAMPLES)


@pytest.fixture(scope="module")
def reference(tflite_model):
    return _pack(tflite_model("dense_f32"), _X)


def test_reference_depends_on_the_data(tflite_model, reference):
    """Guards the equality tests below: other data measures another drift."""
    generated = _pack(tflite_model("dense_f32"), None)
    assert generated.report.drift != reference.report.drift


@pytest.mark.parametrize(
    "form", SINGLE_INPUT_FORMS.values(), ids=list(SINGLE_INPUT_FORMS)
)
def test_single_input_forms_match_the_array(tflite_model, reference, form):
    packed = _pack(tflite_model("dense_f32"), form())
    assert packed.report.drift == reference.report.drift
    assert bytes(packed) == bytes(reference)


def test_tf_data_dataset_of_xy_batches(tflite_model, reference):
    tf = pytest.importorskip("tensorflow")
    ds = tf.data.Dataset.from_tensor_slices((_X, _Y)).batch(3)
    packed = _pack(tflite_model("dense_f32"), ds)
    assert packed.report.drift == reference.report.drift


def test_generator_is_read_only_as_far_as_needed(tflite_model):
    taken = []

    def endless():
        # Distinct samples: outputs that never move would make the drift check blind.
        while True:
            i = len(taken) % len(_X)
            taken.append(1)
            yield [_X[i : i + 1]]

    _pack(tflite_model("dense_f32"), endless)
    # Search samples, as many held out, then the spare held-out samples.
    assert len(taken) == (2 + GROW_HELD_OUT) * NUM_SAMPLES


# A model with two inputs, one named `x` and one named `input_x`.

_A = np.random.default_rng(2).standard_normal((NUM_SAMPLES, 6)).astype(np.float32)
_B = np.random.default_rng(3).standard_normal((NUM_SAMPLES, 5)).astype(np.float32)


@pytest.fixture(scope="module")
def two_inputs() -> bytes:
    """Inputs `input_x` (None, 6) and `x` (None, 5): a key `x` must not feed
    `input_x` although the one name ends with the other."""
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)

    class TwoInputs(tf.Module):
        def __init__(self):
            super().__init__()
            self.wa = tf.Variable(rng.standard_normal((6, 64)).astype(np.float32))
            self.wb = tf.Variable(rng.standard_normal((5, 64)).astype(np.float32))
            self.wo = tf.Variable(rng.standard_normal((64, 8)).astype(np.float32))

        @tf.function(
            input_signature=[
                tf.TensorSpec((None, 6), tf.float32, name="input_x"),
                tf.TensorSpec((None, 5), tf.float32, name="x"),
            ]
        )
        def __call__(self, input_x, x):
            h = tf.nn.relu(tf.matmul(input_x, self.wa) + tf.matmul(x, self.wb))
            return {"y": tf.matmul(h, self.wo)}

    m = TwoInputs()
    return tf.lite.TFLiteConverter.from_concrete_functions(
        [m.__call__.get_concrete_function()], m
    ).convert()


def _two_input_order(model: bytes) -> list[str]:
    """The model's inputs in subgraph order (TFLite may reorder them)."""
    it = tfedge.Interpreter(model_content=model)
    return [d["name"] for d in it.get_input_details()]


def _ordered(model: bytes, a, b) -> list:
    names = _two_input_order(model)
    return [a, b] if names[0].endswith("input_x:0") else [b, a]


def _gen_two(model):
    def gen():
        for i in range(NUM_SAMPLES):
            yield _ordered(model, _A[i : i + 1], _B[i : i + 1])

    return gen


TWO_INPUT_FORMS = {
    "dict_signature_names": lambda m: {"x": _B, "input_x": _A},
    "dict_tensor_names": lambda m: {
        "serving_default_input_x:0": _A,
        "serving_default_x:0": _B,
    },
    "list_in_input_order": lambda m: _ordered(m, _A, _B),
    "xy_with_inputs_tuple": lambda m: (tuple(_ordered(m, _A, _B)), _Y),
    "iterable_of_lists": lambda m: [
        _ordered(m, _A[i], _B[i]) for i in range(NUM_SAMPLES)
    ],
    "tflite_callable": _gen_two,
    "iterable_of_dicts": lambda m: [
        {"input_x": _A[i], "x": _B[i]} for i in range(NUM_SAMPLES)
    ],
}


@pytest.mark.parametrize("form", TWO_INPUT_FORMS.values(), ids=list(TWO_INPUT_FORMS))
def test_two_input_forms_agree(two_inputs, form):
    want = _pack(two_inputs, {"input_x": _A, "x": _B})
    got = _pack(two_inputs, form(two_inputs))
    assert got.report.drift == want.report.drift
    assert bytes(got) == bytes(want)


def test_two_input_data_is_used(two_inputs):
    swapped = {"input_x": _A + 1, "x": _B}
    assert (
        _pack(two_inputs, swapped).report.drift
        != _pack(two_inputs, {"input_x": _A, "x": _B}).report.drift
    )


# Data that does not fit: (model fixture, data, words the message must hold).

BAD_DATA = {
    "wrong_rank": ("dense_f32", [np.zeros((2, 3, 4))], ["(2, 3, 4)", "rank 2"]),
    "wrong_width": ("dense_f32", np.zeros((3, 31)), ["(1, 31)", "(any, 32)", "axis 1"]),
    "strings": ("dense_f32", np.array([["a"] * 32]), ["<U1", "float32"]),
    "empty": ("dense_f32", np.zeros((0, 32)), ["at least one"]),
    "unknown_key": ("dense_f32", {"x": _X}, ["'x'", "'keras_tensor'"]),
    "extra_key": (
        "dense_f32",
        {"keras_tensor": _X, "mask": _X},
        ["'mask'", "'serving_default_keras_tensor:0'"],
    ),
    "tuple_too_long": ("dense_f32", (_X, _Y, _Y, _Y), ["4 items", "list"]),
    "not_data": ("dense_f32", 3.5, ["float"]),
    "callable_not_iterable": ("dense_f32", lambda: 7, ["int"]),
    "key_suffix_is_not_a_name": (
        "two_inputs",
        {"x": _B, "_x": _A},
        ["'_x'", "'input_x'", "'serving_default_input_x:0'"],
    ),
    "missing_input": ("two_inputs", {"x": _B}, ["does not name", "'input_x'"]),
    "two_inputs_as_tuple": ("two_inputs", (_A, _B), ["2 inputs", "list [x1, x2]"]),
    "sample_counts_differ": ("two_inputs", {"x": _B[:2], "input_x": _A}, ["2", "4"]),
    "signature_keys": ("two_signatures", {"head_c": _X}, ["'head_a'", "'head_c'"]),
}


@pytest.mark.parametrize("case", BAD_DATA.values(), ids=list(BAD_DATA))
def test_bad_data_is_explained_in_plain_numbers(tflite_model, two_inputs, case):
    name, data, words = case
    model = two_inputs if name == "two_inputs" else tflite_model(name)
    with pytest.raises((ValueError, TypeError)) as info:
        _pack(model, data)
    message = str(info.value)
    for word in words:
        assert word in message
    assert not NUMPY_REPR.search(message), message


def test_int_input_takes_ids_not_floats():
    tf = pytest.importorskip("tensorflow")

    class Embed(tf.Module):
        def __init__(self):
            super().__init__()
            self.table = tf.Variable(
                np.random.default_rng(0).standard_normal((50, 32)).astype(np.float32)
            )

        @tf.function(input_signature=[tf.TensorSpec((None, 4), tf.int32, name="ids")])
        def __call__(self, ids):
            return {"y": tf.reduce_sum(tf.gather(self.table, ids), axis=1)}

    m = Embed()
    model = tf.lite.TFLiteConverter.from_concrete_functions(
        [m.__call__.get_concrete_function()], m
    ).convert()
    ids = np.arange(16).reshape(4, 4)
    assert _pack(model, ids).report.drift is not None
    with pytest.raises(ValueError, match="pass integers"):
        _pack(model, ids.astype(np.float32))
    with pytest.raises(ValueError, match=r"from 0 to 4294967296, outside int32"):
        _pack(model, np.full((1, 4), 2**32, np.int64) * np.array([0, 1, 1, 1]))
