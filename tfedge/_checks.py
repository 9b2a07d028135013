"""Small helpers shared across tfedge's packages (numpy only, no TensorFlow or
Keras)."""

from __future__ import annotations

import numbers

import numpy as np


def check_int(value, name: str, minimum: int) -> int:
    """`value` as an int, or a Keras-style ValueError when it is not an
    integer >= minimum."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
    ):
        raise ValueError(
            f"Expected `{name}` to be an integer >= {minimum}. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def top1_accuracy(y_true, y_pred) -> float:
    """Top-1 accuracy of predictions against integer labels, one-hot labels, or (for a
    single output column) binary labels with a decision at 0."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == y_true.ndim + 1:
        pred = np.argmax(y_pred, axis=-1)
    elif y_pred.shape[-1] == 1:
        pred = (y_pred[..., 0] > 0).astype(y_true.dtype)
        y_true = y_true.reshape(pred.shape)
    else:
        pred = np.argmax(y_pred, axis=-1)
        y_true = np.argmax(y_true, axis=-1)
    return float(np.mean(pred == y_true))
