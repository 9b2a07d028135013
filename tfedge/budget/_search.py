"""The search: each option's measured loss, the Pareto front of (bytes, loss) over all
tensors, and the assignment with the best measured metric whose packed file fits the
budget (`Analysis`)."""

from __future__ import annotations

import math

import numpy as np
from absl import logging

from tfedge._checks import check_int
from tfedge.budget._options import pack_lossless
from tfedge.budget._plan import LayerChoice, Plan
from tfedge.budget._units import parse_size
from tfedge.errors import BudgetError

# Combined assignments packed and measured per search (the lowest predicted losses).
DEFAULT_FINALISTS = 4


# Points of the size/accuracy trade-off curve measured after the search.
DEFAULT_CURVE_POINTS = 8


# Assignments with the same measured loss are ordered by this weight on the kernels'
# relative error ||w - w'|| / ||w||: far below one eval sample of accuracy (1/N for
# N < 1000), so it only breaks ties in favour of the more faithful weights.
TIE_BREAK = 1e-4


# Rounds of "pack, find the file above budget, tighten, search again" before giving up
# on the front and taking the smallest assignment (which fits: it is the floor).
MAX_TIGHTEN_ROUNDS = 8


def _front(points: list[tuple[int, float, tuple]]) -> list[tuple[int, float, tuple]]:
    """The Pareto front of (cost, loss, choice): cost ascending, loss falling."""
    points.sort(key=lambda p: (p[0], p[1]))
    out = []
    best = math.inf
    for p in points:
        if p[1] < best:
            out.append(p)
            best = p[1]
    return out


def _merge(
    fronts: list[list[tuple[int, float, tuple]]],
) -> list[tuple[int, float, tuple]]:
    front = [(0, 0.0, ())]
    for f in fronts:
        front = _front(
            [(a + b, la + lb, ca + cb) for a, la, ca in front for b, lb, cb in f]
        )
    return front


