"""`factorize`: Dense and Conv2D layers replaced by low-rank forms (Zhang et al. 2015).

For a layer with kernel W (k*k*c x d, or m x n for Dense) and pre-activation response
y = W x + b at one output position, the low-rank form computes y' = M y + b' with
M = Q P' of rank r, i.e. r filters W Q followed by the d x r matrix P'. Three ways to
choose M and b' are offered:

- ``method="svd"``: the truncated SVD of W (weights alone, no data).
- ``method="nonlinear", asymmetric=False``: Zhang et al.'s nonlinear reconstruction.
  Minimise sum_i ||r(y_i) - r(M y_i + b')||^2 over rank-r M, with r the ReLU, on
  responses sampled from real data. The problem is relaxed with auxiliary responses z_i,
  sum_i ||r(y_i) - r(z_i)||^2 + lambda ||z_i - M y_i - b'||^2, and the paper's two
  sub-problems are solved in turn: (a) with z fixed, M and b' by reduced-rank regression
  of z on y (the "generalised SVD" of the paper); (b) with M, b' fixed, each z_ij in
  closed form (the better of its z <= 0 and z >= 0 branches). lambda is 0.01 for the
  first half of the iterations and 1 for the second, and the M of the lowest true
  objective is kept, so the result is never worse than the linear start (the PCA of the
  responses, Zhang et al.'s linear solution). Layers without a ReLU get that linear
  (reduced-rank regression) solution, which is then exact for their objective.
- ``method="nonlinear", asymmetric=True``: the same, but the regressor is the response
  y^_i = W x^_i + b to the input x^_i that the *already approximated* network feeds the
  layer, while the target stays r(y_i) of the original network, so errors of earlier
  layers are corrected rather than accumulated.

Ranks come either from the caller (``ranks={"conv2": 24, ...}``) or from a multiply-add
speed-up target (``speedup=3.0``), by the paper's greedy selection: starting from the
unfactorized model, repeatedly drop the trailing principal component of the layer whose
retained PCA energy (sum of the kept eigenvalues of its responses' covariance; of W's
squared singular values for ``svd`` without data) falls least, in log terms, per
multiply-add saved, until sum(original MACs) / sum(new MACs) over the candidate layers
reaches the target. The first step of a layer jumps to the largest rank at which its
factorized form is cheaper than the original.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from absl import logging
from keras import ops

from tfedge.keras import _kernel_swap
from tfedge.keras._lowrank import LowRankConv2D, LowRankDense

__all__ = ["factorize", "multiply_adds", "select_ranks"]

_METHODS = ("svd", "nonlinear")

# Auxiliary-variable penalty of the nonlinear solver: small first (z may move far from
# the linear approximation to fit the ReLU target), then 1 (z held close to M y + b').
_LAMBDA_SCHEDULE = (0.01, 1.0)

# Relative cut-off for the pseudo-inverse of the responses' Gram matrix: responses of a
# layer with more outputs than kernel inputs (e.g. a first conv layer, 9 inputs and 32
# outputs) are rank-deficient, and float32 round-off must not be inverted.
_PINV_RCOND = 1e-9


@dataclass(frozen=True)
class _Site:
    """A Dense or Conv2D layer that can be factorized, with its cost model."""

    layer: Any
    kind: str  # "dense" or "conv"
    rows: int  # inputs per output: k*k*c for a conv, m for a Dense
    cols: int  # outputs: d filters or n units
    positions: int  # output positions per sample

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def max_rank(self) -> int:
        return min(self.rows, self.cols)

    @property
    def macs(self) -> int:
        return self.positions * self.rows * self.cols

    @property
    def unit(self) -> int:
        """Multiply-adds of one rank of the factorized form."""
        return self.positions * (self.rows + self.cols)

    def factor_macs(self, rank: int) -> int:
        return rank * self.unit

    @property
    def break_even(self) -> int:
        """Largest rank whose factorized form is strictly cheaper (0: none is)."""
        return min(self.max_rank, (self.macs - 1) // self.unit)


def _positions(layer, channels_first: bool) -> int:
    try:
        shape = tuple(layer.output.shape)
    except (AttributeError, ValueError) as e:
        raise ValueError(
            f"Layer {layer.name!r} has not been called on an input, so its output "
            "shape (and multiply-adds) is unknown. Build the model with "
            "`keras.Input(...)` before factorizing it."
        ) from e
    spatial = shape[2:] if channels_first else shape[1:-1]
    if any(s is None for s in spatial):
        raise ValueError(
            f"Layer {layer.name!r} has output shape {shape} with unknown spatial "
            "dimensions, so its multiply-adds cannot be counted. Give the model a "
            "fixed input size, e.g. `keras.Input((28, 28, 1))`."
        )
    return int(np.prod(spatial, dtype=np.int64)) if spatial else 1


def _site(layer) -> _Site:
    """The cost model of `layer`, or a ValueError saying why it cannot be factorized."""
    kind = None
    if type(layer) is keras.layers.Dense:
        kind = "dense"
    elif type(layer) is keras.layers.Conv2D:
        if layer.groups != 1:
            raise ValueError(
                f"Layer {layer.name!r} (Conv2D with groups={layer.groups}) cannot be "
                "factorized: only ungrouped convolutions (groups=1) are supported. "
                "Leave it out of `ranks` / `layers`."
            )
        kind = "conv"
    if kind is None:
        raise ValueError(
            f"Layer {layer.name!r} ({type(layer).__name__}) cannot be factorized: "
            "factorize supports keras.layers.Dense and keras.layers.Conv2D "
            "(groups=1). Leave it out of `ranks` / `layers`."
        )
    if not layer.built:
        raise ValueError(
            f"Layer {layer.name!r} is not built. Build the model with "
            "`keras.Input(...)` (or call it on data) before factorizing it."
        )
    kernel_shape = tuple(layer.kernel.shape)
    rows = int(np.prod(kernel_shape[:-1]))
    cols = int(kernel_shape[-1])
    channels_first = kind == "conv" and layer.data_format == "channels_first"
    return _Site(layer, kind, rows, cols, _positions(layer, channels_first))


def multiply_adds(model: keras.Model) -> dict[str, int]:
    """Multiply-adds per sample of each Dense, Conv2D and low-rank layer of `model`.

    A Conv2D counts out_h * out_w * k*k*(c/groups) * d, a Dense m * n per output row, a
    low-rank layer r * (k*k*c + d) per position; bias additions and other layers are not
    counted. Layers are top-level layers of a built model, keyed by name.
    """
    counts: dict[str, int] = {}
    for layer in model.layers:
        if type(layer) in (keras.layers.Dense, keras.layers.Conv2D):
            if not layer.built:
                raise ValueError(
                    f"Layer {layer.name!r} is not built. Build the model with "
                    "`keras.Input(...)` before counting its multiply-adds."
                )
            kernel_shape = tuple(layer.kernel.shape)
            channels_first = getattr(layer, "data_format", None) == "channels_first"
            counts[layer.name] = (
                _positions(layer, channels_first)
                * int(np.prod(kernel_shape[:-1]))
                * int(kernel_shape[-1])
            )
        elif isinstance(layer, LowRankDense | LowRankConv2D):
            if not layer.built:
                raise ValueError(
                    f"Layer {layer.name!r} is not built. Build the model with "
                    "`keras.Input(...)` before counting its multiply-adds."
                )
            channels_first = getattr(layer, "data_format", None) == "channels_first"
            rows = int(np.prod(tuple(layer.kernel_1.shape)[:-1]))
            cols = int(tuple(layer.kernel_2.shape)[-1])
            counts[layer.name] = (
                _positions(layer, channels_first) * layer.rank * (rows + cols)
            )
    return counts


# --- arguments ------------------------------------------------------------------------


def _check_model(model) -> None:
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"Expected a Keras 3 `keras.Model`. Received: model of type "
            f"{type(model).__name__}"
        )
    if not isinstance(model, keras.Sequential) and not _is_functional(model):
        raise ValueError(
            f"Model {model.name!r} is a subclassed model; factorize rebuilds the "
            "layer graph and needs a Sequential or functional model. Rebuild it with "
            "the functional API."
        )
    try:
        inputs = model.inputs
    except (AttributeError, ValueError) as e:
        inputs = None
        cause = e
    else:
        cause = None
    if not inputs:
        raise ValueError(
            f"Model {model.name!r} has no defined inputs. Start it with "
            "`keras.Input(shape)` so that every layer's shape is known."
        ) from cause


def _is_functional(model) -> bool:
    # A functional model (and a built Sequential) has symbolic inputs and outputs;
    # a subclassed model's `inputs` is unset.
    try:
        return bool(model.inputs) and bool(model.outputs)
    except (AttributeError, ValueError):
        return False


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(
            f"Expected `{name}` to be a positive integer. Received: {name}={value!r}"
        )
    return int(value)


def _candidate_sites(
    model, layers: Sequence[str] | None, argument: str = "layers"
) -> list[_Site]:
    by_name = {layer.name: layer for layer in model.layers}
    if layers is None:
        sites = []
        for layer in model.layers:
            try:
                sites.append(_site(layer))
            except ValueError:
                continue  # not factorizable: it simply is not a candidate
        site_ids = {id(site.layer) for site in sites}
        _kernel_swap.warn_skipped(
            model,
            "factorize",
            lambda layer: id(layer) in site_ids,
            "It factorizes Dense and Conv2D (groups=1) layers; the speed-up is over "
            "those alone.",
        )
        if not sites:
            raise ValueError(
                f"Model {model.name!r} has no Dense or Conv2D (groups=1) layer to "
                "factorize."
            )
        return sites
    if isinstance(layers, str) or not isinstance(layers, Sequence):
        raise ValueError(
            "Expected `layers` to be a list of layer names. "
            f"Received: layers={layers!r}"
        )
    wanted = []
    for name in layers:
        if name not in by_name:
            raise ValueError(
                f"Model {model.name!r} has no layer named {name!r} (in `{argument}`). "
                f"Its layers are: {sorted(by_name)}"
            )
        wanted.append(name)
    order = [layer.name for layer in model.layers]
    return [_site(by_name[name]) for name in sorted(set(wanted), key=order.index)]


def _explicit_ranks(model, ranks) -> tuple[list[_Site], dict[str, int]]:
    if not isinstance(ranks, Mapping) or not ranks:
        raise ValueError(
            "Expected `ranks` to be a non-empty dict of layer name -> rank. "
            f"Received: ranks={ranks!r}"
        )
    sites = _candidate_sites(model, list(ranks), argument="ranks")
    chosen = {}
    for site in sites:
        rank = ranks[site.name]
        if isinstance(rank, bool) or not isinstance(rank, int | np.integer):
            raise ValueError(
                f"Layer {site.name!r}: expected an integer rank. "
                f"Received: ranks[{site.name!r}]={rank!r}"
            )
        rank = int(rank)
        if not 1 <= rank <= site.max_rank:
            raise ValueError(
                f"Layer {site.name!r}: expected a rank in [1, {site.max_rank}] "
                f"(at most min(kernel inputs {site.rows}, outputs {site.cols})). "
                f"Received: ranks[{site.name!r}]={rank}"
            )
        if site.factor_macs(rank) >= site.macs:
            warnings.warn(
                f"Layer {site.name!r} at rank {rank} takes {site.factor_macs(rank)} "
                f"multiply-adds per sample against {site.macs} for the original "
                f"({site.factor_macs(rank) / site.macs:.2f}x as many); only ranks up "
                f"to {site.break_even} make it cheaper.",
                stacklevel=3,
            )
        chosen[site.name] = rank
    return sites, chosen


def _check_speedup(speedup: Any) -> float:
    if (
        isinstance(speedup, bool)
        or not isinstance(speedup, int | float | np.number)
        or not math.isfinite(float(speedup))
        or float(speedup) <= 1.0
    ):
        raise ValueError(
            "Expected `speedup` to be a number greater than 1 (the ratio of the "
            "candidate layers' multiply-adds before and after). "
            f"Received: speedup={speedup!r}"
        )
    return float(speedup)


def _as_inputs(model, data, sites: Sequence[_Site]) -> list[np.ndarray]:
    """`data` as one float array per model input, its shape checked against the model.

    `sites` name the layers that the data feeds, for the error messages.
    """
    names = ", ".join(repr(s.name) for s in sites)
    n_inputs = len(model.inputs)
    if isinstance(data, list | tuple):
        arrays = list(data)
    else:
        arrays = [data]
    if len(arrays) != n_inputs:
        raise ValueError(
            f"Model {model.name!r} has {n_inputs} input(s) but calibration `data` "
            f"holds {len(arrays)} array(s). Pass one array per model input (the "
            f"inputs only, no labels); it feeds layers {names}."
        )
    out = []
    batch = None
    for tensor, array in zip(model.inputs, arrays, strict=True):
        try:
            array = np.asarray(array, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"Calibration `data` for model input {tensor.name!r} must be a "
                f"numeric array. Received: {type(array).__name__}"
            ) from e
        expected = tuple(tensor.shape)
        shape_ok = array.ndim == len(expected) and all(
            e is None or e == a
            for e, a in zip(expected[1:], array.shape[1:], strict=True)
        )
        if not shape_ok or array.shape[0] < 1:
            want = ("batch",) + tuple("any" if e is None else e for e in expected[1:])
            raise ValueError(
                f"Calibration `data` for model input {tensor.name!r} must have shape "
                f"{want} with at least one sample, as the layers {names} see it. "
                f"Received: data of shape {array.shape}"
            )
        if batch is not None and array.shape[0] != batch:
            raise ValueError(
                "Calibration `data` arrays must hold the same number of samples. "
                f"Received: {batch} and {array.shape[0]} (input {tensor.name!r})"
            )
        batch = array.shape[0]
        out.append(array)
    return out


# --- responses ------------------------------------------------------------------------


def _pre_activation(site: _Site, x):
    """The layer's response before its activation, channels last, as numpy."""
    layer = site.layer
    if site.kind == "conv":
        y = ops.conv(
            x,
            layer.kernel,
            strides=layer.strides,
            padding=layer.padding,
            data_format=layer.data_format,
            dilation_rate=layer.dilation_rate,
        )
        if layer.data_format == "channels_first":
            y = ops.transpose(y, (0, 2, 3, 1))
    else:
        y = ops.matmul(x, layer.kernel)
    if layer.use_bias:
        y = ops.add(y, layer.bias)
    y = ops.convert_to_numpy(y)
    return y.reshape(y.shape[0], -1, site.cols)


