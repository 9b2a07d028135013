"""Optional callbacks for pruning. None is required: wrappers count their own steps."""

from __future__ import annotations

import keras
from absl import logging

from tfedge._layers import walk_layers
from tfedge.keras._prune import PruningWrapper

__all__ = ["PruningLogger"]


@keras.saving.register_keras_serializable(package="tfedge")
class PruningLogger(keras.callbacks.Callback):
    """Adds each pruned layer's current sparsity to the epoch logs (and absl logging).

    The History of `model.fit` then holds `sparsity/<layer name>` per epoch, and
    TensorBoard or CSVLogger callbacks placed after this one record it too.

    Args:
        log_every_epoch: also log the values with `absl.logging.info`.
    """

    def __init__(self, log_every_epoch: bool = True):
        super().__init__()
        if not isinstance(log_every_epoch, bool):
            raise ValueError(
                "Expected `log_every_epoch` to be a bool. "
                f"Received: log_every_epoch={log_every_epoch!r}"
            )
        self.log_every_epoch = log_every_epoch

    def _wrappers(self) -> list[PruningWrapper]:
        return [x for x in walk_layers(self.model) if isinstance(x, PruningWrapper)]

    def on_train_begin(self, logs=None):
        if not self._wrappers():
            raise ValueError(
                f"PruningLogger: model {self.model.name!r} has no PruningWrapper; "
                "prune it with `tfedge.keras.prune` or drop the callback."
            )

    def on_epoch_end(self, epoch, logs=None):
        values = {f"sparsity/{w.name}": w.sparsity() for w in self._wrappers()}
        if logs is not None:
            logs.update(values)
        if self.log_every_epoch:
            logging.info(
                "epoch %d: %s",
                epoch + 1,
                ", ".join(f"{k} {v:.4f}" for k, v in values.items()),
            )

    def get_config(self) -> dict:
        return {"log_every_epoch": self.log_every_epoch}
