"""Payloads for the tests and scripts/fuzz_seeds.py, in one place.

Hand-built payloads field by field (`build`, `fixed_stream`, `channel_section`: the
malformed ones the readers must refuse, written without the encoder under test), random
payloads of every codec through `tfedge.codecs.encode_payload` (`random_payload`), the
CRC fix-ups that let a mutation reach the body checks behind the CRC (`fix_crc`,
`reseal`), and where each payload sits inside a packed file (`payload_spans`).

The header (docs/FORMAT.md): magic "TFEP", version, layout, value kind, element type,
element size, 3 reserved bytes, u64 decoded size, u32 body size; then the u32 CRC32 of
those 24 bytes followed by the body; then the body.
"""

from __future__ import annotations

import struct

import numpy as np

from tfedge.codecs import crc32, encode_payload, inspect_payload

# The header before the CRC, and where the body starts.
HEAD_SIZE = 24
BODY_START = 28

# element size -> (TFLite TensorType, numpy dtype of the element bits)
ELEMENTS = {1: (9, np.uint8), 2: (1, np.uint16), 4: (0, np.uint32), 8: (4, np.uint64)}


# ---------------------------------------------------------------- hand-built


def build(
    body: bytes,
    *,
    decoded: int,
    magic: bytes = b"TFEP",
    version: int = 1,
    layout: int = 0,
    kind: int = 0,
    etype: int = 3,
    es: int = 1,
    reserved: bytes = b"\0\0\0",
    body_size: int | None = None,
    crc: int | None = None,
) -> bytes:
    """A payload with these header fields over `body`; the body size and the CRC are
    correct unless given."""
    body_size = len(body) if body_size is None else body_size
    head = struct.pack(
        "<4sBBBBB3sQI",
        magic,
        version,
        layout,
        kind,
        etype,
        es,
        reserved,
        decoded,
        body_size,
    )
    crc = crc32(body, crc32(head)) if crc is None else crc
    return head + struct.pack("<I", crc) + bytes(body)


def fixed_stream(symbols, bits: int) -> bytes:
    """A fixed-width stream (coding 0) of `symbols`, `bits` each, MSB first; any width
    and any symbol, so that malformed streams can be written too."""
    acc = "".join(format(int(s), f"0{bits}b") for s in symbols)
    acc += "0" * (-len(acc) % 8)
    data = bytes(int(acc[i : i + 8], 2) for i in range(0, len(acc), 8))
    return struct.pack("<BBII", 0, bits, len(symbols), len(data)) + data


