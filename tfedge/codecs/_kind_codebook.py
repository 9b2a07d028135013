"""The codebook value kinds: codebook (value kind 1: indices into K entries; past 256
entries, format version 3, 16-bit rANS indices) and per-channel codebook (value kind
2, format version 2: each channel's own K entries, the first G shared by all).

Section: [u16 K, K entries], or [u16 K, u16 G, u32 C, u32 R, G shared entries,
C x (K - G) channel entries]; then (after the layout's fill and gaps) stream V of the
indices."""

from __future__ import annotations

import dataclasses
import struct

import numpy as np

from tfedge.codecs import _bitpack, _streams
from tfedge.codecs._kindbase import (
    U32_MAX,
    UINT_BY_SIZE,
    EncodeArgs,
    KindValues,
    as_uint,
    check_value_info,
    decode_value_stream,
    element_bytes,
)

# The most codebook entries of format versions 1 and 2, and of one-byte elements:
# indices fit 8-bit symbols.
MAX_CODEBOOK = 256
# Format version 3: a codebook (value kind 1) of elements wider than one byte may hold
# up to this many entries, its indices then up to 16 bits (rANS coded).
MAX_LARGE_CODEBOOK = 65535


def codebook_limit(version: int, value_kind: str, es: int) -> int:
    """The most codebook entries a payload of this version, kind and element size may
    have: 256, or 65535 for a version-3 codebook of multi-byte elements."""
    if version >= 3 and value_kind == "codebook" and es > 1:
        return MAX_LARGE_CODEBOOK
    return MAX_CODEBOOK


# ------------------------------------------------------------------------- encoding


def prepare_codebook(a: EncodeArgs) -> KindValues:
    """Checks the codebook and indices, and lays out the section and symbols."""
    es, count, layout, value_kind = a.element_size, a.count, a.layout, a.value_kind
    if a.elements is not None:
        raise ValueError("`elements` applies to value_kind='raw' only.")
    if a.codebook is None or a.indices is None:
        raise ValueError(
            f"Expected `codebook` and `indices` for value_kind={value_kind!r}."
        )
    channels, channel_run = 1, None
    if value_kind == "channel_codebook":
        channels, channel_run = _check_channels(a.codebook, a.channel_run, count)
    book = element_bytes(a.codebook, es, "codebook")
    k = book.shape[0] // channels
    limit = codebook_limit(3, value_kind, es)
    if not 1 <= k <= limit:
        raise ValueError(
            f"Expected 1 to {limit} codebook entries (elements of {es} bytes, "
            f"value_kind={value_kind!r}). Received: {k}"
        )
    value_bits = _index_width(k, a.index_bits, a.value_coding)
    symbols = _check_indices(a.indices, count, k, value_bits)
    fill_bytes = fill_symbols = positions = None
    table = as_uint(book).reshape(channels, k)
    if layout == "sparse":
        fill_index = _fill_index(a.fill, table, symbols, k, value_bits)
        fill_bytes = book[fill_index].copy()
        fill_symbols = np.array([fill_index], symbols.dtype)
        positions = np.flatnonzero(symbols != fill_index)
    section = [struct.pack("<H", k)]
    if value_kind == "channel_codebook":
        # Leading entries equal in every channel are stored once.
        same = np.all(table == table[:1], axis=0)
        shared = int(np.argmin(same)) if not same.all() else k
        section.append(struct.pack("<HII", shared, channels, channel_run))
        rows = book.reshape(channels, k, es)
        section += [rows[0, :shared].tobytes(), rows[:, shared:].tobytes()]
    else:
        section.append(book.tobytes())
    return KindValues(
        b"".join(section), symbols, value_bits, fill_bytes, fill_symbols, positions
    )


