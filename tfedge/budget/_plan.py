"""`plan`: per-layer sparsity, sharing bits and ternary choices that fit a byte budget.

How it works, on the model's .tflite (so every measurement is of the deployed graph):

1. Options. Each weight tensor of rank >= 2 (a kernel) gets the options sparsity x
   coding: magnitude pruning to each sparsity (Han et al. 2015), then its values kept
   ("float"), shared by k-means with 2^bits clusters (Deep Compression; pruned zeros
   stay zero) or made ternary {-Wn, 0, +Wp} with Wp, Wn the mean magnitudes of each sign
   (Zhu et al. 2016 without training: the pruned fraction plays the threshold).
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

import contextlib
import dataclasses
import io
import json
import math
import numbers
import os
import re
from collections.abc import Callable, Sequence

import numpy as np
from absl import logging

from tfedge._checks import check_int, top1_accuracy
from tfedge.budget._units import format_size, parse_size

# Sparsities tried per kernel (fraction of weights pruned by magnitude). 0 keeps every
# weight; LeNet-like fully-connected layers stand 90-98% (Han et al. 2015, table 1).
DEFAULT_SPARSITIES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
# Sharing bits tried per kernel: Deep Compression uses 8 for conv and 5 for fc layers
# after fine-tuning; without fine-tuning 2-3 bits still suit some layers.
DEFAULT_BITS = (8, 6, 5, 4, 3, 2)
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
# Samples generated (from the input signature) when no eval data is given.
GENERATED_SAMPLES = 256
_METRICS = ("accuracy",)


@dataclasses.dataclass(frozen=True)
class Option:
    """How a kernel is coded: prune to `sparsity`, then float, `bits`-bit or ternary."""

    sparsity: float
    bits: int | None = None
    ternary: bool = False

    @property
    def coding(self) -> str:
        if self.ternary:
            return "ternary"
        return "float" if self.bits is None else f"{self.bits}-bit"

    def __str__(self) -> str:
        return f"{self.coding} @ {self.sparsity:.0%} pruned"


@dataclasses.dataclass
class LayerChoice:
    """The plan for one weight tensor.

    Attributes:
        tensor: the .tflite tensor name.
        layer: the Keras layer it belongs to (when known).
        shape: the tensor's shape.
        sparsity, coding, bits, ternary: the chosen option (coding "float", "<b>-bit",
            "ternary", or "lossless" for tensors the planner does not tune).
        bytes_before: the tensor's raw bytes.
        bytes_after: its exact payload bytes (raw bytes when it is not packed).
        loss: metric drop measured with this tensor alone changed.
        weight_error: ||w - w'|| / ||w||.
    """

    tensor: str
    layer: str
    shape: list[int]
    sparsity: float
    coding: str
    bits: int | None
    ternary: bool
    bytes_before: int
    bytes_after: int
    loss: float
    weight_error: float


@dataclasses.dataclass
class Plan:
    """A planned compression of one model into a byte budget.

    Attributes:
        budget_bytes: the budget.
        predicted_bytes: the exact size of the packed file (`len(plan.apply())`).
        floor_bytes: the smallest file the options reach (every kernel at its smallest
            option; graph, biases and other constants as they pack losslessly).
        original_bytes: the float .tflite's size.
        metric: the metric's name ("accuracy", or "agreement" with the float model's
            top-1 on generated inputs when no eval data was given).
        baseline: the metric of the float model.
        measured: the metric of the planned model, all choices together, measured.
        accuracy_cost: baseline - measured.
        choices: one `LayerChoice` per weight tensor.
        tradeoff: measured points `{"bytes", "metric", "predicted_loss"}` of the
            size/metric curve (cheapest first), the plan's own point among them.
    """

    budget_bytes: int
    predicted_bytes: int
    floor_bytes: int
    original_bytes: int
    metric: str
    baseline: float
    measured: float
    choices: list[LayerChoice]
    tradeoff: list[dict]
    _tflite: bytes = dataclasses.field(repr=False, default=b"")
    _original: bytes = dataclasses.field(repr=False, default=b"")
    _min_bytes: int = dataclasses.field(repr=False, default=256)

    @property
    def accuracy_cost(self) -> float:
        return self.baseline - self.measured

    @property
    def tflite(self) -> bytes:
        """The planned model as a plain .tflite (pruned, shared or ternary weights)."""
        return self._tflite

    def apply(self):
        """Packs the planned model: a `tfedge.Packed` of exactly `predicted_bytes`."""
        return _pack(self._tflite, self._min_bytes)

    def layers(self) -> dict[str, str]:
        """Tensor name -> layer name, for `tfedge.budget.breakdown`."""
        return {c.tensor: c.layer for c in self.choices}

    def breakdown(self, packed=None):
        """Per-layer bytes before and after (`tfedge.budget.Breakdown`)."""
        from tfedge.budget._report import breakdown

        packed = self.apply() if packed is None else packed
        return breakdown(bytes(packed), self._original, layers=self.layers())

    def to_dict(self) -> dict:
        d = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if not f.name.startswith("_")
        }
        d["choices"] = [dataclasses.asdict(c) for c in self.choices]
        d["accuracy_cost"] = self.accuracy_cost
        return d

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), indent=kwargs.pop("indent", 2), **kwargs)

    def table(self) -> str:
        """The choices, one row per weight tensor, then the totals."""
        from tfedge._table import Column, render

        columns = [
            Column("layer", max_width=16),
            Column("tensor", max_width=30),
            Column("coding"),
            Column("pruned", ">"),
            Column("before", ">"),
            Column("after", ">"),
            Column("loss", ">"),
            Column("w.err", ">"),
        ]
        rows = [
            [
                c.layer,
                c.tensor.split(";")[0],
                c.coding,
                f"{c.sparsity:.0%}",
                c.bytes_before,
                c.bytes_after,
                f"{c.loss:.4f}",
                f"{c.weight_error:.3f}",
            ]
            for c in self.choices
        ]
        return render(
            columns,
            rows,
            footer=[
                f"budget {format_size(self.budget_bytes)}; packed file "
                f"{format_size(self.predicted_bytes)} (floor {self.floor_bytes:,}, "
                f"float {self.original_bytes:,})",
                f"{self.metric}: {self.baseline:.4f} float -> {self.measured:.4f} "
                f"planned (cost {self.accuracy_cost:+.4f})",
                "columns: loss = the metric's measured drop with this layer alone so "
                "coded; w.err = ||w - w'|| / ||w||",
            ],
        )

    def __str__(self) -> str:
        return self.table()


# --------------------------------------------------------------------------- helpers


def _pack(tflite: bytes, min_bytes: int):
    from tfedge.pack import compress

    return compress(tflite, lossless=True, min_bytes=min_bytes, progress=False)


def _to_tflite(model) -> tuple[bytes, object | None]:
    """(.tflite bytes, the plain Keras model when one was given)."""
    from tfedge.pack._source import _is_keras_model, to_tflite

    keras_model = None
    if isinstance(model, str | os.PathLike) and os.fspath(model).endswith(".keras"):
        if not os.path.exists(model):
            raise FileNotFoundError(f"No such model file: {os.fspath(model)}")
        import keras

        # Loaded here (not by `to_tflite`) so that tensors get their layers' names.
        model = keras.saving.load_model(model)
    if _is_keras_model(model):
        from tfedge.pack._source import _all_layers

        if any(hasattr(layer, "tfedge_strip") for layer in _all_layers(model)):
            from tfedge.keras import strip

            model = strip(model)
        keras_model = model
    # The Keras exporter prints the traced signature to stdout; the library never
    # prints.
    with contextlib.redirect_stdout(io.StringIO()):
        data, _ = to_tflite(model)
    from tfedge.pack._graph import decode_ops, packed_format_version
    from tfedge.tflite import read

    plain = read(data)
    if packed_format_version(plain) is not None or any(True for _ in decode_ops(plain)):
        from tfedge.runtime import expand

        data = expand(data)
    return data, keras_model


# Operators and the input positions that hold a weight matrix (not a bias).
_WEIGHT_OPERANDS = {
    "FULLY_CONNECTED": (1,),
    "CONV_2D": (1,),
    "DEPTHWISE_CONV_2D": (1,),
    "CONV_3D": (1,),
    "TRANSPOSE_CONV": (1,),
    "BATCH_MATMUL": (0, 1),
    "GATHER": (0,),
    "EMBEDDING_LOOKUP": (1,),
}


def weight_matrix_buffers(model) -> set[int]:
    """Buffers of the weight tensors the planner tunes: float constants with at least
    two dimensions larger than 1, or read by an op as its weight matrix (a Dense layer
    with one unit is [1, n]). Biases are vectors however they are shaped: TensorFlow's
    export gives [n], the JAX export [1, n] or [1, 1, 1, n] (added by a separate ADD),
    and tuning those as kernels doubled the planner's interpreter runs on JAX."""
    from tfedge.tflite import opcode_name

    operands: set[int] = set()
    shaped: set[int] = set()
    for sg in model.subgraphs:
        tensors = sg.tensors or []
        for t in tensors:
            shape = [] if t.shape is None else [int(d) for d in t.shape]
            if t.buffer > 0 and sum(d > 1 for d in shape) >= 2:
                shaped.add(t.buffer)
        for op in sg.operators or []:
            for pos in _WEIGHT_OPERANDS.get(opcode_name(model, op.opcodeIndex), ()):
                inputs = [] if op.inputs is None else list(op.inputs)
                if pos < len(inputs) and inputs[pos] >= 0:
                    operands.add(tensors[int(inputs[pos])].buffer)
    return shaped | {b for b in operands if b > 0}


