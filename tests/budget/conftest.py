"""A tiny trained classifier, its .tflite, and eval data, built once per session."""

from __future__ import annotations

import contextlib
import io
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

# 3 classes from 12 features, linearly separable with margin: a 12-48-24-3 MLP learns
# it in a few epochs, and its kernels (576, 1152 weights) are large enough to pack.
FEATURES, CLASSES, SAMPLES = 12, 3, 384


def make_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((SAMPLES, FEATURES)).astype(np.float32)
    w = np.random.default_rng(123).standard_normal((FEATURES, CLASSES))
    return x, np.argmax(x @ w, axis=-1).astype(np.int64)


def make_model(train: bool = True):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(48, activation="relu", name="fc1"),
            keras.layers.Dense(24, activation="relu", name="fc2"),
            keras.layers.Dense(CLASSES, name="out"),
        ],
        name="tiny",
    )
    if train:
        x, y = make_data()
        model.compile(
            "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
        model.fit(x, y, epochs=15, batch_size=64, verbose=0, shuffle=False)
    return model


@pytest.fixture(scope="session")
def tiny():
    """(trained Keras model, its .tflite bytes, eval data (x, y))."""
    import tensorflow as tf

    model = make_model()
    with contextlib.redirect_stdout(io.StringIO()):
        data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    return model, data, make_data(seed=1)
