"""How the stages train and are measured: the model's layers, the data, the loss,
optimizer and metric every stage shares, and each stage's snapshot."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import numpy as np
from absl import logging

from tfedge._layers import walk_layers
from tfedge._progress import stage
from tfedge.convert import to_tflite

if TYPE_CHECKING:
    from tfedge._deep_compress._options import Options

__all__ = [
    "Data",
    "Snapshot",
    "Training",
    "prunable_layers",
    "sublayers",
]


def sublayers(model) -> list:
    return walk_layers(model, include_models=False)


def prunable_layers(model) -> list:
    from tfedge.keras import is_prunable

    return [lyr for lyr in sublayers(model) if is_prunable(lyr)]


def _is_dataset(obj) -> bool:
    return any(
        c.__name__ in ("DatasetV2", "DatasetV1")
        and c.__module__.startswith("tensorflow")
        for c in type(obj).__mro__
    )


class Data:
    """Training or validation data: (x, y) arrays or a tf.data dataset of batches."""

    def __init__(self, data, name: str, batch_size: int, steps_per_epoch: int | None):
        self.name = name
        self.batch_size = batch_size
        if _is_dataset(data):
            self.dataset = data
            self.x = self.y = None
            if steps_per_epoch is not None:
                self.steps = steps_per_epoch
            else:
                n = int(data.cardinality())
                if n == -1:  # INFINITE
                    raise ValueError(
                        f"`{name}` is an infinite dataset: pass `steps_per_epoch`."
                    )
                if n < 0:  # UNKNOWN: count once
                    n = sum(1 for _ in data)
                self.steps = n
            if self.steps < 1:
                raise ValueError(f"`{name}` is an empty dataset.")
            return
        if not (isinstance(data, (tuple, list)) and len(data) == 2):
            raise ValueError(
                f"Expected `{name}` to be a tuple (x, y) of arrays or a "
                f"tf.data.Dataset of (x, y) batches. Received: {type(data).__name__}"
            )
        x, y = np.asarray(data[0]), np.asarray(data[1])
        if x.ndim == 0 or y.ndim == 0 or len(x) != len(y) or len(x) == 0:
            raise ValueError(
                f"Expected `{name}` = (x, y) with the same, non-zero number of "
                "samples. "
                f"Received: x of shape {x.shape}, y of shape {y.shape}"
            )
        self.dataset = None
        self.x, self.y = x, y
        self.steps = steps_per_epoch or math.ceil(len(x) / batch_size)

    def fit(self, model, epochs: int, verbose: int | str) -> None:
        if self.dataset is not None:
            # A dataset is shuffled (or not) by the user's pipeline; Keras warns when
            # `shuffle=True` (its default) is passed with one.
            model.fit(
                self.dataset,
                epochs=epochs,
                steps_per_epoch=self.steps,
                shuffle=False,
                verbose=verbose,
            )
        else:
            model.fit(
                self.x,
                self.y,
                batch_size=self.batch_size,
                epochs=epochs,
                shuffle=True,
                verbose=verbose,
            )

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The data as arrays (a dataset is read once, up to `steps` batches)."""
        if self.dataset is None:
            return self.x, self.y
        xs, ys = [], []
        for i, item in enumerate(self.dataset):
            if i >= self.steps:
                break
            if not (isinstance(item, (tuple, list)) and len(item) >= 2):
                raise ValueError(
                    f"Expected `{self.name}` to yield (x, y) batches. Received an "
                    f"element of type {type(item).__name__}"
                )
            xs.append(np.asarray(item[0]))
            ys.append(np.asarray(item[1]))
        return np.concatenate(xs), np.concatenate(ys)


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A stage's Keras model, its metric on the validation data and its .tflite."""

    model: object
    accuracy: float
    tflite: bytes


class Training:
    """What every stage trains and measures with: the training data, the validation
    arrays, the loss, a new optimizer per stage, the compile metrics and the metric."""

    def __init__(self, model, train_data, val_data, options: Options):
        self.options = options
        self.train = Data(
            train_data, "train_data", options.batch_size, options.steps_per_epoch
        )
        val = Data(val_data, "val_data", options.batch_size, None)
        self.x_val, self.y_val = val.arrays()
        loss = options.loss
        if loss is None and getattr(model, "compiled", False):
            loss = getattr(model, "loss", None)
        if loss is None:
            y_probe = self.train.y if self.train.y is not None else self.y_val
            loss = _default_loss(model, np.asarray(y_probe))
        self.loss = loss

    def fit(self, model, name: str, what: str, learning_rate: float, epochs: int):
        """Compiles `model` with a new optimizer for stage `name` ("prune", "share")
        and trains it for `epochs` on the training data; `what` names it in progress."""
        model.compile(
            optimizer=self._optimizer(name, learning_rate),
            loss=self.loss,
            metrics=list(self.options.metrics) if self.options.metrics else None,
        )
        verbose = self.options.verbose
        with stage(f"deep_compress: {what}, {epochs} epochs", verbose=verbose):
            self.train.fit(model, epochs, verbose)

    def evaluate(self, model) -> float:
        """The metric of `model`'s predictions on the validation data."""
        pred = model.predict(self.x_val, batch_size=1024, verbose=0)
        return float(self.options.metric(self.y_val, pred))

    def measure(self, name: str, model) -> Snapshot:
        """Stage `name`'s snapshot: `model`, its validation metric and its .tflite."""
        accuracy = self.evaluate(model)
        snapshot = Snapshot(model, accuracy, to_tflite(model)[0])
        logging.info("deep_compress: %s accuracy %.4f", name, accuracy)
        return snapshot

    def _optimizer(self, name: str, learning_rate: float):
        import keras

        optimizer = self.options.optimizer
        if optimizer is None:
            return keras.optimizers.Adam(learning_rate)
        if isinstance(optimizer, str):
            opt = keras.optimizers.get(optimizer)
            opt.learning_rate = learning_rate
            return opt
        return optimizer(name, learning_rate)


def _default_loss(model, y: np.ndarray):
    import keras

    last = model.layers[-1] if model.layers else None
    softmax = getattr(last, "activation", None) is keras.activations.softmax
    if y.ndim >= 2 and y.shape[-1] > 1:
        return keras.losses.CategoricalCrossentropy(from_logits=not softmax)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=not softmax)
