"""Pruning schedules: when to update a mask, and to what sparsity.

A schedule is called with the wrapper's training step (an integer tensor) and returns
`(should_prune, sparsity)`: a boolean scalar tensor saying whether the mask is
recomputed at this step, and the float32 fraction of weights to zero. Both are computed
with `keras.ops`, so schedules run inside `model.fit` on every backend.

`ConstantSparsity` and `PolynomialDecay` have the semantics and values of the tfmot
classes of the same names (tested against them step by step). `IterativePruning` is Han
et al.'s prune-retrain loop: each round prunes once to a higher sparsity and then
retrains the surviving weights for `round_steps` steps.
"""

from __future__ import annotations

import abc
import warnings
from collections.abc import Sequence

import keras
from keras import ops

from tfedge._checks import check_int

__all__ = ["ConstantSparsity", "IterativePruning", "PolynomialDecay", "PruningSchedule"]


def _check_sparsity(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"Expected `{name}` to be a float. Received: {name}={value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(
            f"Expected `{name}` in [0, 1). Received: {name}={value}. "
            "A sparsity is the fraction of weights set to zero; 1.0 would remove "
            "the layer."
        )
    return float(value)


def _check_steps(
    begin_step: int, end_step: int, frequency: int, *, allow_forever: bool
):
    check_int(begin_step, "begin_step", 0)
    check_int(frequency, "frequency", 1)
    if isinstance(end_step, bool) or not isinstance(end_step, int):
        raise ValueError(
            f"Expected `end_step` to be an integer. Received: {end_step!r}"
        )
    if end_step == -1:
        if not allow_forever:
            raise ValueError(
                "Expected `end_step` >= `begin_step`. Received: end_step=-1; this "
                "schedule needs a finite end step to reach its final sparsity."
            )
        return
    if end_step < begin_step:
        raise ValueError(
            f"Expected `end_step` >= `begin_step`. Received: begin_step={begin_step}, "
            f"end_step={end_step}. The schedule would end before it begins; use "
            "end_step=-1 to prune until training stops."
        )


def _should_prune(step, begin_step: int, end_step: int, frequency: int):
    """tfmot's rule: in [begin_step, end_step] (end -1: forever), every `frequency`."""
    step = ops.cast(step, "int32")
    in_range = ops.greater_equal(step, begin_step)
    if end_step >= 0:
        in_range = ops.logical_and(in_range, ops.less_equal(step, end_step))
    on_turn = ops.equal(ops.mod(step - begin_step, frequency), 0)
    return ops.logical_and(in_range, on_turn)


class PruningSchedule(abc.ABC):
    """Base class: `schedule(step) -> (should_prune, sparsity)` as tensors.

    Subclasses implement `__call__`, `get_config` and `final_sparsity` (the sparsity a
    layer has once the schedule is over, used by reports and `choose_sparsity`).
    """

    @property
    @abc.abstractmethod
    def final_sparsity(self) -> float:
        """The sparsity once the schedule is over."""

    @abc.abstractmethod
    def __call__(self, step):
        """`(should_prune, sparsity)` at integer tensor `step`."""

    @abc.abstractmethod
    def get_config(self) -> dict:
        """Every constructor argument."""

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@keras.saving.register_keras_serializable(package="tfedge")
class ConstantSparsity(PruningSchedule):
    """Prune to `target_sparsity` at `begin_step` and every `frequency` steps after.

    Same semantics as `tfmot.sparsity.keras.ConstantSparsity`: masks are recomputed at
    steps `begin_step + k * frequency` up to `end_step` (`-1`: until training stops).

    Args:
        target_sparsity: fraction of weights set to zero, in [0, 1).
        begin_step: first training step at which the mask is computed.
        end_step: last step at which the mask may change; -1 means no end.
        frequency: steps between mask updates.
    """

    def __init__(
        self,
        target_sparsity: float,
        begin_step: int,
        end_step: int = -1,
        frequency: int = 100,
    ):
        self.target_sparsity = _check_sparsity(target_sparsity, "target_sparsity")
        _check_steps(begin_step, end_step, frequency, allow_forever=True)
        self.begin_step = begin_step
        self.end_step = end_step
        self.frequency = frequency

    @property
    def final_sparsity(self) -> float:
        return self.target_sparsity

    def __call__(self, step):
        should = _should_prune(step, self.begin_step, self.end_step, self.frequency)
        return should, ops.convert_to_tensor(self.target_sparsity, dtype="float32")

    def get_config(self) -> dict:
        return {
            "target_sparsity": self.target_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        }


