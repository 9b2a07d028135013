"""Per-tensor encoding: the candidate payloads of one weight buffer and the choice among
them.

Numpy only. Lossless candidates keep every bit (exact codebook, per-channel exact
codebooks along the first or last axis, or the raw element bytes, each dense or with a
sparse relative index, fixed-width or Huffman coded); lossy candidates
share weights by 1-D k-means (Deep Compression stage 2), keeping exact zeros exact so
that pruned weights stay pruned. The smallest payload wins; sizes are exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tfedge import codecs
from tfedge.tflite import TYPES, schema

# Tensor types whose weights may be shared lossily: k-means over real values, and over
# the integer codes of int8 weights (symmetric, so zero stays zero; centroids are
# rounded to integers, and per-channel scales keep every channel on the same [-127, 127]
# grid).
LOSSY_TYPES = frozenset(
    {schema().TensorType.FLOAT32, schema().TensorType.FLOAT16, schema().TensorType.INT8}
)
# Tensor types packed losslessly. Integer index/shape types (INT32, INT64) stay raw:
# kernels such as RESHAPE, PAD or STRIDED_SLICE need them as constants when they
# prepare.
LOSSLESS_TYPES = frozenset(
    getattr(schema().TensorType, n)
    for n in ("FLOAT32", "FLOAT16", "INT8", "UINT8", "INT16", "UINT16", "BFLOAT16")
)
# Tensor types whose byte planes are also tried rotated left by one bit (the sign to
# the bottom, the exponent filling the top byte of a float32 or bfloat16).
_FLOAT_TYPES = frozenset(
    getattr(schema().TensorType, n)
    for n in ("FLOAT32", "FLOAT16", "BFLOAT16", "FLOAT64")
)
# Below this fraction of fill elements a sparse layout cannot beat a dense one.
_SPARSE_MIN_FILL = 0.05
# Exact zeros above this fraction are treated as pruned: lossy sharing keeps them exact.
_PRUNED_MIN_ZEROS = 0.01


@dataclass
class Encoded:
    """One encoded weight buffer."""

    payload: bytes
    encoding: str  # "<layout>/<values>/<coding>"
    bits: int | None
    sparsity: float
    decoded: np.ndarray  # uint8: the bytes the expander will produce
    weight_error: float
    entropy_bytes: float
    lossless: bool


def _uint_view(arr: np.ndarray) -> np.ndarray:
    return arr.view(np.dtype(f"<u{arr.dtype.itemsize}"))


def _describe(payload: bytes) -> str:
    """'<layout>/<values>/<codings>' of a payload, e.g.
    'sparse/codebook/fixed+huffman'."""
    return codecs.inspect_payload(payload).encoding


def _entropy_bytes(
    symbols: np.ndarray, extra_symbols: np.ndarray | None, table_bytes: int
) -> float:
    total = codecs.entropy_bits(symbols) * symbols.size
    if extra_symbols is not None and extra_symbols.size:
        total += codecs.entropy_bits(extra_symbols) * extra_symbols.size
    return total / 8.0 + table_bytes


# Candidates encoded to compare exact sizes after ranking by estimated size (rANS
# sizes are estimated to a few bytes; fixed-width and Huffman sizes are exact).
_EXACT_FINALISTS = 2


def _smallest(
    options: list[dict], finalists: int = _EXACT_FINALISTS
) -> tuple[dict, bytes]:
    """The option whose payload is smallest, and that payload: options are ranked by
    their estimated sizes (no encoding), then the best `finalists` are encoded and the
    smallest exact payload wins (the earlier on a tie)."""
    ranked = sorted(options, key=lambda kw: codecs.payload_size(estimate=True, **kw))
    finalists = [(kw, codecs.encode_payload(**kw)) for kw in ranked[:finalists]]
    return min(finalists, key=lambda pair: len(pair[1]))


def _encode_smallest(options: list[dict]) -> bytes:
    """Encodes the option whose exact payload size is smallest."""
    return _smallest(options)[1]


def _codebook_options(
    ttype: int,
    arr: np.ndarray,
    codebook: np.ndarray,
    indices: np.ndarray,
    bits: int | None,
) -> list[dict]:
    """Dense and (when worth it) sparse layouts of one codebook assignment."""
    size = arr.dtype.itemsize
    n = indices.size
    common = dict(
        element_type=ttype,
        element_size=size,
        count=n,
        value_kind="codebook",
        codebook=codebook,
        indices=indices,
        index_bits=bits,
    )
    options = [dict(layout="dense", **common)]
    if n:
        counts = np.bincount(indices, minlength=len(codebook))
        fill = int(np.argmax(counts))
        if counts[fill] / n >= _SPARSE_MIN_FILL:
            options.append(dict(layout="sparse", fill=fill, **common))
    return options


def few_distinct(arr: np.ndarray, limit: int = codecs.MAX_CODEBOOK) -> bool:
    """Whether `arr` may have at most `limit` distinct values (a cheap sample check
    first)."""
    head = _uint_view(arr[:4096])
    if np.unique(head).size > limit:
        return False
    return np.unique(_uint_view(arr)).size <= limit


@dataclass
class ChannelCodebook:
    """Exact per-channel codebooks: entry 0 of every channel is the tensor's most common
    value (so a sparse layout can leave it out), then each channel's other values."""

    codebook: np.ndarray  # (C, K), the tensor's dtype
    indices: np.ndarray  # one per element, < K
    run: int  # elements per channel run: element i is in channel (i // run) % C

    @property
    def k(self) -> int:
        return self.codebook.shape[1]