def _sorted_key(values: np.ndarray) -> tuple[int, bytes]:
    flat = np.asarray(values, np.float32).reshape(-1)
    return flat.size, np.sort(flat).tobytes()


def _keras_layer_keys(keras_model) -> dict[tuple[int, bytes], list[str]]:
    """Each Keras weight's sorted values -> the names of the layers holding those
    values, in model order (converters transpose kernels, so the values match as
    multisets, not element by element; layers with identical weights share a key)."""
    from tfedge.pack._source import _all_layers

    keys: dict[tuple[int, bytes], list[str]] = {}
    for layer in _all_layers(keras_model):
        if getattr(layer, "layers", None):
            continue
        for w in layer.weights:
            arr = np.asarray(w.numpy() if hasattr(w, "numpy") else w)
            if arr.dtype.kind == "f":
                names = keys.setdefault(_sorted_key(arr), [])
                if layer.name not in names:
                    names.append(layer.name)
    return keys


def _layer_for(tensor: str, names: list[str], taken: set[str]) -> str | None:
    """The layer of a tensor whose values match the weights of `names`: the one its
    name names, else the first not yet given to another tensor (tensors come in
    model order), else the first."""
    if not names:
        return None
    if len(names) == 1:
        return names[0]
    by_name = _layer_from_name(tensor, names)
    if by_name:
        return by_name
    return next((n for n in names if n not in taken), names[0])