def _sample_index(n: int, positions: int, samples: int, rng) -> np.ndarray:
    """Sorted flat indices into the (sample, position) grid, at most `samples`."""
    total = n * positions
    if total <= samples:
        return np.arange(total, dtype=np.int64)
    return np.sort(rng.choice(total, size=samples, replace=False).astype(np.int64))


def _collect(feature_model, inputs, sites, index, batch_size) -> list[np.ndarray]:
    """Pre-activation responses of each site's original weights at its sampled points.

    `feature_model` maps the model inputs to the input tensor of each site (in order).
    """
    n = inputs[0].shape[0]
    chunks: list[list[np.ndarray]] = [[] for _ in sites]
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        batch = [a[start:stop] for a in inputs]
        feats = feature_model(batch, training=False)
        if not isinstance(feats, list | tuple):
            feats = [feats]
        for k, (site, feat) in enumerate(zip(sites, feats, strict=True)):
            flat = index[k]
            lo, hi = np.searchsorted(
                flat, [start * site.positions, stop * site.positions]
            )
            if hi == lo:
                continue
            y = _pre_activation(site, feat)
            local = flat[lo:hi] - start * site.positions
            chunks[k].append(
                y.reshape(-1, site.cols)[local].astype(np.float64, copy=False)
            )
    return [np.concatenate(c, axis=0) for c in chunks]


