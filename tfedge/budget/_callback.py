"""`SizeBudget`: a Keras callback that projects the packed file size during training."""

from __future__ import annotations

import numbers
import warnings

import keras

from tfedge.budget._units import parse_size

_ON_EXCEED = ("warn", "stop", "ignore")


@keras.saving.register_keras_serializable(package="tfedge")
class SizeBudget(keras.callbacks.Callback):
    """Logs the projected packed size each epoch and warns or stops when it cannot fit.

    At the end of every `frequency`-th epoch the model is stripped of tfedge wrappers,
    converted to .tflite and packed (`tfedge.budget.packed_size`): the exact size of the
    file `tfedge.compress(..., lossless=True)` would write from the current weights (or,
    with `bits`, after k-means sharing of every kernel). The size goes into `logs` as
    `packed_bytes`, and `packed_fraction` = packed_bytes / budget_bytes, so the progress
    bar, `History` and a `TensorBoard` callback placed after this one show it.

    When the projection is above the budget: "warn" issues a warning with the numbers,
    "stop" sets `model.stop_training` once it has been above for more than `patience`
    consecutive checks, "ignore" only logs. With `check_floor`, training starts by
    computing the smallest size the budget planner can reach
    (`tfedge.budget.floor_bytes`); a budget below it can never be met, and is reported
    (or stops training) at once.

    Args:
        budget_bytes: the budget, in bytes or as "200KB", "200 KiB", "1.5MB".
        bits: None (lossless packing of the current weights) or sharing bits 1-8.
        on_exceed: "warn", "stop" or "ignore".
        patience: checks above budget tolerated before "stop" stops (e.g. while a
            pruning schedule is still ramping up).
        frequency: project every this many epochs (packing converts the model).
        check_floor: compute the planner's floor when training begins.
    """

    def __init__(
        self,
        budget_bytes: int | str,
        *,
        bits: int | None = None,
        on_exceed: str = "warn",
        patience: int = 0,
        frequency: int = 1,
        check_floor: bool = False,
    ):
        super().__init__()
        self.budget_bytes = parse_size(budget_bytes)
        if bits is not None and (
            isinstance(bits, bool)
            or not isinstance(bits, numbers.Integral)
            or not 1 <= bits <= 8
        ):
            raise ValueError(
                f"Expected `bits` in [1, 8] or None. Received: bits={bits!r}"
            )
        if on_exceed not in _ON_EXCEED:
            raise ValueError(
                f"Expected `on_exceed` in {_ON_EXCEED}. "
                f"Received: on_exceed={on_exceed!r}"
            )
        for name, value, low in (
            ("patience", patience, 0),
            ("frequency", frequency, 1),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Integral)
                or value < low
            ):
                raise ValueError(
                    f"Expected `{name}` to be an int >= {low}. "
                    f"Received: {name}={value!r}"
                )
        if not isinstance(check_floor, bool):
            raise ValueError(
                "Expected `check_floor` to be a bool. "
                f"Received: check_floor={check_floor!r}"
            )
        self.bits = None if bits is None else int(bits)
        self.on_exceed = on_exceed
        self.patience = int(patience)
        self.frequency = int(frequency)
        self.check_floor = check_floor
        self.floor_bytes: int | None = None
        self.last_bytes: int | None = None
        self._over = 0

    def get_config(self) -> dict:
        return {
            "budget_bytes": self.budget_bytes,
            "bits": self.bits,
            "on_exceed": self.on_exceed,
            "patience": self.patience,
            "frequency": self.frequency,
            "check_floor": self.check_floor,
        }

    @classmethod
    def from_config(cls, config: dict) -> SizeBudget:
        return cls(**config)

    def _exceeded(self, message: str, stop_now: bool) -> None:
        if self.on_exceed == "warn":
            warnings.warn(f"SizeBudget: {message}", stacklevel=2)
        elif self.on_exceed == "stop" and stop_now:
            from absl import logging

            logging.warning("SizeBudget: %s; stopping training", message)
            self.model.stop_training = True

    def on_train_begin(self, logs=None) -> None:
        self._over = 0
        if not self.check_floor:
            return
        from tfedge.budget._analyze import floor_bytes

        self.floor_bytes = floor_bytes(self.model)
        if self.floor_bytes > self.budget_bytes:
            self._exceeded(
                "the model cannot fit: its floor (every kernel at the planner's "
                "smallest "
                f"option) is {self.floor_bytes} bytes, above the budget of "
                f"{self.budget_bytes} bytes",
                stop_now=True,
            )

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if (epoch + 1) % self.frequency:
            return
        from tfedge.budget._size import packed_size

        size = packed_size(self.model, bits=self.bits)
        self.last_bytes = size
        if logs is not None:
            logs["packed_bytes"] = float(size)
            logs["packed_fraction"] = size / self.budget_bytes
        if size > self.budget_bytes:
            self._over += 1
            self._exceeded(
                f"epoch {epoch + 1}: projected packed size {size} bytes is above the "
                f"budget of {self.budget_bytes} bytes "
                f"({size / self.budget_bytes:.2f}x)",
                stop_now=self._over > self.patience,
            )
        else:
            self._over = 0