def _layer_from_name(tensor: str, names: Sequence[str]) -> str:
    for part in re.split(r"[/;]", tensor):
        base = re.sub(r"_\d+$", "", part)
        for candidate in (part, base):
            if candidate in names:
                return candidate
    return ""


class _Evaluator:
    """Runs the .tflite with some weight buffers replaced and scores its outputs."""

    def __init__(self, tflite: bytes, x, y, metric_fn: Callable, batch_size: int):
        from tfedge.tflite import read

        self.model = read(tflite)
        self.x, self.y = x, y
        self.metric_fn = metric_fn
        self.batch_size = batch_size
        self.runs = 0

    def bytes_with(self, replaced: dict[int, np.ndarray]) -> bytes:
        from tfedge.tflite import write

        saved = {b: self.model.buffers[b].data for b in replaced}
        try:
            for b, values in replaced.items():
                self.model.buffers[b].data = np.ascontiguousarray(values).view(np.uint8)
            return write(self.model)
        finally:
            for b, data in saved.items():
                self.model.buffers[b].data = data

    def outputs(self, tflite: bytes) -> np.ndarray:
        from tfedge.pack._verify import interpreter_class

        it = interpreter_class()(model_content=tflite, num_threads=1)
        inp = it.get_input_details()[0]
        out = it.get_output_details()[0]
        preds = []
        for start in range(0, len(self.x), self.batch_size):
            batch = self.x[start : start + self.batch_size].astype(inp["dtype"])
            if tuple(inp["shape"]) != batch.shape:
                it.resize_tensor_input(inp["index"], list(batch.shape))
                it.allocate_tensors()
                inp = it.get_input_details()[0]
                out = it.get_output_details()[0]
            elif start == 0:
                it.allocate_tensors()
            it.set_tensor(inp["index"], batch)
            it.invoke()
            preds.append(np.array(it.get_tensor(out["index"])))
        self.runs += 1
        return np.concatenate(preds)

    def score(self, replaced: dict[int, np.ndarray]) -> float:
        return float(self.metric_fn(self.y, self.outputs(self.bytes_with(replaced))))