def _channel_layouts(shape, n: int) -> list[tuple[int, int]]:
    """(channels, run) of the first and last axes of a tensor of at least 2 dims: the
    output channels of TFLite's [O, H, W, I] and [O, I] kernels, and the channels of a
    depthwise [1, H, W, C] kernel."""
    dims = [int(d) for d in shape or []]
    if len(dims) < 2 or int(np.prod(dims)) != n or n == 0:
        return []
    layouts = []
    for axis in (0, len(dims) - 1):
        c = dims[axis]
        run = int(np.prod(dims[axis + 1 :]))
        if 1 < c < n and (c, run) not in layouts:
            layouts.append((c, run))
    return layouts


def channel_codebook(
    arr: np.ndarray, channels: int, run: int, limit: int = codecs.MAX_CODEBOOK
):
    """Exact per-channel codebooks of `arr` (1-D) for `channels` channels of
    `run`-element runs, or None when a channel has more than `limit` distinct values (or
    the elements are wider than 4 bytes)."""
    if arr.dtype.itemsize > 4 or arr.size % (channels * run):
        return None
    u = _uint_view(arr)
    # Cheap rejection first: the first channel's first elements.
    first = u[: min(run, 4096)] if run > 1 else u[: channels * 4096 : channels]
    if np.unique(first).size > limit:
        return None
    channel = (np.arange(u.size, dtype=np.int64) // run) % channels
    fill = _most_common_value(u)
    other = u != fill
    keys = (channel[other].astype(np.uint64) << np.uint64(32)) | u[other].astype(
        np.uint64
    )
    uniq, inverse = np.unique(keys, return_inverse=True)
    key_channel = (uniq >> np.uint64(32)).astype(np.int64)
    first_key = np.searchsorted(key_channel, np.arange(channels))
    per_channel = np.bincount(key_channel, minlength=channels)
    k = 1 + int(per_channel.max(initial=0))
    if k > limit:
        return None
    book = np.full((channels, k), fill, dtype=u.dtype)
    slot = np.arange(uniq.size) - first_key[key_channel] + 1
    book[key_channel, slot] = (uniq & np.uint64(0xFFFFFFFF)).astype(u.dtype)
    indices = np.zeros(u.size, np.int64)
    indices[other] = inverse.reshape(-1) - first_key[channel[other]] + 1
    return ChannelCodebook(book.view(arr.dtype), indices, run)


def _most_common_value(u: np.ndarray):
    values, counts = np.unique(u, return_counts=True)
    return values[np.argmax(counts)]


def _channel_options(ttype: int, arr: np.ndarray, cb: ChannelCodebook) -> list[dict]:
    """Dense and (when worth it) sparse layouts of per-channel codebooks."""
    common = dict(
        element_type=ttype,
        element_size=arr.dtype.itemsize,
        count=arr.size,
        value_kind="channel_codebook",
        codebook=cb.codebook,
        indices=cb.indices,
        channel_run=cb.run,
    )
    options = [dict(layout="dense", **common)]
    if np.mean(cb.indices == 0) >= _SPARSE_MIN_FILL:
        options.append(dict(layout="sparse", fill=0, **common))
    return options


def exactly_codable(arr: np.ndarray, shape=None) -> bool:
    """Whether `arr` has an exact codebook: at most 256 distinct values in all, or per
    channel along its first or last axis (a per-channel scaled ternary or shared
    kernel)."""
    if few_distinct(arr):
        return True
    return any(
        channel_codebook(arr, channels, run) is not None
        for channels, run in _channel_layouts(shape, arr.size)
    )


def encode_lossless(
    ttype: int, arr: np.ndarray, shape=None, *, finalists: int = _EXACT_FINALISTS
) -> Encoded:
    """The smallest bit-exact payload of `arr` (1-D, the tensor's dtype); with the
    tensor's `shape`, per-channel codebooks along its first and last axes are tried
    too. `finalists`: how many of the candidates ranked best by estimated size are
    encoded (rANS encoding is the cost)."""
    size = arr.dtype.itemsize
    n = arr.size
    u = _uint_view(arr)
    cands: list[dict] = []
    uniq, inverse = np.unique(u, return_inverse=True)
    inverse = inverse.reshape(-1)
    if 0 < uniq.size <= codecs.MAX_CODEBOOK or (
        size > 1 and uniq.size <= codecs.MAX_LARGE_CODEBOOK
    ):
        # Past 256 entries (format version 3): indices of 9 to 16 bits, rANS coded.
        bits = max(1, math.ceil(math.log2(uniq.size)))
        cands += _codebook_options(ttype, arr, uniq.view(arr.dtype), inverse, bits)
    channel_books = {}
    for channels, run in _channel_layouts(shape, n) if uniq.size > 2 else []:
        cb = channel_codebook(arr, channels, run)
        # Worth a try only with fewer entries per channel than one codebook has in all.
        if cb is not None and cb.k < uniq.size:
            for option in _channel_options(ttype, arr, cb):
                cands.append(option)
                channel_books[id(option)] = cb
    common = dict(element_type=ttype, element_size=size, count=n, value_kind="raw")
    cands.append(dict(layout="dense", elements=arr, **common))
    # Byte planes (format version 3): each byte position its own stream; a float's
    # bits rotated left by one first, so that its exponent fills the top byte.
    rotations = () if size == 1 else (0, 1) if ttype in _FLOAT_TYPES else (0,)
    planes = [dict(common, value_kind="planes", plane_rotation=r) for r in rotations]
    cands += [dict(layout="dense", elements=arr, **kw) for kw in planes]
    if n and uniq.size:
        counts = np.bincount(inverse, minlength=uniq.size)
        mode = int(np.argmax(counts))
        if counts[mode] / n >= _SPARSE_MIN_FILL:
            fill = uniq[mode : mode + 1].view(arr.dtype)
            for kw in [common, *planes]:
                cands.append(dict(layout="sparse", elements=arr, fill=fill, **kw))
    chosen, best = _smallest(cands, finalists)
    sparsity = _zero_fraction(arr)
    if id(chosen) in channel_books:
        cb = channel_books[id(chosen)]
        bits = max(1, math.ceil(math.log2(cb.k)))
        stored = codecs.inspect_payload(best).codebook  # shared entries stored once
        entropy = _entropy_bytes(cb.indices, None, stored.nbytes)
    elif chosen["value_kind"] == "codebook":
        bits = max(1, math.ceil(math.log2(uniq.size)))
        entropy = _entropy_bytes(inverse, None, uniq.size * size)
    elif chosen["value_kind"] == "planes":
        # The floor of byte planes: each plane's order-0 entropy.
        bits = None
        rotated = codecs.rotate_left(u, chosen["plane_rotation"])
        rows = rotated.astype(f"<u{size}").view(np.uint8).reshape(-1, size)
        entropy = sum(_entropy_bytes(rows[:, b], None, 0) for b in range(size))
    else:
        bits = None
        entropy = _entropy_bytes(arr.view(np.uint8), None, 0)
    return Encoded(
        payload=best,
        encoding=_describe(best),
        bits=bits,
        sparsity=sparsity,
        decoded=arr.view(np.uint8).copy(),
        weight_error=0.0,
        entropy_bytes=entropy,
        lossless=True,
    )


@dataclass
class Shared:
    """A weight-sharing assignment: codebook (tensor dtype) and one index per
    element."""

    bits: int
    codebook: np.ndarray
    indices: np.ndarray
    weight_error: float


def share(arr: np.ndarray, bits: int, *, init: str = "linear", seed: int = 0) -> Shared:
    """k-means weight sharing with 2^bits clusters; exact zeros (pruned) kept exact."""
    if not 1 <= bits <= 8:
        raise ValueError(f"Expected `bits` in [1, 8]. Received: bits={bits}")
    values = arr.astype(np.float64)
    n = values.size
    k = 2**bits
    zeros = values == 0.0
    n_zero = int(zeros.sum())
    if n and n_zero / n >= _PRUNED_MIN_ZEROS:
        nz = values[~zeros]
        if nz.size:
            centroids, labels = codecs.kmeans_1d(nz, k - 1, init=init, seed=seed)
        else:
            centroids, labels = np.zeros(0), np.zeros(0, np.int64)
        codebook = np.concatenate([[0.0], centroids])
        indices = np.zeros(n, np.int64)
        indices[~zeros] = np.asarray(labels, np.int64) + 1
    else:
        codebook, labels = codecs.kmeans_1d(values, k, init=init, seed=seed)
        indices = np.asarray(labels, np.int64)
    if arr.dtype.kind in "iu":
        info = np.iinfo(arr.dtype)
        codebook = np.clip(np.round(codebook), info.min, info.max)
    codebook = codebook.astype(arr.dtype)
    # Rounding centroids to the tensor's dtype can merge two; keep the codebook
    # canonical.
    codebook_u, remap = np.unique(_uint_view(codebook), return_inverse=True)
    codebook = codebook_u.view(arr.dtype)
    indices = remap.reshape(-1)[indices]
    # Norms without BLAS (numpy's norm calls dot, slow when cores are shared).
    err = math.sqrt(float(np.sum(np.square(codebook[indices] - values))))
    ref = math.sqrt(float(np.sum(np.square(values))))
    return Shared(bits, codebook, indices, err / ref if ref > 0 else err)


def encode_shared(ttype: int, arr: np.ndarray, shared: Shared) -> Encoded:
    """The smallest payload of a sharing assignment."""
    codebook, indices = shared.codebook, shared.indices
    index_bits = max(1, math.ceil(math.log2(max(codebook.size, 1))))
    decoded = codebook[indices]
    best = _encode_smallest(
        _codebook_options(ttype, arr, codebook, indices, index_bits)
    )
    return Encoded(
        payload=best,
        encoding=_describe(best),
        bits=index_bits,
        sparsity=_zero_fraction(arr),
        decoded=np.ascontiguousarray(decoded).view(np.uint8).copy(),
        weight_error=shared.weight_error,
        entropy_bytes=_entropy_bytes(indices, None, codebook.size * arr.itemsize),
        lossless=bool(np.array_equal(_uint_view(decoded), _uint_view(arr))),
    )


def _zero_fraction(arr: np.ndarray) -> float:
    """Fraction of elements that are numerically zero (+0.0 and -0.0 alike)."""
    return float(np.mean(arr == 0)) if arr.size else 0.0


def element_array(ttype: int, raw: np.ndarray) -> np.ndarray:
    """The buffer's bytes as a 1-D array of the tensor type's elements."""
    info = TYPES[ttype]
    return np.ascontiguousarray(raw).view(info.dtype).reshape(-1)
