"""The lossy options of one weight tensor, each with its exact payload size and the
exact values its payload decodes to (what the drift search measures is written).

Numpy only. Two kinds of option, at 1-8 bits:
- per-tensor sharing: one k-means codebook for the tensor (Deep Compression stage 2);
- per-channel scaled sharing: each output channel (the first axis of a [O, ...] kernel,
  the last of a depthwise [1, H, W, C] one) is divided by its largest magnitude, the
  scaled values share one k-means codebook, and each channel's codebook is that codebook
  times its scale, refined by a few Lloyd steps within the channel. Channels whose
  ranges differ (depthwise kernels, per-channel-quantized kernels) then get as many
  levels each as one codebook gives the whole tensor. Stored as per-channel codebooks
  (docs/FORMAT.md, version 2).
Exact zeros (pruned weights) stay exact in both.
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
# Tensors with fewer elements than this stay exact in the automatic mode: biases, norms
# and small tables cost little and their errors reach the outputs undamped (Deep
# Compression shares kernels, not biases).
LOSSY_MIN_ELEMENTS = 1024
# Per-channel codebooks are tried only while their tables take at most this fraction
# of the tensor's raw bytes (beyond that the per-tensor codebook is smaller anyway).
_CHANNEL_TABLE_MAX_FRACTION = 0.25
# Lloyd refinement steps of each channel's codebook, and the largest elements x
# entries product refined (the step holds an elements x entries distance table).
_CHANNEL_LLOYD_STEPS = 3
_CHANNEL_LLOYD_MAX_CELLS = 1 << 24


@dataclass
class Option:
    """One way to write a tensor: `decoded` is exactly what its payload expands to."""

    label: str  # "lossless", "5 bits", "4 bits/channel"
    bits: int | None  # index bits; None for lossless
    payload_bytes: int  # the exact payload size
    weight_error: float
    decoded: np.ndarray  # uint8, the tensor's bytes after decoding
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


def _relative_error(decoded: np.ndarray, values: np.ndarray) -> float:
    v = values.astype(np.float64)
    ref = float(np.linalg.norm(v))
    err = float(np.linalg.norm(decoded.astype(np.float64) - v))
    return err / ref if ref > 0 else err


def _smallest(options: list[dict]) -> tuple[dict, int]:
    sizes = [codecs.payload_size(**kw) for kw in options]
    i = int(np.argmin(sizes))
    return options[i], sizes[i]


def shared_option(ttype: int, values: np.ndarray, shared: _encode.Shared) -> Option:
    """Per-tensor sharing: the smallest layout of one k-means assignment."""
    codebook, indices = shared.codebook, shared.indices
    index_bits = max(1, math.ceil(math.log2(max(codebook.size, 1))))
    kwargs, size = _smallest(
        _encode._codebook_options(ttype, values, codebook, indices, index_bits)
    )
    decoded = np.ascontiguousarray(codebook[indices])
    return Option(
        f"{shared.bits} bits",
        index_bits,
        size,
        shared.weight_error,
        decoded.view(np.uint8).reshape(-1),
        _kwargs=kwargs,
        sparsity=float(np.mean(decoded == 0)) if decoded.size else 0.0,
        entropy_bytes=_encode._entropy_bytes(
            indices, None, codebook.size * values.itemsize
        ),
    )


def channel_layout(shape, n: int) -> tuple[int, int] | None:
    """(channels, run) of the output channels: the first axis when it has more than
    one entry, else the last (a depthwise [1, H, W, C] kernel)."""
    layouts = _encode._channel_layouts(shape, n)
    return layouts[0] if layouts else None


def channel_option(
    ttype: int, values: np.ndarray, bits: int, channels: int, run: int
) -> Option | None:
    """Per-channel scaled sharing at `bits` (see the module docstring), or None when
    its tables would be too large or the dtype is not float."""
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
    steps = _CHANNEL_LLOYD_STEPS if n * k <= _CHANNEL_LLOYD_MAX_CELLS else 0
    for step in range(steps + 1):
        book = _as_dtype(book, values.dtype)
        if keep_zero:
            book[:, 0] = 0.0
        labels = _nearest(w, channel, book)
        if keep_zero:
            labels[zeros] = 0
        if step == steps:
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


def _nearest(w: np.ndarray, channel: np.ndarray, book: np.ndarray) -> np.ndarray:
    """Index of the nearest entry of each element's channel codebook (rows
    ascending)."""
    mids = (book[:, 1:] + book[:, :-1]) / 2  # (C, K - 1)
    labels = np.zeros(w.size, np.int64)
    for j in range(mids.shape[1]):
        labels += w >= mids[channel, j]
    return labels