def _check_fractions(values, name: str, low: float, high: float) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except TypeError as e:
        raise ValueError(
            f"Expected `{name}` to be a list of numbers. Received: {values!r}"
        ) from e
    if not out or any(not low <= v < high for v in out):
        raise ValueError(
            f"Expected `{name}` in [{low:g}, {high:g}). Received: {name}={list(values)}"
        )
    return tuple(sorted(set(out)))


def _check_bits(values) -> tuple[int, ...]:
    try:
        out = tuple(values)
    except TypeError as e:
        raise ValueError(
            f"Expected `bits` to be a list of ints. Received: {values!r}"
        ) from e
    if any(
        isinstance(b, bool) or not isinstance(b, numbers.Integral) or not 1 <= b <= 8
        for b in out
    ):
        raise ValueError(f"Expected `bits` in [1, 8]. Received: bits={list(values)}")
    return tuple(sorted({int(b) for b in out}, reverse=True))


def transform(values: np.ndarray, option: Option, *, seed: int = 0) -> np.ndarray:
    """`values` (1-D float) pruned and coded as `option` says; same dtype."""
    from tfedge.pack import _encode

    v = np.array(values, copy=True).reshape(-1)
    k = int(round(option.sparsity * v.size))
    if k > 0:
        drop = np.argpartition(np.abs(v.astype(np.float64)), k - 1)[:k]
        v[drop] = 0
    if option.ternary:
        pos, neg = v > 0, v < 0
        out = np.zeros_like(v)
        if pos.any():
            out[pos] = v[pos].astype(np.float64).mean()
        if neg.any():
            out[neg] = v[neg].astype(np.float64).mean()
        return out
    if option.bits is not None:
        shared = _encode.share(v, option.bits, seed=seed)
        return shared.codebook[shared.indices]
    return v


def _relative_error(a: np.ndarray, b: np.ndarray) -> float:
    ref = float(np.linalg.norm(a.astype(np.float64)))
    err = float(np.linalg.norm(a.astype(np.float64) - b.astype(np.float64)))
    return err / ref if ref > 0 else err


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


def _cost(payload: int, raw: int, name: str) -> int:
    """What a tensor adds to the file when `compress` packs it: the payload plus the
    graph overhead compress itself counts, or its raw bytes when packing does not
    pay."""
    from tfedge.pack._compress import GRAPH_OVERHEAD_BYTES

    packed = payload + GRAPH_OVERHEAD_BYTES + len(name)
    return raw if packed >= raw else packed


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


# --------------------------------------------------------------------------- plan


