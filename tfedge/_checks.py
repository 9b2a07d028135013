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


# Weight-sharing bits: 2^bits shared values per layer, indices of at most one byte.
MIN_SHARING_BITS, MAX_SHARING_BITS = 1, 8


def check_sharing_bits(bits, where: str = "bits") -> int:
    """Weight-sharing `bits` (2^bits shared values per layer) as an int, or a
    Keras-style ValueError naming `where` when it is not an integer in [1, 8]."""
    if (
        isinstance(bits, bool)
        or not isinstance(bits, numbers.Integral)
        or not MIN_SHARING_BITS <= int(bits) <= MAX_SHARING_BITS
    ):
        raise ValueError(
            f"Expected `{where}` to be an integer in [{MIN_SHARING_BITS}, "
            f"{MAX_SHARING_BITS}] (2^bits shared values per layer). "
            f"Received: {where}={bits!r}"
        )
    return int(bits)


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


def tolerance_number(value) -> float:
    """The fraction a drift tolerance stands for, unchecked: a real number as it is, a
    string plain ("0.02") or in percent ("2%", "2 %"). Raises TypeError or ValueError
    for anything else; `check_tolerance` and the CLI's `--tolerance` word the error."""
    if isinstance(value, str):
        text = value.strip()
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise TypeError(type(value).__name__)


def check_tolerance(value, *, lossless: bool = False) -> float:
    """A drift tolerance as a fraction in (0, 1): a number (0.02) or a string, plain
    ("0.02") or in percent ("2%"). Zero is refused unless `lossless` (a zero drift is
    what `lossless=True` asks for)."""
    text = value.strip() if isinstance(value, str) else None
    try:
        number = tolerance_number(value)
    except (TypeError, ValueError) as e:
        raise ValueError(
            "Expected `tolerance` to be a fraction like 0.02 or a percentage like "
            f"'2%'. Received: tolerance={value!r}"
        ) from e
    if number == 0:
        if lossless:
            return 0.0
        raise ValueError(
            "Expected `tolerance` > 0. Received: tolerance=0. For output identical "
            "to the original, pass `lossless=True` (every weight kept bit for bit)."
        )
    if not 0 < number < 1:
        hint = ""
        if text is not None and not text.endswith("%") and 1 <= number < 100:
            hint = f" (for {number:g} percent, write '{text}%')"
        raise ValueError(
            "Expected `tolerance` between 0 and 1 (a fraction) or '0%' and '100%'. "
            f"Received: tolerance={value!r}{hint}"
        )
    return number


# Pruning block shapes the sparse kernels run with vector loads: (1, 4) is four
# consecutive inputs of one output unit, (4, 1) four outputs of one input; (1, 1)
# prunes single weights.
BLOCK_SIZES = ((1, 1), (1, 4), (4, 1))


def check_block_size(block_size) -> tuple[int, int]:
    """`block_size` as a tuple of ints, or a ValueError when it is not one of
    `BLOCK_SIZES`."""
    try:
        value = tuple(int(b) for b in block_size)
    except (TypeError, ValueError):
        value = None
    if value not in BLOCK_SIZES or any(isinstance(b, bool) for b in block_size):
        raise ValueError(
            f"Expected `block_size` one of {list(BLOCK_SIZES)}: (1, 4) keeps blocks of "
            "four consecutive inputs of one output unit, (4, 1) of four outputs of one "
            f"input. Received: block_size={block_size!r}"
        )
    return value