def rans_reference_encode(symbols, freqs, scale: int, lanes: int, block: int):
    """A plain per-symbol rANS encoder written from docs/FORMAT.md 2.3, one block at
    a time, for any frequency table: (block offsets, stream data). The reference the
    vectorised encoder must match byte for byte, and the maker of tables that encoder
    never writes."""
    cum = np.cumsum(freqs) - freqs
    out = b""
    offsets = []
    for start in range(0, len(symbols), block):
        chunk = [int(s) for s in symbols[start : start + block]]
        x = [1 << 16] * lanes
        words = []
        for j in range(len(chunk) - 1, -1, -1):
            lane, s = j % lanes, chunk[j]
            f = int(freqs[s])
            if x[lane] >= f << (32 - scale):
                words.append(x[lane] & 0xFFFF)
                x[lane] >>= 16
            x[lane] = (x[lane] // f << scale) + x[lane] % f + int(cum[s])
        if start:
            offsets.append(len(out))
        out += struct.pack(f"<{lanes}I", *x) + struct.pack(
            f"<{len(words)}H", *words[::-1]
        )
    return offsets, out


def channel_section(k: int, channels: int, run: int, entries=b"", *, shared=0) -> bytes:
    """A per-channel codebook section (value kind 2): K, G (`shared`), C, R, then the
    stored entries (the G shared ones, then each channel's K - G own ones)."""
    return struct.pack("<HHII", k, shared, channels, run) + bytes(entries)


# ---------------------------------------------------------------- CRC fix-ups


def fix_crc(payload: bytes | bytearray) -> bytes:
    """The payload with its CRC recomputed (so that a mutation reaches the body checks
    behind it); one too short to hold a CRC is returned as it is."""
    p = bytearray(payload)
    if len(p) >= BODY_START:
        body = bytes(p[BODY_START:])
        struct.pack_into("<I", p, HEAD_SIZE, crc32(body, crc32(bytes(p[:HEAD_SIZE]))))
    return bytes(p)


def reseal(payload: bytes | bytearray) -> bytes:
    """The payload with its body size and CRC set to match its bytes."""
    p = bytearray(payload)
    struct.pack_into("<I", p, 20, len(p) - BODY_START)
    return fix_crc(p)


# ---------------------------------------------------------------- inside a packed file


def payload_spans(data: bytes) -> list[tuple[str, int, int]]:
    """(weight tensor name, start, end) of each payload inside a packed .tflite, in
    operator order."""
    from tfedge.tflite import buffer_data, decode_ops, read

    model = read(data)
    spans = []
    for si, _oi, p, w in decode_ops(model):
        sg = model.subgraphs[si]
        payload = bytes(buffer_data(model, sg.tensors[p].buffer))
        start = data.find(payload)
        if start <= 0:
            raise AssertionError(f"payload of {sg.tensors[w].name!r} not in the file")
        spans.append((sg.tensors[w].name.decode(), start, start + len(payload)))
    return spans


# ---------------------------------------------------------------- random


# How many leading codebook columns a random per-channel codebook has equal in every
# channel, which the writer stores once as the G shared entries: G = 0, G = 1,
# 2 <= G < K, G = K.
SHARED_MODES = ("none", "one", "some", "all")


def random_payload(
    rng: np.random.Generator,
    layout: str,
    kind: str,
    value_coding: str = "auto",
    gap_coding: str = "auto",
    shared: str | None = None,
    *,
    element_size: int | None = None,
    count: int | None = None,
    plane_rotation: int | None = None,
    tiling: tuple[int, int, int] | None = None,
) -> bytes:
    """A payload of a random tensor: size, element size, skew and sparsity vary.

    `kind` is a value kind of `encode_payload`, or "large_codebook" (257 to 65535
    entries, format version 3). `shared`: per-channel codebooks only, see
    `random_channel_payload`. The keyword-only arguments fix what is otherwise drawn
    (`tiling` is the per-channel (C, R, repeats)); left out, the draws are the same as
    ever for a seed."""
    sizes = list(ELEMENTS)[1:] if kind == "large_codebook" else list(ELEMENTS)
    es = int(rng.choice(sizes)) if element_size is None else element_size
    etype, dtype = ELEMENTS[es]
    if kind == "channel_codebook":
        if shared is None:
            shared = SHARED_MODES[int(rng.integers(len(SHARED_MODES)))]
        return random_channel_payload(
            rng, es, layout, value_coding, gap_coding, shared, tiling=tiling
        )
    # Up to 70,000 elements: Huffman streams of many 4096-symbol blocks, which the
    # native decoder decodes four at a time, with a shorter tail block.
    if count is None:
        n = int(
            rng.choice(
                [0, 1, 7, int(rng.integers(2, 5000)), int(rng.integers(16384, 70000))]
            )
        )
    else:
        n = count
    density = float(rng.choice([0.02, 0.2, 0.7]))
    kw = dict(
        element_type=etype,
        element_size=es,
        count=n,
        layout=layout,
        value_kind=kind,
        value_coding=value_coding,
        gap_coding=gap_coding,
    )
    skew = rng.geometric(float(rng.choice([0.05, 0.3, 0.9])), n) - 1
    if kind == "planes":
        rotation = int(rng.integers(0, 8 * es))
        kw["plane_rotation"] = rotation if plane_rotation is None else plane_rotation
    if kind in ("raw", "planes"):
        values = rng.integers(0, np.iinfo(dtype).max, n, dtype=np.uint64, endpoint=True)
        values = np.where(rng.random(n) < 0.5, skew, values).astype(dtype)
        if layout == "sparse":
            values[rng.random(n) >= density] = 0
        kw["elements"] = values
    else:  # codebook
        large = kind == "large_codebook"
        kw["value_kind"] = "codebook"
        k = int(rng.integers(257, 65536) if large else rng.integers(1, 257))
        skew = (
            rng.geometric(float(rng.choice([0.0005, 0.01])), n) - 1 if large else skew
        )
        kw["codebook"] = rng.integers(
            0, np.iinfo(dtype).max, k, dtype=np.uint64
        ).astype(dtype)
        idx = np.minimum(skew, k - 1)
        if layout == "sparse":
            idx[rng.random(n) >= density] = 0
        kw["indices"] = idx
        if rng.random() < 0.3:
            top = 17 if large else 9
            kw["index_bits"] = int(rng.integers(max(1, (k - 1).bit_length()), top))
    return encode_payload(**kw)


def random_tiling(rng: np.random.Generator) -> tuple[int, int, int]:
    """(C, R, repeats): one channel, runs of one element (a depthwise kernel) or both
    above one; N = C x R x repeats is up to about 70,000 elements, or 0."""
    c = int(rng.choice([1, int(rng.integers(2, 9)), int(rng.integers(9, 300))]))
    r = int(rng.choice([1, int(rng.integers(2, 40)), int(rng.integers(40, 240))]))
    most = max(1, 70000 // (c * r))
    repeats = int(rng.choice([0, 1, int(rng.integers(1, most + 1))]))
    return c, r, repeats


def random_channel_payload(
    rng: np.random.Generator,
    es: int,
    layout: str,
    value_coding: str,
    gap_coding: str,
    shared: str,
    *,
    tiling: tuple[int, int, int] | None = None,
) -> bytes:
    """A per-channel codebook payload of a random tiling (or `tiling`, (C, R, repeats))
    whose codebook has G shared entries as `shared` says (checked; one channel shares
    them all, so C = 1 needs "all"); sparse ones often with a narrow gap stream, so that
    filler entries occur (in whatever channel they land). The sparse fill is a column
    equal in every channel: a shared entry, or with G = 0 an own entry that happens to
    be the same in every channel."""
    etype, dtype = ELEMENTS[es]
    if tiling is None:
        c, r, repeats = random_tiling(rng)
        # One channel shares every entry (G = K), so "all" is mostly several channels;
        # and fewer empty tensors than the tiling draws, which would leave the entries
        # unread.
        while (c == 1 and (shared != "all" or rng.random() < 0.7)) or (
            repeats == 0 and rng.random() < 0.7
        ):
            c, r, repeats = random_tiling(rng)
    else:
        c, r, repeats = tiling
    n = c * r * repeats
    least = {"none": 2 if layout == "sparse" else 1, "one": 2, "some": 3, "all": 1}
    k = int(rng.integers(least[shared], 257))
    if shared == "none":
        g = 0
    elif shared == "one":
        g = 1
    elif shared == "some":
        g = int(rng.integers(2, k))
    else:
        g = k
    book = rng.integers(0, np.iinfo(dtype).max, (c, k), dtype=np.uint64).astype(dtype)
    book[:, :g] = book[0, :g]  # the leading G columns: equal in every channel
    if g < k:
        book[1, g] = book[0, g] ^ dtype(1)  # column G: not
    fill = None
    if layout == "sparse":
        # A shared entry, else (G = 0) a later column made equal in every channel.
        fill = int(rng.integers(0, g)) if g else int(rng.integers(1, k))
        book[:, fill] = book[0, fill]
    skew = rng.geometric(float(rng.choice([0.05, 0.3, 0.9])), n) - 1
    idx = np.minimum(skew, k - 1)
    kw = dict(
        element_type=etype,
        element_size=es,
        count=n,
        layout=layout,
        value_kind="channel_codebook",
        codebook=book,
        indices=idx,
        channel_run=r,
        value_coding=value_coding,
        gap_coding=gap_coding,
    )
    if layout == "sparse":
        idx[rng.random(n) >= float(rng.choice([0.02, 0.2, 0.7]))] = fill
        kw["fill"] = fill
        if rng.random() < 0.5:
            kw["gap_bits"] = int(rng.integers(1, 4))
    if rng.random() < 0.3:
        kw["index_bits"] = int(rng.integers(max(1, (k - 1).bit_length()), 9))
    payload = encode_payload(**kw)
    info = inspect_payload(payload)
    if (info.k, info.shared_entries, info.channels) != (k, g, c):
        raise AssertionError(
            f"shared={shared!r}: K, G, C = {info.k}, {info.shared_entries}, "
            f"{info.channels}; expected {k}, {g}, {c}"
        )
    return payload