def _check_channels(codebook, channel_run, count: int) -> tuple[int, int]:
    """The per-channel kind's (C, R)."""
    codebook = np.asarray(codebook)
    if codebook.ndim != 2:
        raise ValueError(
            "Expected a (channels, K) `codebook` for value_kind="
            f"'channel_codebook'. Received: shape {codebook.shape}"
        )
    channels = codebook.shape[0]
    if isinstance(channel_run, bool) or not isinstance(channel_run, int | np.integer):
        raise ValueError(
            "Expected an int `channel_run` (elements per channel run) for "
            f"value_kind='channel_codebook'. Received: {channel_run!r}"
        )
    channel_run = int(channel_run)
    if not 1 <= channels <= U32_MAX or not 1 <= channel_run <= U32_MAX:
        raise ValueError(
            f"Expected 1 to {U32_MAX} channels and channel_run. Received: "
            f"{channels} channels, channel_run={channel_run}"
        )
    if count % (channels * channel_run):
        raise ValueError(
            f"Expected {channels} channels x channel_run={channel_run} to "
            f"divide count={count}."
        )
    return channels, channel_run


def _index_width(k: int, index_bits, value_coding: str) -> int:
    """The index symbols' width: `index_bits`, by default the fewest for K."""
    value_bits = max(1, (k - 1).bit_length()) if index_bits is None else index_bits
    if k <= MAX_CODEBOOK:
        return _bitpack.check_bits(value_bits, "index_bits")
    # Indices past 8 bits: rANS streams only (format version 3).
    if value_coding not in ("auto", "rans"):
        raise ValueError(
            f"A codebook of {k} entries needs value_coding 'rans' or 'auto' "
            f"(indices of {value_bits} bits). Received: "
            f"value_coding={value_coding!r}"
        )
    if isinstance(value_bits, bool) or not 9 <= value_bits <= 16:
        raise ValueError(
            f"Expected `index_bits` in [9, 16] for K={k}. Received: "
            f"index_bits={value_bits!r}"
        )
    return value_bits


def _check_indices(indices, count: int, k: int, value_bits: int) -> np.ndarray:
    """The indices as index symbols (uint8, or uint16 past 8 bits)."""
    idx = np.asarray(indices).reshape(-1)
    if idx.size != count:
        raise ValueError(
            f"Expected {count} indices (count={count}). Received: {idx.size}"
        )
    if idx.size:
        if not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"Expected integer `indices`. Received: dtype {idx.dtype}")
        low, high = int(idx.min()), int(idx.max())
        if low < 0 or high >= k:
            raise ValueError(
                f"Expected `indices` in [0, {k - 1}] (K={k}). Received: [{low}, {high}]"
            )
        if high >= 1 << value_bits:
            raise ValueError(
                f"Expected `indices` < 2**index_bits={1 << value_bits}. "
                f"Received: max index {high}; increase `index_bits`."
            )
    return idx.astype(np.uint8 if value_bits <= 8 else np.uint16)


def _fill_index(fill, table: np.ndarray, symbols, k: int, value_bits: int) -> int:
    """The sparse layout's fill index: `fill`, or the most common index whose entry is
    the same in every channel."""
    uniform = np.all(table == table[:1], axis=0)  # same entry in every channel
    if fill is None:
        if not uniform.any():
            raise ValueError(
                "A sparse per-channel codebook needs an index whose entry is "
                "the same in every channel (the fill value); none is. Pass "
                "layout='dense', or add the fill value to every channel."
            )
        counts = np.bincount(symbols, minlength=k)[:k] if symbols.size else None
        return (
            int(np.argmax(np.where(uniform, counts, -1)))
            if counts is not None
            else int(np.argmax(uniform))
        )
    if isinstance(fill, bool) or not isinstance(fill, int | np.integer):
        raise ValueError(
            f"Expected an int `fill` (a codebook index). Received: {fill!r}"
        )
    if not 0 <= fill < k:
        raise ValueError(f"Expected `fill` in [0, {k - 1}]. Received: fill={fill}")
    if not uniform[fill]:
        raise ValueError(
            f"Expected the fill index {fill} to hold the same value in "
            "every channel's codebook (unstored elements all take it)."
        )
    if fill >= 1 << value_bits:
        raise ValueError(
            f"Expected `fill` < 2**index_bits={1 << value_bits}. Received: {fill}"
        )
    return int(fill)


def index_streams(symbols: np.ndarray, es: int) -> list[np.ndarray]:
    """The codebook kinds' one value stream: the indices."""
    return [symbols.reshape(-1)]


# ------------------------------------------------------------------------- decoding


