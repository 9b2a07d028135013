"""`plan`, `analyze`, `floor_bytes`: per-layer sparsity, sharing bits and ternary
choices that fit a byte budget.

How it works, on the model's .tflite (so every measurement is of the deployed graph):

1. Options. Each weight tensor of rank >= 2 (a kernel) gets the options sparsity x
   coding: magnitude pruning to each sparsity (Han et al. 2015), then its values kept
   ("float"), shared by k-means with 2^bits clusters (Deep Compression; pruned zeros
   stay zero) or made ternary {-Wn, 0, +Wp} with Wp, Wn the mean magnitudes of each sign
   (Zhu et al. 2016 without training: the pruned fraction plays the threshold).
   With `ecsq=True`, also entropy-constrained scalar quantization (Choi, El-Khamy and
   Lee 2017) at a few rates: the converter's `method="ecsq"` candidates.
   Biases and other constants are packed losslessly, as `compress(lossless=True)` does.
2. Exact sizes. Each option's transformed values are encoded with the packer's own
   lossless encoder, the one `compress(lossless=True)` then runs on them: the payload
   size is exact. The file's size is `compress`'s output size, measured by packing.
3. Sensitivity. Each option is measured alone (one tensor changed, the rest float) in
   the stock TFLite interpreter on `eval_data`: its loss is the drop of the metric.
4. Choice. With losses added across tensors (the sensitivity assumption of Han et al.),
   the cheapest-loss assignment under the budget is an exact multiple-choice knapsack,
   solved by merging per-tensor Pareto fronts of (bytes, loss). The few best fronts
   under the budget are packed and measured together; the most accurate one that fits
   wins. A packed file that comes out above the budget tightens the budget the front
   is searched with, and the search repeats.

`Plan.predicted_bytes` is the size of the packed file of the chosen assignment, and
`Plan.apply()` packs that same assignment again: deterministic, so its size equals
`predicted_bytes` to the byte.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from tfedge._checks import check_int, top1_accuracy
from tfedge.budget._evaluator import Evaluator, check_eval_data, eval_arrays
from tfedge.budget._options import (
    DEFAULT_BITS,
    DEFAULT_ECSQ_ERRORS,
    DEFAULT_SPARSITIES,
    Option,
    check_bits,
    check_fractions,
    pack_lossless,
    packed_cost,
    relative_error,
    transform,
    weight_matrix_buffers,
)
from tfedge.budget._plan import Plan
from tfedge.budget._search import DEFAULT_CURVE_POINTS, DEFAULT_FINALISTS, Analysis
from tfedge.budget._units import parse_size
from tfedge.convert import to_plain_tflite
from tfedge.pack import (
    encode_lossless,
    keras_weight_owners,
    layer_named_in,
    values_key,
    weight_candidates,
)
from tfedge.tflite import read

_METRICS = ("accuracy",)


@dataclasses.dataclass
class _Tensor:
    """A weight buffer: its lossless cost, and its options when the planner tunes it."""

    buffer: int
    ttype: int
    name: str
    layer: str
    shape: list[int]
    raw_bytes: int
    values: np.ndarray
    tunable: bool
    options: list[Option] = dataclasses.field(default_factory=list)
    costs: list[int] = dataclasses.field(default_factory=list)
    payloads: list[int] = dataclasses.field(default_factory=list)
    errors: list[float] = dataclasses.field(default_factory=list)
    losses: list[float] = dataclasses.field(default_factory=list)
    decoded: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)


def _keras_layer_keys(keras_model) -> dict[tuple[int, bytes], list[str]]:
    """Each Keras weight's sorted values -> the names of the layers holding those
    values, in model order (converters transpose kernels, so the values match as
    multisets, not element by element; layers with identical weights share a key)."""
    return {
        key: list(dict.fromkeys(layer for layer, _ in owners))
        for key, owners in keras_weight_owners(keras_model).items()
    }


def _layer_for(tensor: str, names: list[str], taken: set[str]) -> str | None:
    """The layer of a tensor whose values match the weights of `names`: the one its
    name names, else the first not yet given to another tensor (tensors come in
    model order), else the first."""
    if not names:
        return None
    if len(names) == 1:
        return names[0]
    by_name = layer_named_in(tensor, names)
    if by_name:
        return by_name
    return next((n for n in names if n not in taken), names[0])


def plan(
    model,
    budget_bytes: int | str,
    eval_data: tuple | None = None,
    *,
    sparsities: Sequence[float] = DEFAULT_SPARSITIES,
    bits: Sequence[int] = DEFAULT_BITS,
    ternary: bool | Sequence[str] = True,
    ecsq: bool = False,
    layers: Sequence[str] | None = None,
    metric: str | Callable = "accuracy",
    batch_size: int = 1024,
    finalists: int = DEFAULT_FINALISTS,
    curve_points: int = DEFAULT_CURVE_POINTS,
    min_bytes: int = 256,
    seed: int = 0,
    progress: bool | None = None,
    verbose: int | str = "auto",
) -> Plan:
    """Chooses per-layer sparsity, sharing bits and ternary coding under a byte budget.

    Args:
        model: a Keras model (tfedge wrappers are stripped first), or anything
            `tfedge.compress` takes (.tflite bytes or path, SavedModel, .keras file).
        budget_bytes: the largest packed file allowed: bytes, or a string such as
            "200KB", "200 KiB" or "1.5MB".
        eval_data: `(x, y)` arrays to measure the metric on (held-out data, a few
            thousand samples are plenty). None: top-1 agreement with the float model on
            inputs generated from the signature.
        sparsities: fractions of each kernel pruned by magnitude, in [0, 1).
        bits: k-means sharing widths tried, in [1, 8].
        ternary: whether kernels may be made ternary: True (all), False (none) or the
            layer (or tensor) names that may.
        ecsq: also try entropy-constrained scalar quantization (Choi et al. 2017;
            `tfedge.compress(method="ecsq")`'s candidates) at each sparsity, aimed at
            the relative weight errors `DEFAULT_ECSQ_ERRORS`: codebooks of as many
            entries as the rate gives, which the packer's entropy coder makes
            smaller than k-means at the same error on large kernels.
        layers: layer (or tensor) names the planner tunes; None tunes every float
            kernel. Other tensors are packed losslessly.
        metric: "accuracy", or a callable `(y_true, y_pred) -> float`, higher better.
        batch_size: interpreter batch size.
        finalists: combined assignments packed and measured per search.
        curve_points: points of the size/metric trade-off curve to measure (0: none).
        min_bytes: buffers smaller than this stay raw (as in `tfedge.compress`).
        seed: k-means seed.
        progress: True or False: the same as verbose=1 or 0 (earlier releases);
            None defers to `verbose`.
        verbose: as in Keras: 0 silent, 1 progress bars on a terminal (one line per
            stage when stderr is not one), 2 one line per stage; "auto" is 1.

    Returns:
        A `Plan`; `plan.apply()` gives the `tfedge.Packed` model, never larger than
        `plan.predicted_bytes`. To plan several budgets for one model, `analyze` once
        and call `Analysis.plan` per budget (the sensitivity runs are shared).

    Raises:
        ValueError: bad arguments.
        tfedge.BudgetError: a budget below the model's floor (the message gives the
            floor in bytes); a `ValueError` too.
    """
    budget = parse_size(budget_bytes)
    check_int(finalists, "finalists", 1)
    check_int(curve_points, "curve_points", 0)
    analysis = analyze(
        model,
        eval_data,
        sparsities=sparsities,
        bits=bits,
        ternary=ternary,
        ecsq=ecsq,
        layers=layers,
        metric=metric,
        batch_size=batch_size,
        min_bytes=min_bytes,
        seed=seed,
        progress=verbose if progress is None else progress,
    )
    return analysis.plan(budget, finalists=finalists, curve_points=curve_points)


def analyze(
    model,
    eval_data: tuple | None = None,
    *,
    sparsities: Sequence[float] = DEFAULT_SPARSITIES,
    bits: Sequence[int] = DEFAULT_BITS,
    ternary: bool | Sequence[str] = True,
    ecsq: bool = False,
    layers: Sequence[str] | None = None,
    metric: str | Callable = "accuracy",
    batch_size: int = 1024,
    min_bytes: int = 256,
    seed: int = 0,
    progress: bool | int | str | None = None,
) -> Analysis:
    """Every kernel's options with their exact sizes, and the floor; see `plan` for the
    arguments (`progress` takes `plan`'s `verbose` values too). Sensitivity is measured
    on the first `Analysis.plan` call."""
    sparsities = check_fractions(sparsities, "sparsities", 0.0, 1.0)
    if 0.0 not in sparsities:
        sparsities = (0.0, *sparsities)
    bits = check_bits(bits)
    check_int(batch_size, "batch_size", 1)
    check_int(min_bytes, "min_bytes", 0)
    if metric == "accuracy":
        metric_fn, metric_name = top1_accuracy, "accuracy"
    elif callable(metric):
        metric_fn, metric_name = metric, getattr(metric, "__name__", "metric")
    else:
        raise ValueError(
            f"Expected `metric` 'accuracy' or a callable. Received: metric={metric!r}"
        )
    if not (
        isinstance(ternary, bool)
        or (isinstance(ternary, Sequence) and not isinstance(ternary, str))
    ):
        raise ValueError(
            "Expected `ternary` True, False or a list of layer names. "
            f"Received: ternary={ternary!r}"
        )
    if not isinstance(ecsq, bool):
        raise ValueError(f"Expected `ecsq` True or False. Received: ecsq={ecsq!r}")
    if eval_data is not None:
        check_eval_data(eval_data)

    tflite, _, keras_model = to_plain_tflite(model)
    plain = read(tflite)
    candidates, _ = weight_candidates(plain, min_bytes, "linear", seed)
    matrices = weight_matrix_buffers(plain)

    keys = _keras_layer_keys(keras_model) if keras_model is not None else {}
    layer_names = sorted({n for names in keys.values() for n in names})
    tensors: list[_Tensor] = []
    taken: set[str] = set()
    for c in candidates:
        name = c.row.name
        matches = (
            keys.get(values_key(c.values), []) if c.values.dtype.kind == "f" else []
        )
        layer = _layer_for(name, matches, taken)
        layer = layer or layer_named_in(name, layer_names) or name
        taken.add(layer)
        tunable = (
            c.values.dtype in (np.float32, np.float16)
            and c.buffer in matrices
            and bool(np.all(np.isfinite(c.values)))
        )
        tensors.append(
            _Tensor(
                c.buffer,
                c.ttype,
                name,
                layer,
                c.row.shape,
                c.row.original_bytes,
                c.values,
                tunable,
            )
        )
    known = {t.layer for t in tensors} | {t.name for t in tensors}
    if layers is not None:
        wanted = set(layers)
        unknown = sorted(wanted - known)
        if unknown:
            raise ValueError(
                f"Unknown layers {unknown} in `layers`. The model's weight tensors "
                "belong "
                f"to {sorted({t.layer for t in tensors if t.tunable})}."
            )
        for t in tensors:
            t.tunable = t.tunable and (t.layer in wanted or t.name in wanted)
    if not isinstance(ternary, bool):
        unknown = sorted(set(ternary) - known)
        if unknown:
            raise ValueError(f"Unknown layers {unknown} in `ternary`.")

    x, y = eval_arrays(tflite, eval_data, seed, batch_size)
    if eval_data is None:
        metric_fn, metric_name = top1_accuracy, "agreement"
    evaluator = Evaluator(tflite, x, y, metric_fn, batch_size)

    # 1-2. Options and their exact payloads.
    from tfedge._progress import progress as progress_bar

    for t in progress_bar(tensors, desc="sizes", verbose=progress):
        if not t.tunable:
            payload = len(encode_lossless(t.ttype, t.values, t.shape).payload)
            t.options = [None]
            t.costs = [packed_cost(payload, t.raw_bytes, t.name)]
            t.payloads, t.errors = [payload], [0.0]
            continue
        allow_ternary = ternary is True or (
            not isinstance(ternary, bool) and (t.layer in ternary or t.name in ternary)
        )
        for s in sparsities:
            opts = [Option(s)] + [Option(s, b) for b in bits]
            if allow_ternary:
                opts.append(Option(s, ternary=True))
            if ecsq:
                opts += [Option(s, ecsq=e) for e in DEFAULT_ECSQ_ERRORS]
            for opt in opts:
                values = transform(t.values, opt, seed=seed)
                payload = len(encode_lossless(t.ttype, values, t.shape).payload)
                t.decoded[len(t.options)] = values
                t.options.append(opt)
                t.payloads.append(payload)
                t.costs.append(packed_cost(payload, t.raw_bytes, t.name))
                t.errors.append(relative_error(t.values, values))
    return Analysis(
        tflite, tensors, evaluator, metric_name, min_bytes, max(sparsities), progress
    )


def floor_bytes(
    model, *, max_sparsity: float = DEFAULT_SPARSITIES[-1], min_bytes: int = 256
) -> int:
    """The smallest packed size `plan` can reach for `model`: every float kernel ternary
    or 2-bit (whichever is smaller) at `max_sparsity`, everything else lossless."""
    tflite, _, _ = to_plain_tflite(model)
    plain = read(tflite)
    candidates, _ = weight_candidates(plain, min_bytes, "linear", 0)
    ev = Evaluator(tflite, None, None, top1_accuracy, 1)
    matrices = weight_matrix_buffers(plain)
    replaced = {}
    for c in candidates:
        if (
            c.values.dtype in (np.float32, np.float16)
            and c.buffer in matrices
            and bool(np.all(np.isfinite(c.values)))
        ):
            opts = [
                transform(c.values, Option(max_sparsity, ternary=True)),
                transform(c.values, Option(max_sparsity, 2)),
            ]
            replaced[c.buffer] = min(
                opts,
                key=lambda v, c=c: len(
                    encode_lossless(c.ttype, v, c.row.shape).payload
                ),
            )
    return len(pack_lossless(ev.bytes_with(replaced), min_bytes))
