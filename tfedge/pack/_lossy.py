"""The lossy options of one weight tensor, each with its exact payload size and the
exact values its payload decodes to (what the drift search measures is written).

Numpy only. Two kinds of option, at 1-8 bits:
- per-tensor sharing: one k-means codebook for the tensor (Deep Compression stage 2),
  or (`ecsq_option`) one codebook from entropy-constrained scalar quantization (Choi,
  El-Khamy and Lee 2017): the assignment minimising squared error plus lambda times
  each index's code length, on a ladder of lambdas (`ECSQ_ERRORS`), each point sized
  by the real stream coder, tables included;
- per-channel scaled sharing: each output channel (the first axis of a [O, ...] kernel,
  the last of a depthwise [1, H, W, C] one) is divided by its largest magnitude, the
  scaled values share one k-means codebook, and each channel's codebook is that codebook
  times its scale, refined by a few Lloyd steps within the channel. Channels whose
  ranges differ (depthwise kernels, per-channel-quantized kernels) then get as many
  levels each as one codebook gives the whole tensor. Stored as per-channel codebooks
  (docs/FORMAT.md, version 2).
Exact zeros (pruned weights) stay exact in both.

Past the finest codebook, for tensors whose every codebook option drifts too far
(`grid_options`): the weights rounded to a uniform grid of 9-14 bits whose step is a
power of two (per output channel when the channels' ranges differ), written by the
lossless coder. A multiple of a power-of-two step below 2**14 has at most 14
significant bits, so a float32's low mantissa bits are zero and its byte planes
(docs/FORMAT.md, section 2.4) code in about the grid's entropy, with no codebook to
store: a codebook of thousands of entries would cost more than the indices it saves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tfedge import codecs
from tfedge.pack import _encode

# The largest relative weight error ||w - w'|| / ||w|| any tensor may take in the
# automatic mode, whatever the drift check says: 3-bit k-means of Gaussian weights
# gives 0.19 (Lloyd-Max), so 3 bits stay reachable, while 1-2 bit codings (0.34-0.60)
# and zeroed kernels (1.0) are never chosen on the word of a check that may be blind.
MAX_WEIGHT_ERROR = 0.2
# Tensors with fewer elements than this stay exact in the automatic mode: below it a
# shared tensor saves at most a few hundred bytes, which the decode operator, payload
# header and codebook mostly take back, while its errors reach the outputs undamped
# (Deep Compression shares kernels, not biases; biases stay exact whatever their size).
LOSSY_MIN_ELEMENTS = 256
# A sparse layout of shared weights is sized only when exact zeros (pruned weights)
# are at least this fraction: below it Huffman codes the zero index in about two bits
# or fewer, which a relative index does not beat, and sizing it costs a search over
# gap widths.
_LOSSY_SPARSE_MIN_FILL = 0.3
# Per-channel codebooks are tried only while their tables take at most this fraction
# of the tensor's raw bytes (beyond that the per-tensor codebook is smaller anyway).
_CHANNEL_TABLE_MAX_FRACTION = 0.25
# Lloyd refinement steps of each channel's codebook after the shared k-means.
_CHANNEL_LLOYD_STEPS = 2
# Per-channel codebooks are tried up to this many bits (the table-size bound above
# still applies): channels whose ranges differ widely (constant-Q filter banks, folded
# batch norms) need 7-8 bits per channel to match int8 per-channel quantization.
CHANNEL_MAX_BITS = 8
# Per-channel codebooks are tried only when the largest channel's range is at least
# this many times the median channel's: with ranges alike, the per-tensor codebook
# gives each channel as many levels without the tables.
CHANNEL_MIN_SPREAD = 1.5


# ECSQ rate ladder (`ecsq_option`): the relative weight errors aimed at, one option
# each. At relative error e the high-rate distortion-rate curve D(R) ~ 2**(-2R) has
# slope dD/dR = -2 ln 2 * D, so lambda = 2 ln 2 * e**2 (in units of the weights' mean
# square per bit) sits where one more bit buys what it costs, and the uniform start
# has step sqrt(12) * e * rms (uniform error of that step: e * rms). From 0.02 (about
# 7-bit k-means) up to just under MAX_WEIGHT_ERROR, ratios about 1.4 apart: finer than
# the integer bit widths of k-means, so the search can fill its tolerance.
ECSQ_ERRORS = (0.02, 0.03, 0.045, 0.065, 0.09, 0.13, 0.18)
# The ECSQ iterations run on at most this many values (evenly spaced quantiles of the
# tensor, so the distribution and its tails are kept); the whole tensor is then
# assigned once with the code lengths found. 16,384 quantiles estimate each of up to
# 256 cells' probability to about 1/64 of a bit of code length where it matters.
_ECSQ_SAMPLE = 16384
# An ECSQ point is sized exactly (an rANS encoding, the costly part) only when its
# estimated dense payload, less this many bytes (the estimate's error is a few bytes
# per stream), is smaller than every k-means option of no more weight error.
_ESTIMATE_SLACK_BYTES = 16
# The most ECSQ iterations (assignment, then code lengths and centroids) per lambda;
# from the uniform start they settle in 10-20.
_ECSQ_ITERATIONS = 20


# Uniform grid options (`grid_options`): the index widths tried, 14 bits past float16's
# precision: the constant-Q filter bank of basic-pitch (a grid is what it takes)
# drifts, alone on the benchmark's 32 samples, 0.30 at 9 bits, 0.058 at 12 and 0.048
# at 13, in 7.2, 9.5 and 10.3 KB against 19.4 KB exact. 8 bits is int8 per-channel
# quantization entropy-coded (a step per channel, where a per-channel codebook's
# tables would be too large): pyopen embedding_model held to the drift of
# ai-edge-quantizer's int8 file (0.0178, scripts/bench_corpus.py) 3.67x -> 3.86x
# against the quantizer's 3.60x; 7 bits added nothing there.
GRID_BITS = (8, 9, 10, 11, 12, 13, 14)
# Grid options are built for a tensor only when its finest codebook option, measured
# alone, drifts past this fraction of the tolerance. The search keeps a reserve for
# fresh inputs (the pack's FRESH_SAMPLES estimate), and sensitivity is measured on 4
# samples, the maximum over all of them being larger: a tensor past a quarter on the
# probe takes most of the budget on all samples (basic-pitch's second filter bank:
# under half the tolerance 0.228 on the probe at 8 bits, 0.19 on all 32 samples), so
# only finer options let it be shared. Below it the codebooks serve, and the grid's
# encodings are not paid for.
GRID_WHEN_DRIFT_FRACTION = 0.25
# Grid options are built only for tensors whose exact payload takes at least this
# many bytes: each costs its encodings and one or two model runs of the sensitivity
# probe. At the default tolerance pose_landmark_full (float16) ran its probe 131 times
# without grids, 218 with them from 4 KB and 181 from 16 KB, writing the same file
# (1.16x against 1.13x) from either; palm_detection_lite 1.40x either way (1.16x
# without).
GRID_MIN_BYTES = 16384
# A grid option encodes only the lossless candidate its estimate ranks first: the
# estimate is within a few bytes of the payload, the widths kilobytes apart, and each
# rANS encoding is most of a grid option's time.
_GRID_FINALISTS = 1


# The option kind of ECSQ codebooks: "tensor", as k-means per-tensor codebooks, so
# that the two compete on one front and share one sensitivity probe (one codebook per
# tensor spreads the error alike). A kind of its own costs a probe per tensor and
# gave no better file on mediapipe-hand_recrop (2.43x either way).
ECSQ_KIND = "tensor"


@dataclass
class Option:
    """One way to write a tensor: `decoded` is exactly what its payload expands to."""

    label: str  # "lossless", "5 bits", "4 bits/channel"
    bits: int | None  # index bits; None for lossless
    payload_bytes: int  # the exact payload size
    weight_error: float
    decoded: np.ndarray  # uint8, the tensor's bytes after decoding
    kind: str = "tensor"  # "tensor" or "channel" codebooks (lossy options)
    _kwargs: dict | None = None  # encode_payload arguments (lossy options)
    _encoded: _encode.Encoded | None = None
    sparsity: float = 0.0
    entropy_bytes: float = 0.0

    @property
    def lossless(self) -> bool:
        return self.bits is None

    def encoded(self) -> _encode.Encoded:
        if self._encoded is None:
            payload = codecs.encode_payload(**self._kwargs)
            self._encoded = _encode.Encoded(
                payload=payload,
                encoding=_encode._describe(payload),
                bits=self.bits,
                sparsity=self.sparsity,
                decoded=self.decoded,
                weight_error=self.weight_error,
                entropy_bytes=self.entropy_bytes,
                lossless=False,
            )
        return self._encoded


def lossless_option(enc: _encode.Encoded) -> Option:
    return Option(
        "lossless",
        None,
        len(enc.payload),
        0.0,
        enc.decoded,
        _encoded=enc,
        sparsity=enc.sparsity,
        entropy_bytes=enc.entropy_bytes,
    )


def _norm(x: np.ndarray) -> float:
    """The L2 norm without BLAS (numpy's norm calls dot, slow when cores are
    shared)."""
    return math.sqrt(float(np.sum(np.square(x))))


def _relative_error(decoded: np.ndarray, values: np.ndarray) -> float:
    v = values.astype(np.float64)
    ref = _norm(v)
    err = _norm(decoded.astype(np.float64) - v)
    return err / ref if ref > 0 else err


def _smallest(options: list[dict]) -> tuple[dict, int]:
    sizes = [codecs.payload_size(**kw) for kw in options]
    i = int(np.argmin(sizes))
    return options[i], sizes[i]


def shared_option(
    ttype: int,
    values: np.ndarray,
    shared: _encode.Shared,
    label: str | None = None,
    kind: str = "tensor",
) -> Option:
    """Per-tensor sharing: the smallest layout of one codebook assignment (k-means,
    or ECSQ with its `label`)."""
    codebook, indices = shared.codebook, shared.indices
    index_bits = max(1, math.ceil(math.log2(max(codebook.size, 1))))
    layouts = _encode._codebook_options(ttype, values, codebook, indices, index_bits)
    kwargs, size = _smallest(
        [kw for kw in layouts if kw["layout"] == "dense" or _sparse_pays(kw)]
    )
    decoded = np.ascontiguousarray(codebook[indices])
    return Option(
        label or f"{shared.bits} bits",
        index_bits,
        size,
        shared.weight_error,
        decoded.view(np.uint8).reshape(-1),
        kind=kind,
        _kwargs=kwargs,
        sparsity=float(np.mean(decoded == 0)) if decoded.size else 0.0,
        entropy_bytes=_encode._entropy_bytes(
            indices, None, codebook.size * values.itemsize
        ),
    )


def _sparse_pays(kwargs: dict) -> bool:
    """Whether a sparse layout of a shared tensor is worth sizing: its fill (the most
    common index) must be exact zero and fill at least _LOSSY_SPARSE_MIN_FILL."""
    fill = int(kwargs["fill"])
    if kwargs["codebook"][fill] != 0:
        return False
    return float(np.mean(kwargs["indices"] == fill)) >= _LOSSY_SPARSE_MIN_FILL


def channel_layout(shape, n: int) -> tuple[int, int] | None:
    """(channels, run) of the output channels: the first axis when it has more than
    one entry, else the last (a depthwise [1, H, W, C] kernel)."""
    layouts = _encode._channel_layouts(shape, n)
    return layouts[0] if layouts else None


def channel_option(
    ttype: int, values: np.ndarray, bits: int, channels: int, run: int
) -> Option | None:
    """Per-channel scaled sharing at `bits` (see the module docstring), or None when
    its tables would be too large, the channels' ranges are alike or the dtype is not
    float."""
    if values.dtype.kind != "f":
        return None
    k = 2**bits
    n = values.size
    if channels * k * values.itemsize > _CHANNEL_TABLE_MAX_FRACTION * values.nbytes:
        return None
    w = values.astype(np.float64)
    channel = (np.arange(n, dtype=np.int64) // run) % channels
    scale = np.zeros(channels)
    np.maximum.at(scale, channel, np.abs(w))
    scale[scale == 0] = 1.0
    if scale.max() < CHANNEL_MIN_SPREAD * np.median(scale):
        return None  # channels alike: one codebook serves them as well
    u = w / scale[channel]
    zeros = w == 0.0
    keep_zero = n and zeros.mean() >= _encode._PRUNED_MIN_ZEROS
    if keep_zero:
        nz = u[~zeros]
        if not nz.size:
            return None
        centroids, _ = codecs.kmeans_1d(nz, k - 1)
        centroids = np.concatenate([[0.0], centroids])
    else:
        centroids, _ = codecs.kmeans_1d(u, k)
    centroids = np.sort(centroids)
    k = centroids.size
    book = scale[:, None] * centroids[None, :]  # (C, K) float64
    for step in range(_CHANNEL_LLOYD_STEPS + 1):
        book = _as_dtype(book, values.dtype)
        if keep_zero:
            book[:, 0] = 0.0
        labels = _nearest(u, channel, np.clip(book / scale[:, None], -1.0, 1.0))
        if keep_zero:
            labels[zeros] = 0
        if step == _CHANNEL_LLOYD_STEPS:
            break
        cell = channel * k + labels
        counts = np.bincount(cell, minlength=channels * k).reshape(channels, k)
        sums = np.bincount(cell, weights=w, minlength=channels * k).reshape(channels, k)
        filled = counts > 0
        book = np.where(filled, sums / np.maximum(counts, 1), book)
    codebook = book.astype(values.dtype)
    decoded = codebook[channel, labels]
    options = [
        dict(
            element_type=ttype,
            element_size=values.itemsize,
            count=n,
            layout="dense",
            value_kind="channel_codebook",
            codebook=codebook,
            indices=labels,
            channel_run=run,
        )
    ]
    if keep_zero and np.mean(labels == 0) >= _encode._SPARSE_MIN_FILL:
        options.append(dict(options[0], layout="sparse", fill=0))
    kwargs, size = _smallest(options)
    return Option(
        f"{bits} bits/channel",
        max(1, math.ceil(math.log2(k))),
        size,
        _relative_error(decoded, values),
        np.ascontiguousarray(decoded).view(np.uint8).reshape(-1),
        kind="channel",
        _kwargs=kwargs,
        sparsity=float(np.mean(decoded == 0)),
        entropy_bytes=_encode._entropy_bytes(
            labels, None, codebook.size * values.itemsize
        ),
    )


def _as_dtype(book: np.ndarray, dtype) -> np.ndarray:
    """The codebook rounded to the tensor's dtype, sorted within each channel, as
    float64 (what decoding gives)."""
    return np.sort(book.astype(dtype).astype(np.float64), axis=1)


def _nearest(u: np.ndarray, channel: np.ndarray, book: np.ndarray) -> np.ndarray:
    """Index of the nearest entry of each scaled element's channel codebook (rows
    ascending, scaled like `u` into [-1, 1]): one search over every channel's
    midpoints, each channel shifted by 4 so that they stay apart and sorted."""
    k = book.shape[1]
    if k == 1:
        return np.zeros(u.size, np.int64)
    mids = (book[:, 1:] + book[:, :-1]) / 2 + 4.0 * np.arange(book.shape[0])[:, None]
    found = np.searchsorted(mids.reshape(-1), u + 4.0 * channel, side="right")
    return found - channel * (k - 1)


def ecsq_share(values: np.ndarray, error: float) -> _encode.Shared | None:
    """ECSQ of a float tensor aimed at relative weight error `error` (see
    `ECSQ_ERRORS`): `codecs.ecsq_1d`'s iteration (uniform start of step
    sqrt(12) * error * rms, cost (v - c)**2 / var + lambda * (-log2 p); here with an
    exact interval assignment, O(n log k) instead of O(n k)) on quantiles of the
    tensor, then every value assigned by that same cost with the code lengths
    found, and each centroid moved to its members' mean. Exact zeros stay exact when
    they are pruned weights (at least `_encode._PRUNED_MIN_ZEROS`), as in k-means
    sharing. None when the tensor is not float or has nothing to quantize."""
    if values.dtype.kind != "f" or not values.size:
        return None
    v = values.astype(np.float64)
    zeros = v == 0.0
    keep_zero = zeros.mean() >= _encode._PRUNED_MIN_ZEROS
    live = v[~zeros] if keep_zero else v
    if live.size < 2:
        return None
    mean_square = float(np.mean(np.square(live)))
    variance = float(np.var(live))
    if variance <= 0 or mean_square <= 0:
        return None
    step = math.sqrt(12.0 * mean_square) * error
    most = codecs.MAX_CODEBOOK - (1 if keep_zero else 0)
    k = int(min(most, max(2, math.ceil((live.max() - live.min()) / step) + 1)))
    # lambda in ecsq_1d's units: distortion relative to the variance.
    rate = 2.0 * math.log(2.0) * error * error * mean_square / variance
    ordered = np.sort(live)
    if ordered.size > _ECSQ_SAMPLE:
        picks = ((np.arange(_ECSQ_SAMPLE) + 0.5) * ordered.size / _ECSQ_SAMPLE).astype(
            np.int64
        )
        sample = ordered[picks]
    else:
        sample = ordered
    centroids, lengths = _ecsq_iterate(sample, k, rate * variance)
    cells = _envelope_assign(live, centroids, rate * variance * lengths)
    keep = np.bincount(cells, minlength=centroids.size) > 0
    centroids = centroids[keep]
    cells = (np.cumsum(keep) - 1)[cells]
    # Each centroid to its members' mean (the assignment is unchanged by it), in the
    # tensor's dtype; rounding can merge two, so the codebook is made canonical.
    members = np.bincount(cells, minlength=centroids.size)
    sums = np.bincount(cells, weights=live, minlength=members.size)
    book = sums / members
    if keep_zero:
        book = np.concatenate([[0.0], book])
        indices = np.zeros(v.size, np.int64)
        indices[~zeros] = cells + 1
    else:
        indices = cells
    codebook = book.astype(values.dtype)
    uniq, remap = np.unique(_encode._uint_view(codebook), return_inverse=True)
    codebook = uniq.view(values.dtype)
    indices = remap.reshape(-1)[indices]
    decoded = codebook[indices]
    bits = max(1, math.ceil(math.log2(max(codebook.size, 2))))
    return _encode.Shared(bits, codebook, indices, _relative_error(decoded, values))


def _ecsq_iterate(
    values: np.ndarray, k: int, weight: float
) -> tuple[np.ndarray, np.ndarray]:
    """`codecs.ecsq_1d`'s iteration with unit importances, in the units of the values:
    from k evenly spaced centroids, assign each value to the cell minimising
    (v - c_j)**2 + weight * (-log2 p_j) (exactly, by `_envelope_assign`), then set
    p_j to the cells' fractions and c_j to their means; a cell that empties is gone.
    Stops when no label changes. Returns (centroids, code lengths) of the live cells.
    """
    centroids = np.linspace(values.min(), values.max(), k)
    lengths = np.zeros(k)
    labels = None
    for _ in range(_ECSQ_ITERATIONS):
        new = _envelope_assign(values, centroids, weight * lengths)
        if labels is not None and np.array_equal(new, labels):
            break
        counts = np.bincount(new, minlength=centroids.size)
        keep = counts > 0
        sums = np.bincount(new, weights=values, minlength=centroids.size)
        centroids = sums[keep] / counts[keep]
        lengths = -np.log2(counts[keep] / values.size)
        labels = (np.cumsum(keep) - 1)[new]
    return centroids, lengths


def _envelope_assign(
    values: np.ndarray, centroids: np.ndarray, penalty: np.ndarray
) -> np.ndarray:
    """argmin_j (v - c_j)**2 + penalty_j for every value, exactly: the costs are
    parabolas of one curvature, so each cell is an interval, found on the lower
    envelope of the lines -2 c_j v + c_j**2 + penalty_j (a convex hull over the
    centroids in ascending order), then one search per value. `centroids` need not be
    sorted; the result indexes them."""
    order = np.argsort(centroids, kind="stable")
    c = centroids[order]
    q = c * c + penalty[order]
    hull: list[int] = []  # positions in `order`, slopes -2c falling

    def crossing(a: int, b: int) -> float:
        # v where line b (larger c) starts to be below line a.
        return (q[b] - q[a]) / (2.0 * (c[b] - c[a]))

    for j in range(c.size):
        if hull and c[hull[-1]] == c[j]:
            if q[j] >= q[hull[-1]]:
                continue
            hull.pop()
        while len(hull) >= 2 and crossing(hull[-2], j) <= crossing(hull[-2], hull[-1]):
            hull.pop()
        hull.append(j)
    bounds = np.array([crossing(a, b) for a, b in zip(hull, hull[1:], strict=False)])
    cell = np.searchsorted(bounds, values, side="right")
    return order[np.asarray(hull, np.int64)][cell]


def ecsq_option(ttype: int, values: np.ndarray, error: float) -> Option | None:
    """The ECSQ point of the rate ladder aimed at relative weight error `error`, as a
    per-tensor codebook option (None when `ecsq_share` gives none)."""
    shared = ecsq_share(values, error)
    if shared is None:
        return None
    return shared_option(ttype, values, shared, f"ecsq {error:g}", ECSQ_KIND)


def ecsq_options(ttype: int, values: np.ndarray, rivals: list[Option]) -> list[Option]:
    """The points of the ECSQ rate ladder (`ECSQ_ERRORS`, stopping past
    MAX_WEIGHT_ERROR) that no option of `rivals` of the same kind dominates: each is
    sized first by the coder's estimate, and dropped when a rival is no larger at no
    more weight error (it would leave the front anyway); the others are sized
    exactly."""
    rivals = [o for o in rivals if o.kind == ECSQ_KIND]
    out = []
    for error in ECSQ_ERRORS:
        shared = ecsq_share(values, error)
        if shared is None or shared.weight_error > MAX_WEIGHT_ERROR:
            break
        dense = _encode._codebook_options(
            ttype, values, shared.codebook, shared.indices, None
        )[0]
        estimate = codecs.payload_size(estimate=True, **dense) - _ESTIMATE_SLACK_BYTES
        if any(
            r.weight_error <= shared.weight_error and r.payload_bytes <= estimate
            for r in rivals
        ):
            continue
        out.append(shared_option(ttype, values, shared, f"ecsq {error:g}", ECSQ_KIND))
    return out


GRID_KIND = "grid"


def grid_values(values: np.ndarray, bits: int, layout: tuple[int, int] | None):
    """`values` (float, 1-D) rounded to the nearest multiple of a power-of-two step,
    the largest step that keeps 2**(bits - 1) - 1 steps within the largest magnitude:
    of the whole tensor, or of each channel when `layout` (channels, run) is given and
    the channels' ranges differ by CHANNEL_MIN_SPREAD or more. In the tensor's dtype;
    zeros stay zero. None when the dtype is not float or nothing is non-zero."""
    if values.dtype.kind != "f" or not values.size:
        return None
    w = values.astype(np.float64)
    levels = 2 ** (bits - 1) - 1
    scale = np.array([np.max(np.abs(w))])
    owner = np.zeros(w.size, np.int64)
    if layout is not None:
        channels, run = layout
        channel = (np.arange(w.size, dtype=np.int64) // run) % channels
        ranges = np.zeros(channels)
        np.maximum.at(ranges, channel, np.abs(w))
        live = ranges[ranges > 0]
        if live.size and live.max() >= CHANNEL_MIN_SPREAD * np.median(live):
            scale, owner = ranges, channel
    if not np.any(scale > 0):
        return None
    # The step: a power of two (exact in any float type, and a multiple of it keeps
    # the low mantissa bits zero); channels of zeros get a step of 1 (all zero).
    safe = np.where(scale > 0, scale, levels)
    step = np.exp2(np.floor(np.log2(safe / levels)))
    s = step[owner]
    return (np.round(w / s) * s).astype(values.dtype)


def grid_option(
    ttype: int, values: np.ndarray, bits: int, shape, layout: tuple[int, int] | None
) -> Option | None:
    """The uniform grid of `bits` bits (`grid_values`) as an option: its smallest
    exact payload (`_encode.encode_lossless` of the rounded values), decoding to
    exactly those values. None when `grid_values` gives none or the grid is the
    tensor itself."""
    rounded = grid_values(values, bits, layout)
    if rounded is None:
        return None
    error = _relative_error(rounded, values)
    if error == 0.0:
        return None
    enc = _encode.encode_lossless(ttype, rounded, shape, finalists=_GRID_FINALISTS)
    enc.weight_error, enc.lossless, enc.bits = error, False, bits
    return Option(
        f"{bits} bits grid",
        bits,
        len(enc.payload),
        error,
        enc.decoded,
        kind=GRID_KIND,
        _encoded=enc,
        sparsity=enc.sparsity,
        entropy_bytes=enc.entropy_bytes,
    )


def grid_options(ttype: int, values: np.ndarray, shape, max_bytes: int) -> list[Option]:
    """The grid options at each of GRID_BITS (up to the dtype's significand bits)
    whose payload is under `max_bytes` (the tensor's exact cost, less the graph's
    overhead), ascending weight error; none for tensors that are not float or whose
    `max_bytes` is under GRID_MIN_BYTES."""
    if values.dtype.kind != "f" or max_bytes < GRID_MIN_BYTES:
        return []
    layout = channel_layout(shape, values.size)
    # A grid finer than the dtype's significand (float16: 11 bits) is the tensor
    # itself but for its smallest values.
    significand = np.finfo(values.dtype).nmant + 1
    out = []
    for bits in sorted((b for b in GRID_BITS if b <= significand), reverse=True):
        option = grid_option(ttype, values, bits, shape, layout)
        if option is not None and option.payload_bytes < max_bytes:
            out.append(option)
    return out