@dataclasses.dataclass(frozen=True)
class Codebook:
    """A payload's codebook as stored: `shared` entries for every channel, then each of
    the C channels' own K - shared entries (C = 1, shared = K for the plain codebook
    kind). Channels are runs of `run` elements."""

    entries: np.ndarray  # (shared + C * (K - shared), element size) uint8, as stored
    k: int
    shared: int
    channels: int
    run: int
    offset: int  # where the codebook section starts
    end: int  # the first byte after it

    def table_index(self, indices: np.ndarray, positions) -> np.ndarray:
        """Where in `entries` the element at each position (None: element j is at j)
        with each index is."""
        if self.shared == self.k:
            return indices
        if positions is None:
            positions = np.arange(indices.size, dtype=np.int64)
        own = self.k - self.shared
        channel = (positions // self.run) % self.channels
        index = indices.astype(np.int64)
        return np.where(index < self.shared, index, channel * own + index)

    @property
    def index_bits(self) -> int:
        """The widest index symbols the value stream may have: 8, or 16 with more
        than 256 entries."""
        return 16 if self.k > MAX_CODEBOOK else 8


def read_codebook(buf, pos: int, header, fail) -> tuple[Codebook, int]:
    """Reads and checks the codebook section at `pos`; returns it and its end."""
    size, es, n = buf.size, header.element_size, header.count
    start = pos
    if size - pos < 2:
        raise fail("truncated codebook size", pos)
    (k,) = struct.unpack_from("<H", buf, pos)
    limit = codebook_limit(header.version, header.value_kind, es)
    if not 1 <= k <= limit:
        raise fail(f"codebook size {k} is not in [1, {limit}]", pos)
    pos += 2
    shared, channels, run = k, 1, max(n, 1)
    if header.value_kind == "channel_codebook":
        if size - pos < 10:
            raise fail(
                "truncated shared entry count, channel count and channel run", pos
            )
        shared, channels, run = struct.unpack_from("<HII", buf, pos)
        if shared > k:
            raise fail(f"{shared} shared entries, more than the K={k} entries", pos)
        if channels < 1 or run < 1:
            raise fail(
                f"channel count {channels} and channel run {run} must both be >= 1",
                pos + 2,
            )
        if n and (channels > n or run > n // channels or n % (channels * run)):
            raise fail(
                f"{channels} channels of {run} elements do not tile the tensor's {n} "
                "elements",
                pos + 2,
            )
        pos += 10
    count = shared + channels * (k - shared)
    need = count * es
    if size - pos < need:
        raise fail(
            f"truncated codebook: {need} bytes needed, {size - pos} present", pos
        )
    entries = buf[pos : pos + need].reshape(count, es)
    book = Codebook(entries, k, shared, channels, run, start, pos + need)
    return book, book.end


def decode_codebook(buf, pos, header, book, stored, positions, name, fail):
    """The codebook kinds' `stored` elements (at `positions`, None: all), as words."""
    values_at = pos
    values = decode_value_stream(buf, pos, header, stored, book.index_bits, name, fail)
    if values.size and int(values.max()) >= book.k:
        j = int(np.argmax(values >= book.k))
        raise fail(
            f"value {j} is codebook index {int(values[j])}, but the codebook has "
            f"{book.k} entries"
            + (" per channel" if header.value_kind == "channel_codebook" else ""),
            values_at,
        )
    # Elements are moved as whole unsigned integers of their size (one gather each).
    word = UINT_BY_SIZE[header.element_size]
    table = np.ascontiguousarray(book.entries).view(word).reshape(-1)
    return table[book.table_index(values, positions)]


def inspect_codebook(buf, pos, header, book, stored, name, fail) -> dict:
    """The codebook kinds' `PayloadInfo` fields."""
    values = _streams.stream_info(
        buf, pos, name=name, max_version=header.version, max_bits=book.index_bits
    )
    check_value_info(values, pos, stored, buf.size, fail)
    info = {
        "values": values,
        "codebook": book.entries.copy(),
        "codebook_bytes": book.end - book.offset,
        "k": book.k,
    }
    if header.value_kind == "channel_codebook":
        info.update(
            shared_entries=book.shared, channels=book.channels, channel_run=book.run
        )
    return info