def plan(
    model,
    budget_bytes: int | str,
    eval_data: tuple | None = None,
    *,
    sparsities: Sequence[float] = DEFAULT_SPARSITIES,
    bits: Sequence[int] = DEFAULT_BITS,
    ternary: bool | Sequence[str] = True,
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
        ValueError: bad arguments, or a budget below the model's floor (the message
            gives the floor in bytes).
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
    from tfedge.pack import _compress, _encode
    from tfedge.tflite import read

    sparsities = _check_fractions(sparsities, "sparsities", 0.0, 1.0)
    if 0.0 not in sparsities:
        sparsities = (0.0, *sparsities)
    bits = _check_bits(bits)
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
    if eval_data is not None:
        _check_eval_data(eval_data)

    tflite, keras_model = _to_tflite(model)
    plain = read(tflite)
    candidates, _ = _compress._candidates(plain, min_bytes, "linear", seed)
    matrices = weight_matrix_buffers(plain)

    keys = _keras_layer_keys(keras_model) if keras_model is not None else {}
    layer_names = sorted({n for names in keys.values() for n in names})
    tensors: list[_Tensor] = []
    taken: set[str] = set()
    for c in candidates:
        name = c.row.name
        matches = (
            keys.get(_sorted_key(c.values), []) if c.values.dtype.kind == "f" else []
        )
        layer = _layer_for(name, matches, taken)
        layer = layer or _layer_from_name(name, layer_names) or name
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

    x, y = _eval_arrays(tflite, eval_data, seed, batch_size)
    if eval_data is None:
        metric_fn, metric_name = top1_accuracy, "agreement"
    evaluator = _Evaluator(tflite, x, y, metric_fn, batch_size)

    # 1-2. Options and their exact payloads.
    from tfedge._progress import progress as progress_bar

    for t in progress_bar(tensors, desc="sizes", verbose=progress):
        if not t.tunable:
            payload = len(_encode.encode_lossless(t.ttype, t.values, t.shape).payload)
            t.options = [None]
            t.costs = [_cost(payload, t.raw_bytes, t.name)]
            t.payloads, t.errors = [payload], [0.0]
            continue
        allow_ternary = ternary is True or (
            not isinstance(ternary, bool) and (t.layer in ternary or t.name in ternary)
        )
        for s in sparsities:
            opts = [Option(s)] + [Option(s, b) for b in bits]
            if allow_ternary:
                opts.append(Option(s, ternary=True))
            for opt in opts:
                values = transform(t.values, opt, seed=seed)
                payload = len(_encode.encode_lossless(t.ttype, values, t.shape).payload)
                t.decoded[len(t.options)] = values
                t.options.append(opt)
                t.payloads.append(payload)
                t.costs.append(_cost(payload, t.raw_bytes, t.name))
                t.errors.append(_relative_error(t.values, values))
    return Analysis(
        tflite, tensors, evaluator, metric_name, min_bytes, max(sparsities), progress
    )


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
        return data, len(_pack(data, self._min_bytes))

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

    def _floor_error(self, budget: int) -> ValueError:
        tensors = self._tensors
        fixed = sum(t.costs[0] for t in tensors if not t.tunable)
        kernels = sum(
            t.costs[i]
            for t, i in zip(tensors, self._cheapest, strict=True)
            if t.tunable
        )
        return ValueError(
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


def _check_eval_data(eval_data) -> None:
    if not (isinstance(eval_data, (tuple, list)) and len(eval_data) == 2):
        raise ValueError(
            "Expected `eval_data` to be a tuple (x, y) of arrays. Received: "
            f"{type(eval_data).__name__}"
        )
    x, y = np.asarray(eval_data[0]), np.asarray(eval_data[1])
    if x.ndim == 0 or len(x) == 0 or len(x) != len(y):
        raise ValueError(
            "Expected `eval_data` = (x, y) with the same, non-zero number of samples. "
            f"Received: x of shape {x.shape}, y of shape {y.shape}"
        )


def _eval_arrays(tflite: bytes, eval_data, seed: int, batch_size: int):
    if eval_data is not None:
        return np.asarray(eval_data[0]), np.asarray(eval_data[1])
    from tfedge.pack._verify import _generate, interpreter_class

    it = interpreter_class()(model_content=tflite, num_threads=1)
    details = it.get_input_details()
    if len(details) != 1:
        raise ValueError(
            f"Without `eval_data`, plan() needs a single-input model; this one has "
            f"{len(details)} inputs. Pass `eval_data`."
        )
    rng = np.random.default_rng(seed)
    x = np.concatenate([_generate(details[0], rng) for _ in range(GENERATED_SAMPLES)])
    ev = _Evaluator(tflite, x, None, top1_accuracy, batch_size)
    out = ev.outputs(tflite)
    return x, np.argmax(out.reshape(len(x), -1), axis=-1)


def floor_bytes(
    model, *, max_sparsity: float = DEFAULT_SPARSITIES[-1], min_bytes: int = 256
) -> int:
    """The smallest packed size `plan` can reach for `model`: every float kernel ternary
    or 2-bit (whichever is smaller) at `max_sparsity`, everything else lossless."""
    from tfedge.pack import _compress, _encode
    from tfedge.tflite import read

    tflite, _ = _to_tflite(model)
    plain = read(tflite)
    candidates, _ = _compress._candidates(plain, min_bytes, "linear", 0)
    ev = _Evaluator(tflite, None, None, top1_accuracy, 1)
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
                    _encode.encode_lossless(c.ttype, v, c.row.shape).payload
                ),
            )
    return len(_pack(ev.bytes_with(replaced), min_bytes))