class Analysis:
    """A model's weight tensors with every option's exact size and measured loss.

    Made by `analyze`; `plan(budget)` plans one budget (the sensitivity runs, made on
    the first call, and the packed candidates are shared between calls).

    Attributes:
        floor_bytes: the smallest packed file the options reach.
        baseline: the metric of the float model.
        metric: the metric's name.
    """

    def __init__(
        self, tflite, tensors, evaluator, metric, min_bytes, max_sparsity, progress
    ):
        self._tflite = tflite
        self._tensors = tensors
        self._evaluator = evaluator
        self.metric = metric
        self._min_bytes = min_bytes
        self._max_sparsity = max_sparsity
        self._progress = progress
        self._measured: dict[tuple, tuple[int, float, bytes]] = {}
        self._front = None
        self._offset = 0
        self.baseline: float | None = None
        # The floor: every kernel at its cheapest option, packed.
        self._cheapest = tuple(int(np.argmin(t.costs)) for t in tensors)
        data, self.floor_bytes = self._build(self._cheapest)
        self._floor_tflite = data

    def _replaced(self, choice: tuple[int, ...]) -> dict[int, np.ndarray]:
        return {
            t.buffer: t.decoded[i]
            for t, i in zip(self._tensors, choice, strict=True)
            if t.tunable and i
        }

    def _build(self, choice: tuple[int, ...]) -> tuple[bytes, int]:
        data = self._evaluator.bytes_with(self._replaced(choice))
        return data, len(pack_lossless(data, self._min_bytes))

    def _measure(self, choice: tuple) -> tuple[int, float, bytes]:
        if choice not in self._measured:
            data, size = self._build(choice)
            ev = self._evaluator
            score = float(ev.metric_fn(ev.y, ev.outputs(data)))
            self._measured[choice] = (size, score, data)
        return self._measured[choice]

    def _sensitivity(self) -> None:
        """3. Each option alone, then the Pareto front of the sum over tensors."""
        if self._front is not None:
            return
        from tfedge._progress import progress as progress_bar

        tensors, ev = self._tensors, self._evaluator
        self.baseline = ev.score({})
        jobs = [(t, i) for t in tensors if t.tunable for i in range(1, len(t.options))]
        for t in tensors:
            t.losses = [0.0] * len(t.options)
        for t, i in progress_bar(jobs, desc="sensitivity", verbose=self._progress):
            t.losses[i] = self.baseline - ev.score({t.buffer: t.decoded[i]})
        logging.info("tfedge.budget: %d sensitivity runs", ev.runs)
        fronts = []
        for t in tensors:
            points = [
                (t.costs[i], max(t.losses[i], 0.0) + TIE_BREAK * t.errors[i], (i,))
                for i in range(len(t.options))
            ]
            fronts.append(_front(points))
        self._front = _merge(fronts)
        # The front's costs are exact payloads plus `compress`'s per-tensor estimate of
        # the graph overhead; `offset` calibrates the rest on the floor's packed size.
        self._offset = self.floor_bytes - sum(
            t.costs[i] for t, i in zip(tensors, self._cheapest, strict=True)
        )

    def _floor_error(self, budget: int) -> BudgetError:
        tensors = self._tensors
        fixed = sum(t.costs[0] for t in tensors if not t.tunable)
        kernels = sum(
            t.costs[i]
            for t, i in zip(tensors, self._cheapest, strict=True)
            if t.tunable
        )
        return BudgetError(
            f"budget_bytes={budget} is below this model's incompressible floor of "
            f"{self.floor_bytes} bytes: about {self.floor_bytes - fixed - kernels} "
            f"bytes of graph structure and small constants, {fixed} bytes of biases "
            f"and other tensors packed losslessly, and {kernels} bytes of kernels at "
            f"their smallest option (ternary or 2-bit at {self._max_sparsity:.0%} "
            "sparsity). Raise the "
            f"budget to at least {self.floor_bytes} bytes, or shrink the architecture."
        )

    def tradeoff(self, points: int = DEFAULT_CURVE_POINTS, *, include=()) -> list[dict]:
        """Measured (bytes, metric) of `points` assignments of the front, spread
        log-evenly from the floor to the float model, cheapest first."""
        check_int(points, "points", 1)
        self._sensitivity()
        front, offset = self._front, self._offset
        lo, hi = math.log(front[0][0] + offset), math.log(front[-1][0] + offset)
        picks = []
        for k in range(points):
            target = math.exp(lo + (hi - lo) * k / max(points - 1, 1))
            below = [p for p in front if p[0] + offset <= target] or [front[0]]
            picks.append(below[-1][2])
        out = []
        for c in dict.fromkeys([*picks, *include]):
            size, score, _ = self._measure(c)
            predicted = sum(
                max(t.losses[i], 0.0) for t, i in zip(self._tensors, c, strict=True)
            )
            out.append(
                {
                    "bytes": size,
                    "metric": score,
                    "predicted_loss": predicted,
                    "chosen": c in include,
                }
            )
        return sorted(out, key=lambda p: p["bytes"])

    def plan(
        self,
        budget_bytes: int | str,
        *,
        finalists: int = DEFAULT_FINALISTS,
        curve_points: int = DEFAULT_CURVE_POINTS,
    ) -> Plan:
        """4. The assignment with the best measured metric whose packed file fits."""
        budget = parse_size(budget_bytes)
        check_int(finalists, "finalists", 1)
        check_int(curve_points, "curve_points", 0)
        if budget < self.floor_bytes:
            raise self._floor_error(budget)
        self._sensitivity()
        limit, best = budget, None
        for _ in range(MAX_TIGHTEN_ROUNDS):
            fitting = [p for p in self._front if p[0] + self._offset <= limit]
            if not fitting:
                break
            fitting.sort(key=lambda p: p[1])
            over = []
            for _, _, choice in fitting[:finalists]:
                size, score, _ = self._measure(choice)
                if size <= budget:
                    if best is None or (score, -size) > (best[1], -best[0]):
                        best = (size, score, choice)
                else:
                    over.append(size - budget)
            if best is not None:
                break
            limit -= max(over)
        if best is None:
            best = (self.floor_bytes, self._measure(self._cheapest)[1], self._cheapest)
        size, score, choice = best
        data = self._measured[choice][2]
        tradeoff = (
            self.tradeoff(curve_points, include=(choice,)) if curve_points else []
        )
        choices = []
        for t, i in zip(self._tensors, choice, strict=True):
            opt = t.options[i]
            choices.append(
                LayerChoice(
                    tensor=t.name,
                    layer=t.layer,
                    shape=list(t.shape),
                    sparsity=opt.sparsity if opt else float(np.mean(t.values == 0)),
                    coding=opt.coding if opt else "lossless",
                    bits=opt.bits if opt else None,
                    ternary=bool(opt and opt.ternary),
                    bytes_before=t.raw_bytes,
                    bytes_after=t.payloads[i]
                    if t.costs[i] < t.raw_bytes
                    else t.raw_bytes,
                    loss=t.losses[i],
                    weight_error=t.errors[i],
                )
            )
        return Plan(
            budget_bytes=budget,
            predicted_bytes=size,
            floor_bytes=self.floor_bytes,
            original_bytes=len(self._tflite),
            metric=self.metric,
            baseline=self.baseline,
            measured=score,
            choices=choices,
            tradeoff=tradeoff,
            _tflite=data,
            _original=self._tflite,
            _min_bytes=self._min_bytes,
        )
