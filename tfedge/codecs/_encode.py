"""Encoding a payload (docs/FORMAT.md, section 2), and its exact size without encoding.

`encode_payload` checks the arguments common to every value kind, lets the value kind
(`_kinds.py`) check its own and make its section and value symbols, picks the sparse
layout's fill and gap width, then writes the streams and seals the header."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np

from tfedge.codecs import _bitpack, _streams
from tfedge.codecs._header import (
    ELEMENT_SIZES,
    HEADER_SIZE,
    LAYOUTS,
    TFLITE_ELEMENT_SIZES,
    seal,
)
from tfedge.codecs._kindbase import U32_MAX, EncodeArgs, KindValues, check_choice
from tfedge.codecs._kinds import BY_NAME, KINDS, VALUE_KINDS, ValueKind
from tfedge.codecs._sparse import relative_index


def encode_payload(
    *,
    element_type: int,
    element_size: int,
    count: int,
    layout: str,
    value_kind: str,
    elements: np.ndarray | None = None,
    codebook: np.ndarray | None = None,
    indices: np.ndarray | None = None,
    fill: int | np.ndarray | bytes | None = None,
    index_bits: int | None = None,
    gap_bits: int | None = None,
    value_coding: str = "auto",
    gap_coding: str = "auto",
    channel_run: int | None = None,
    plane_rotation: int | None = None,
) -> bytes:
    """Encodes one tensor as a payload (docs/FORMAT.md, section 2).

    Args:
        element_type: the TFLite TensorType of the decoded tensor (0..255).
        element_size: bytes per element: 1, 2, 4 or 8 (must match a known type).
        count: the number of elements N.
        layout: "dense" (every element stored) or "sparse" (only those that differ from
            the fill value, addressed by a relative index).
        value_kind: "raw" (the element bytes themselves), "codebook" (indices into a
            codebook of at most 256 entries) or "channel_codebook" (indices into the
            codebook of the element's channel; format version 2) or "planes" (the
            element bytes, each byte position its own stream; format version 3).
        elements: raw and planes kinds: the N elements, any dtype of `element_size`
            bytes; their little-endian bytes are stored as they are (planes: rotated).
        codebook: codebook kind: the K entries (dtype of `element_size` bytes);
            per-channel kind: a (C, K) array, row c being channel c's entries.
        indices: codebook kinds: the N indices, each < K.
        fill: sparse layout: the fill value; a codebook index (codebook kinds; with
            per-channel codebooks it must hold the same value in every channel) or one
            element (raw kind: a 1-element array or `element_size` bytes). None picks
            the most common one.
        index_bits: codebook kind: the index symbol width; None for ceil(log2(K)), >= 1.
        gap_bits: sparse layout: the gap symbol width; None tries 1..8 and keeps the one
            that gives the smallest payload.
        value_coding: "fixed", "huffman", "rans" (format version 3) or "auto" (the
            smallest; rANS makes the payload version 3) for stream V.
        gap_coding: the same for stream G.
        channel_run: per-channel kind: R, the number of consecutive elements of one
            channel; element i belongs to channel (i // R) % C. C x R must divide N.
        plane_rotation: planes kind: R, the bits each element is rotated left by
            before its bytes are split into planes (1 puts a float's exponent in its
            top byte and its sign in the bottom bit); None for 0.

    Returns:
        The payload's bytes.

    Raises:
        ValueError: an argument is invalid or inconsistent.
    """
    p = _prepare(
        element_type=element_type,
        element_size=element_size,
        count=count,
        layout=layout,
        value_kind=value_kind,
        elements=elements,
        codebook=codebook,
        indices=indices,
        fill=fill,
        index_bits=index_bits,
        gap_bits=gap_bits,
        value_coding=value_coding,
        gap_coding=gap_coding,
        channel_run=channel_run,
        plane_rotation=plane_rotation,
    )
    v = p.values
    parts = [v.section]
    streams = []
    if p.layout == "sparse":
        _, g = _streams_size(p)
        gaps, stored = relative_index(v.positions, p.count, g)
        parts.append(v.fill_bytes.tobytes())
        streams.append(_streams.encode_stream(gaps, g, p.gap_coding))
        values = v.symbols[stored]
    else:
        values = v.symbols
    for symbols in p.kind.value_streams(values, p.element_size):
        streams.append(_streams.encode_stream(symbols, v.value_bits, p.value_coding))
    parts += streams
    # The lowest version that has the payload's value kind and stream codings.
    version = max(
        [p.kind.version, 3 if v.value_bits > 8 else 1]
        + [_streams.CODING_VERSION[_streams.CODING_NAMES[s[0]]] for s in streams]
    )
    body = b"".join(parts)
    if len(body) > U32_MAX:
        raise ValueError(
            f"Expected a payload body under 4 GiB. Received: {len(body)} bytes"
        )
    return seal(
        body,
        version=version,
        layout=p.layout,
        value_kind=p.kind.name,
        element_type=p.element_type,
        element_size=p.element_size,
        count=p.count,
    )


# `encode_payload`'s parameters: `payload_size` takes the same, with the same defaults.
_PARAMETERS = inspect.signature(encode_payload).parameters
_REQUIRED = tuple(n for n, p in _PARAMETERS.items() if p.default is p.empty)
_DEFAULTS = {n: p.default for n, p in _PARAMETERS.items() if p.default is not p.empty}


def payload_size(*, estimate: bool = False, **kwargs) -> int:
    """Returns the exact byte size of `encode_payload(**kwargs)`.

    Takes the same keyword arguments as `encode_payload`. Fixed-width and Huffman
    sizes need no encoding; a rANS stream's exact size depends on the order of its
    symbols, so when a stream may be rANS coded ("rans" or "auto") the payload is
    encoded to measure it, unless `estimate` is True: then rANS streams are estimated
    from their frequencies (to within a few bytes), which is cheap.
    """
    missing = [k for k in _REQUIRED if k not in kwargs]
    if missing:
        raise TypeError(f"Missing keyword arguments: {', '.join(missing)}")
    unknown = set(kwargs) - set(_PARAMETERS)
    if unknown:
        raise TypeError(f"Unexpected keyword arguments: {', '.join(sorted(unknown))}")
    p = _prepare(**{**_DEFAULTS, **kwargs})
    may_rans = "rans" in (p.value_coding, p.gap_coding) or "auto" in (
        p.value_coding,
        p.gap_coding if p.layout == "sparse" else "fixed",
    )
    if may_rans and not estimate:
        return len(encode_payload(**kwargs))
    streams, _ = _streams_size(p)
    sparse_fill = p.element_size if p.layout == "sparse" else 0
    return HEADER_SIZE + len(p.values.section) + sparse_fill + streams


@dataclasses.dataclass(frozen=True)
class _Prepared:
    """Everything about a payload but its streams' bytes."""

    element_type: int
    element_size: int
    count: int
    layout: str
    kind: ValueKind
    values: KindValues  # the kind's section and value symbols
    value_coding: str
    gap_coding: str
    gap_bits: int | None


def _prepare(
    *,
    element_type,
    element_size,
    count,
    layout,
    value_kind,
    elements,
    codebook,
    indices,
    fill,
    index_bits,
    gap_bits,
    value_coding,
    gap_coding,
    channel_run,
    plane_rotation,
) -> _Prepared:
    """Checks the arguments every kind shares, then lets the value kind check its own
    and lay out its section and symbols."""
    check_choice(layout, LAYOUTS, "layout")
    check_choice(value_kind, VALUE_KINDS, "value_kind")
    check_choice(value_coding, _streams.CODINGS, "value_coding")
    check_choice(gap_coding, _streams.CODINGS, "gap_coding")
    _check_element(element_type, element_size)
    if isinstance(count, bool) or int(count) < 0:
        raise ValueError(f"Expected `count` >= 0. Received: count={count!r}")
    if layout == "dense":
        if fill is not None:
            raise ValueError("`fill` applies to layout='sparse' only. Received a fill.")
        if gap_bits is not None:
            raise ValueError(
                "`gap_bits` applies to layout='sparse' only. Received: "
                f"gap_bits={gap_bits}"
            )
    elif gap_bits is not None:
        _bitpack.check_bits(gap_bits, "gap_bits")
    kind = BY_NAME[value_kind]
    _check_kind_options(
        kind, {"channel_run": channel_run, "plane_rotation": plane_rotation}
    )
    values = kind.prepare(
        EncodeArgs(
            element_size=element_size,
            count=int(count),
            layout=layout,
            value_kind=value_kind,
            elements=elements,
            codebook=codebook,
            indices=indices,
            fill=fill,
            index_bits=index_bits,
            value_coding=value_coding,
            channel_run=channel_run,
            plane_rotation=plane_rotation,
        )
    )
    return _Prepared(
        element_type=int(element_type),
        element_size=element_size,
        count=int(count),
        layout=layout,
        kind=kind,
        values=values,
        value_coding=value_coding,
        gap_coding=gap_coding,
        gap_bits=gap_bits,
    )


def _check_element(element_type, element_size) -> None:
    if element_size not in ELEMENT_SIZES:
        raise ValueError(
            f"Expected `element_size` in {ELEMENT_SIZES}. Received: "
            f"element_size={element_size!r}"
        )
    if isinstance(element_type, bool) or not 0 <= int(element_type) <= 255:
        raise ValueError(
            "Expected `element_type` in [0, 255]. Received: "
            f"element_type={element_type!r}"
        )
    known = TFLITE_ELEMENT_SIZES.get(int(element_type))
    if known is not None and known != element_size:
        raise ValueError(
            f"Expected element_size={known} for element_type={element_type}. "
            f"Received: element_size={element_size}"
        )


def _check_kind_options(kind: ValueKind, options: dict) -> None:
    """Rejects an option some other value kind takes alone (`ValueKind.options`)."""
    for option, value in options.items():
        if value is None or option in kind.options:
            continue
        owners = " or ".join(repr(k.name) for k in KINDS if option in k.options)
        raise ValueError(
            f"`{option}` applies to value_kind={owners} only. Received: "
            f"{option}={value!r}"
        )


def _value_freqs(p: _Prepared, symbols: np.ndarray) -> list[np.ndarray]:
    """Symbol frequencies of each value stream of `symbols`."""
    return [
        np.bincount(s.reshape(-1), minlength=1 << p.values.value_bits)
        for s in p.kind.value_streams(symbols, p.element_size)
    ]


def _values_size(p: _Prepared, freqs: list[np.ndarray]) -> int:
    """The value streams' size from their frequencies."""
    return sum(
        _streams.stream_size_from_frequencies(f, p.values.value_bits, p.value_coding)
        for f in freqs
    )


def _streams_size(p: _Prepared) -> tuple[int, int | None]:
    """Returns (size of the streams, chosen gap width) without building any bytes."""
    v = p.values
    if p.layout == "dense":
        return _values_size(p, _value_freqs(p, v.symbols)), None
    gap = np.diff(v.positions, prepend=-1) - 1
    base = _value_freqs(p, v.symbols[v.positions])
    fill_freqs = _value_freqs(p, v.fill_symbols)
    best = None
    for g in [p.gap_bits] if p.gap_bits is not None else range(1, 9):
        mask = (1 << g) - 1
        fillers = int(np.sum(gap >> g))
        gap_freqs = np.bincount(gap & mask, minlength=1 << g)
        gap_freqs[mask] += fillers
        size = _streams.stream_size_from_frequencies(gap_freqs, g, p.gap_coding)
        size += _values_size(
            p, [b + fillers * f for b, f in zip(base, fill_freqs, strict=True)]
        )
        if best is None or size < best[0]:
            best = (size, g)
    return best