def _pca_energy(y: np.ndarray) -> np.ndarray:
    """Eigenvalues of the responses' covariance, largest first, clipped at zero."""
    yc = y - y.mean(axis=0)
    values = np.linalg.eigvalsh(yc.T @ yc / max(len(y), 1))
    return np.clip(values[::-1], 0.0, None)


# --- rank selection -------------------------------------------------------------------


def _greedy_ranks(
    sites: Sequence[_Site],
    energies: Sequence[np.ndarray],
    speedup: float,
    multiple: int = 1,
) -> dict[str, int]:
    """Zhang et al.'s greedy selection; layers left whole are absent from the result.

    Ranks are multiples of `multiple`; a layer whose break-even rank is below it stays
    whole.
    """
    # Largest allowed rank that is cheaper than the layer itself (0: none).
    top = [(s.break_even // multiple) * multiple for s in sites]
    total = sum(s.macs for s in sites)
    floor = sum(
        s.factor_macs(multiple) if t >= multiple else s.macs
        for s, t in zip(sites, top, strict=True)
    )
    if total < speedup * floor:
        stuck = [s.name for s, t in zip(sites, top, strict=True) if t < multiple]
        note = (
            f" Layers {stuck} cannot be made cheaper by factorization"
            + (f" at a rank that is a multiple of {multiple}." if multiple > 1 else ".")
            if stuck
            else ""
        )
        raise ValueError(
            f"Cannot reach speedup={speedup:g}: at rank {multiple} the layers "
            f"{[s.name for s in sites]} still take {floor} multiply-adds per sample "
            f"against {total} for the original, a speed-up of at most "
            f"{total / floor:.3g}x.{note} Ask for a smaller `speedup` or factorize "
            "more layers."
        )
    logs = []
    for site, values in zip(sites, energies, strict=True):
        values = np.asarray(values, dtype=np.float64)
        whole = float(values.sum())
        # Normalised cumulative energy of ranks 0..max_rank; the tiny floor keeps the
        # log finite for a layer whose responses vanish.
        cum = np.concatenate([[0.0], np.cumsum(values[: site.max_rank])])
        cum = cum / whole if whole > 0 else np.ones_like(cum)
        logs.append(np.log(np.maximum(cum, 1e-300)))
    ranks: dict[int, int] = {}
    cost = total
    while cost * speedup > total:
        best = None
        for k, site in enumerate(sites):
            if k not in ranks:
                if top[k] < multiple:
                    continue
                new = top[k]
                loss = -logs[k][new]  # from the whole layer (log 1 = 0)
                saved = site.macs - site.factor_macs(new)
            elif ranks[k] > multiple:
                new = ranks[k] - multiple
                loss = logs[k][ranks[k]] - logs[k][new]
                saved = site.factor_macs(multiple)
            else:
                continue
            score = (loss / saved, -saved, k)
            if best is None or score < best[0]:
                best = (score, k, new, saved)
        # `floor` was checked above, so a step always exists here.
        _, k, new, saved = best
        ranks[k] = new
        cost -= saved
    return {sites[k].name: r for k, r in sorted(ranks.items())}


# --- solvers --------------------------------------------------------------------------


def _reduced_rank_regression(gram_pinv, gram, cross, x_mean, z_mean, rank):
    """Rank-`rank` affine map z ~ x A + c, A = F1 F2, minimising the squared error.

    `gram` is Xc'Xc, `cross` Xc'Zc for centred rows x, z. The least-squares map is
    A0 = pinv(Xc'Xc) Xc'Zc; the best rank-r map projects its fitted values Xc A0 on
    their top r principal directions V: A = A0 V V'.
    """
    a_full = gram_pinv @ cross
    fitted = a_full.T @ gram @ a_full
    values, vectors = np.linalg.eigh((fitted + fitted.T) / 2)
    v = vectors[:, ::-1][:, :rank]
    f1 = a_full @ v
    f2 = v.T
    c = z_mean - (x_mean @ f1) @ f2
    return f1, f2, c


def _approx(x32, f1, f2, c) -> np.ndarray:
    """x F1 F2 + c for float32 rows x: one N x d x d product (the bulk of the work)."""
    return x32 @ (f1 @ f2).astype(np.float32) + c.astype(np.float32)


def _relu_error(target, approx) -> float:
    return float(np.mean(np.sum((target - np.maximum(approx, 0.0)) ** 2, axis=1)))


def _z_step(target, approx, lam):
    """argmin_z (r(y) - r(z))^2 + lam (z - approx)^2, element by element."""
    z_pos = np.maximum((target + lam * approx) / (1.0 + lam), 0.0)
    cost_pos = (target - z_pos) ** 2 + lam * (z_pos - approx) ** 2
    z_neg = np.minimum(approx, 0.0)
    cost_neg = target**2 + lam * (z_neg - approx) ** 2
    return np.where(cost_neg < cost_pos, z_neg, z_pos)


def _solve_responses(y, y_hat, rank, relu, iterations):
    """(F1, F2, c) with r(y_hat F1 F2 + c) ~ r(y): linear start, then alternation.

    The d x d normal equations are solved in float64; the N x d products of the
    iterations run in float32 (N is tens of thousands of sampled positions).
    """
    x_mean = y_hat.mean(axis=0)
    xc = y_hat - x_mean
    gram = xc.T @ xc
    gram_pinv = np.linalg.pinv(gram, rcond=_PINV_RCOND, hermitian=True)
    y_mean = y.mean(axis=0)
    f1, f2, c = _reduced_rank_regression(
        gram_pinv, gram, xc.T @ (y - y_mean), x_mean, y_mean, rank
    )
    if not relu:
        return f1, f2, c, None, None
    x32 = y_hat.astype(np.float32)
    xc32_t = np.ascontiguousarray(xc.T, dtype=np.float32)
    target = np.maximum(y, 0.0).astype(np.float32)
    approx = _approx(x32, f1, f2, c)
    start = best = _relu_error(target, approx)
    solution = (f1, f2, c)
    for it in range(iterations):
        lam = _LAMBDA_SCHEDULE[0] if it < iterations // 2 else _LAMBDA_SCHEDULE[1]
        z = _z_step(target, approx, np.float32(lam))
        z_mean = z.mean(axis=0, dtype=np.float64)
        cross = (xc32_t @ (z - z_mean.astype(np.float32))).astype(np.float64)
        f1, f2, c = _reduced_rank_regression(
            gram_pinv, gram, cross, x_mean, z_mean, rank
        )
        approx = _approx(x32, f1, f2, c)
        err = _relu_error(target, approx)
        if err < best:
            best, solution = err, (f1, f2, c)
    return (*solution, start, best)


def _balance(k1: np.ndarray, k2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rescale each rank component so that its two factors have equal norms."""
    n1 = np.linalg.norm(k1, axis=0)
    n2 = np.linalg.norm(k2, axis=1)
    scale = np.where((n1 > 0) & (n2 > 0), np.sqrt(n2 / np.where(n1 > 0, n1, 1.0)), 1.0)
    scale = np.where(scale > 0, scale, 1.0)
    return k1 * scale, k2 / scale[:, None]


def _weights_2d(site: _Site) -> tuple[np.ndarray, np.ndarray]:
    weights = site.layer.get_weights()  # [kernel] or [kernel, bias]
    w = weights[0].astype(np.float64).reshape(site.rows, site.cols)
    b = weights[1].astype(np.float64) if site.layer.use_bias else np.zeros(site.cols)
    return w, b


def _svd_factors(site: _Site, rank: int):
    w, b = _weights_2d(site)
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    root = np.sqrt(s[:rank])
    return (u[:, :rank] * root), (root[:, None] * vt[:rank]), b


def _response_factors(site: _Site, f1, f2, c):
    """Kernels and bias of y' = (W x + b) F1 F2 + c = x (W F1) F2 + (b F1 F2 + c)."""
    w, b = _weights_2d(site)
    k1, k2 = _balance(w @ f1, f2)
    return k1, k2, (b @ f1) @ f2 + c


def _low_rank_layer(layer, rank: int):
    """An unbuilt LowRank* layer with `layer`'s options (always with a bias)."""
    cls = LowRankConv2D if type(layer) is keras.layers.Conv2D else LowRankDense
    accepted = set(inspect.signature(cls.__init__).parameters) | {
        "name",
        "dtype",
        "trainable",
    }
    config = {k: v for k, v in layer.get_config().items() if k in accepted}
    config.update(rank=rank, use_bias=True)
    return cls.from_config(config)


# --- public entry points --------------------------------------------------------------


def select_ranks(
    model: keras.Model,
    *,
    speedup: float,
    data=None,
    layers: Sequence[str] | None = None,
    rank_multiple: int = 1,
    samples: int = 20000,
    batch_size: int = 128,
    seed: int = 0,
) -> dict[str, int]:
    """Ranks that reach a multiply-add `speedup` by Zhang et al.'s greedy selection.

    Args:
        model: a built Sequential or functional Keras model.
        speedup: target ratio (> 1) of the candidate layers' multiply-adds before and
            after factorization (see `multiply_adds`).
        data: calibration inputs (an array, or a list with one array per model input).
            With data, a layer's energy is the PCA spectrum of its responses; without,
            the squared singular values of its kernel.
        layers: names of the candidate layers; default every Dense and Conv2D
            (groups=1) layer.
        rank_multiple: ranks are multiples of this. Multiply-adds only turn into
            latency when a rank fills the interpreter's vector tiles: XNNPack
            computes output channels in blocks (16 with AVX-512, 8 with AVX2 or
            NEON), so a rank-3 convolution costs as much as a rank-16 one there.
        samples: response positions sampled per layer.
        batch_size: calibration batch size.
        seed: seed of the position sampling.

    Returns:
        {layer name: rank} for the layers to factorize, in model order; candidates best
        left whole are absent.
    """
    _check_model(model)
    target = _check_speedup(speedup)
    sites = _candidate_sites(model, layers)
    rank_multiple = _check_positive_int("rank_multiple", rank_multiple)
    samples = _check_positive_int("samples", samples)
    batch_size = _check_positive_int("batch_size", batch_size)
    if data is None:
        energies = [_svd_energy(site) for site in sites]
    else:
        inputs = _as_inputs(model, data, sites)
        energies, _ = _original_responses(
            model, inputs, sites, samples, batch_size, seed
        )
    return _greedy_ranks(sites, energies, target, rank_multiple)


def _svd_energy(site: _Site) -> np.ndarray:
    w, _ = _weights_2d(site)
    return np.linalg.svd(w, compute_uv=False) ** 2


def _original_responses(model, inputs, sites, samples, batch_size, seed):
    rng = np.random.default_rng(seed)
    n = inputs[0].shape[0]
    index = [_sample_index(n, s.positions, samples, rng) for s in sites]
    feature_model = keras.Model(model.inputs, [s.layer.input for s in sites])
    responses = _collect(feature_model, inputs, sites, index, batch_size)
    for site, y in zip(sites, responses, strict=True):
        if len(y) < 4 * site.cols:
            warnings.warn(
                f"Layer {site.name!r}: only {len(y)} response samples for "
                f"{site.cols} outputs; pass more calibration data (at least "
                f"{4 * site.cols} positions) for a reliable fit.",
                stacklevel=4,
            )
    energies = [_pca_energy(y) for y in responses]
    return energies, (responses, index)


def factorize(
    model: keras.Model,
    *,
    ranks: Mapping[str, int] | None = None,
    speedup: float | None = None,
    data=None,
    method: str = "nonlinear",
    asymmetric: bool = True,
    layers: Sequence[str] | None = None,
    rank_multiple: int = 1,
    iterations: int = 50,
    samples: int = 20000,
    batch_size: int = 128,
    seed: int = 0,
) -> keras.Model:
    """A copy of `model` with Dense / Conv2D layers replaced by their low-rank form.

    Give exactly one of `ranks` and `speedup`. The result is a new, uncompiled model of
    `LowRankDense` / `LowRankConv2D` layers (always with a bias) and copies of the other
    layers with their weights; `model` is not changed. Compile it and fine-tune with
    `fit` to win back accuracy.

    Args:
        model: a built Sequential or functional Keras model.
        ranks: {layer name: rank}, 1 <= rank <= min(kernel inputs, outputs).
        speedup: a multiply-add speed-up target over the candidate layers (`layers`),
            met by `select_ranks` (the paper's greedy selection).
        data: calibration inputs (an array, or a list with one array per model input),
            e.g. a few hundred training images. Needed by `method="nonlinear"`; used
            by `svd` for rank selection only.
        method: "svd" (truncated SVD of the kernel) or "nonlinear" (Zhang et al.'s
            reconstruction of the post-ReLU responses; linear responses for layers
            without a ReLU activation).
        asymmetric: with "nonlinear", fit each layer to the inputs that the already
            factorized layers before it produce (Zhang et al.'s asymmetric
            reconstruction). Has no effect on "svd", which uses the weights alone.
        layers: candidate layer names for `speedup`; default every Dense and Conv2D
            (groups=1) layer.
        rank_multiple: with `speedup`, ranks are multiples of this (see
            `select_ranks`).
        iterations: alternations of the nonlinear solver.
        samples: response positions sampled per layer from `data`.
        batch_size: calibration batch size.
        seed: seed of the position sampling.

    Returns:
        The factorized model.
    """
    _check_model(model)
    if method not in _METHODS:
        raise ValueError(
            f"Expected `method` in {_METHODS}. Received: method={method!r}"
        )
    if not isinstance(asymmetric, bool):
        raise ValueError(
            f"Expected `asymmetric` to be a bool. Received: asymmetric={asymmetric!r}"
        )
    iterations = _check_positive_int("iterations", iterations)
    rank_multiple = _check_positive_int("rank_multiple", rank_multiple)
    samples = _check_positive_int("samples", samples)
    batch_size = _check_positive_int("batch_size", batch_size)
    if (ranks is None) == (speedup is None):
        raise ValueError(
            "Give exactly one of `ranks` (a dict of layer name -> rank) and `speedup` "
            f"(a multiply-add speed-up target). Received: ranks={ranks!r}, "
            f"speedup={speedup!r}"
        )
    if ranks is not None and layers is not None:
        raise ValueError(
            "`layers` selects the candidates of a `speedup` target; with `ranks`, "
            "the keys of `ranks` are the layers. Received both."
        )
    if ranks is not None and rank_multiple != 1:
        raise ValueError(
            "`rank_multiple` constrains the ranks chosen for a `speedup` target; with "
            "`ranks`, give the ranks themselves. "
            f"Received: rank_multiple={rank_multiple}"
        )
    if method == "nonlinear" and data is None:
        raise ValueError(
            "method='nonlinear' reconstructs each layer's responses on real inputs "
            "and needs calibration `data` (e.g. a few hundred training samples). "
            "Pass `data=...`, or use method='svd', which needs none."
        )

    if ranks is not None:
        sites, chosen = _explicit_ranks(model, ranks)
    else:
        target = _check_speedup(speedup)
        sites = _candidate_sites(model, layers)
    inputs = None if data is None else _as_inputs(model, data, sites)
    collected = None
    if inputs is not None and (method == "nonlinear" or ranks is None):
        energies, collected = _original_responses(
            model, inputs, sites, samples, batch_size, seed
        )
    if ranks is None:
        if collected is None:
            energies = [_svd_energy(site) for site in sites]
        chosen = _greedy_ranks(sites, energies, target, rank_multiple)

    def clone(layer):
        if layer.name in chosen:
            return _low_rank_layer(layer, chosen[layer.name])
        return layer.__class__.from_config(layer.get_config())

    new_model = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if layer.name not in chosen and layer.weights:
            new_model.get_layer(layer.name).set_weights(layer.get_weights())

    for k, site in enumerate(sites):
        if site.name not in chosen:
            continue
        rank = chosen[site.name]
        target_layer = new_model.get_layer(site.name)
        if method == "svd":
            k1, k2, bias = _svd_factors(site, rank)
            detail = "truncated SVD"
        else:
            responses, index = collected
            y = responses[k]
            if asymmetric:
                feature_model = keras.Model(new_model.inputs, target_layer.input)
                (y_hat,) = _collect(
                    feature_model, inputs, [site], [index[k]], batch_size
                )
            else:
                y_hat = y
            relu = site.layer.activation is keras.activations.relu
            f1, f2, c, start, end = _solve_responses(y, y_hat, rank, relu, iterations)
            k1, k2, bias = _response_factors(site, f1, f2, c)
            detail = (
                f"post-ReLU error {start:.4g} -> {end:.4g}"
                if relu
                else "linear responses (no ReLU)"
            )
        kernel_1 = k1.reshape(tuple(site.layer.kernel.shape)[:-1] + (rank,))
        kernel_2 = k2.reshape(target_layer.kernel_2.shape)
        target_layer.set_weights(
            [
                kernel_1.astype(np.float32),
                kernel_2.astype(np.float32),
                bias.astype(np.float32),
            ]
        )
        logging.info(
            "factorize: layer %r rank %d/%d, %d -> %d multiply-adds (%s)",
            site.name,
            rank,
            site.max_rank,
            site.macs,
            site.factor_macs(rank),
            detail,
        )
    return new_model