@keras.saving.register_keras_serializable(package="tfedge")
class PolynomialDecay(PruningSchedule):
    """Raise sparsity from `initial_sparsity` to `final_sparsity` polynomially.

    Same values as `tfmot.sparsity.keras.PolynomialDecay` (Zhu & Gupta 2017):
    `s(t) = s_f + (s_i - s_f) * (1 - p) ** power` with
    `p = clip((t - begin_step) / (end_step - begin_step), 0, 1)`, the mask updated at
    `begin_step + k * frequency` for steps up to `end_step`.

    Unlike tfmot, a schedule whose `frequency` never fires after `begin_step` (so that
    the final sparsity would never be applied) is rejected.

    Args:
        initial_sparsity: sparsity at `begin_step`, in [0, 1).
        final_sparsity: sparsity from `end_step` on, in [0, 1).
        begin_step: first training step at which the mask is computed.
        end_step: step at which `final_sparsity` is reached.
        power: exponent of the polynomial.
        frequency: steps between mask updates.
    """

    def __init__(
        self,
        initial_sparsity: float,
        final_sparsity: float,
        begin_step: int,
        end_step: int,
        power: int = 3,
        frequency: int = 100,
    ):
        self.initial_sparsity = _check_sparsity(initial_sparsity, "initial_sparsity")
        self._final = _check_sparsity(final_sparsity, "final_sparsity")
        _check_steps(begin_step, end_step, frequency, allow_forever=False)
        if end_step - begin_step < frequency:
            raise ValueError(
                f"Expected `end_step - begin_step` >= `frequency`. Received: "
                f"begin_step={begin_step}, end_step={end_step}, "
                f"frequency={frequency}: the mask would be updated only at step "
                f"{begin_step} (sparsity {initial_sparsity}) and never reach "
                f"final_sparsity={final_sparsity}. Lower `frequency` or move "
                "`end_step` later."
            )
        last = end_step - (end_step - begin_step) % frequency
        if last != end_step:
            warnings.warn(
                f"PolynomialDecay: the last mask update is at step {last}, before "
                f"end_step={end_step} (frequency={frequency}), so the final "
                "sparsity reached is below final_sparsity="
                f"{final_sparsity}. Make end_step - begin_step a multiple of "
                "frequency.",
                stacklevel=2,
            )
        if isinstance(power, bool) or not isinstance(power, (int, float)) or power <= 0:
            raise ValueError(f"Expected `power` > 0. Received: power={power!r}")
        self.begin_step = begin_step
        self.end_step = end_step
        self.power = power
        self.frequency = frequency

    @property
    def final_sparsity(self) -> float:
        return self._final

    def __call__(self, step):
        should = _should_prune(step, self.begin_step, self.end_step, self.frequency)
        t = ops.cast(ops.cast(step, "int32") - self.begin_step, "float32")
        p = ops.clip(t / float(self.end_step - self.begin_step), 0.0, 1.0)
        sparsity = self._final + (self.initial_sparsity - self._final) * ops.power(
            1.0 - p, float(self.power)
        )
        return should, ops.cast(sparsity, "float32")

    def get_config(self) -> dict:
        return {
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self._final,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "power": self.power,
            "frequency": self.frequency,
        }


@keras.saving.register_keras_serializable(package="tfedge")
class IterativePruning(PruningSchedule):
    """Han et al. (2015) iterative pruning: prune, retrain, prune harder, retrain.

    Round `i` starts at step `begin_step + i * round_steps`: the mask is recomputed
    once, to `sparsities[i]`, and the surviving weights are then retrained (with the
    mask fixed) until the next round. After the last round the mask stays fixed.

    Args:
        sparsities: strictly increasing sparsities, one per round, each in [0, 1).
        round_steps: training steps per round (pruning plus retraining).
        begin_step: step of the first round (train the dense model before it).
    """

    def __init__(
        self, sparsities: Sequence[float], round_steps: int, begin_step: int = 0
    ):
        if isinstance(sparsities, (str, bytes)) or not isinstance(sparsities, Sequence):
            raise ValueError(
                "Expected `sparsities` to be a list of floats. "
                f"Received: sparsities={sparsities!r}"
            )
        if not sparsities:
            raise ValueError("Expected at least one sparsity. Received: sparsities=[]")
        values = [_check_sparsity(s, "sparsities[i]") for s in sparsities]
        if any(b <= a for a, b in zip(values, values[1:], strict=False)):
            raise ValueError(
                "Expected `sparsities` strictly increasing (each round prunes more). "
                f"Received: sparsities={list(sparsities)}"
            )
        self.sparsities = values
        self.round_steps = check_int(round_steps, "round_steps", 1)
        self.begin_step = check_int(begin_step, "begin_step", 0)

    @property
    def final_sparsity(self) -> float:
        return self.sparsities[-1]

    @property
    def end_step(self) -> int:
        return self.begin_step + (len(self.sparsities) - 1) * self.round_steps

    def __call__(self, step):
        should = _should_prune(step, self.begin_step, self.end_step, self.round_steps)
        i = ops.floor_divide(
            ops.cast(step, "int32") - self.begin_step, self.round_steps
        )
        i = ops.clip(i, 0, len(self.sparsities) - 1)
        table = ops.convert_to_tensor(self.sparsities, dtype="float32")
        return should, ops.take(table, i)

    def get_config(self) -> dict:
        return {
            "sparsities": list(self.sparsities),
            "round_steps": self.round_steps,
            "begin_step": self.begin_step,
        }
