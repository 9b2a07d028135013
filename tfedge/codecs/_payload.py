"""The packed payload of one weight tensor (docs/FORMAT.md, section 2).

```
0   4  magic "TFEP"          12  8  decoded size (u64)
4   1  format version        20  4  body size (u32)
5   1  layout                24  4  CRC-32 of bytes 0..23 and the body
6   1  value kind            28  .. body
7   1  element type (TFLite TensorType)
8   1  element size (1, 2, 4, 8)
9   3  reserved, zero
```
Body: [u16 K, K codebook entries] if codebook kind (K > 256: version 3, 16-bit rANS
indices); [u16 K, u16 G, u32 C, u32 R, G shared entries, C x (K - G) channel entries]
if per-channel codebook kind (version 2); [u8 R] if byte-planes kind (version 3);
[fill element, stream G] if sparse layout; stream V, or one stream per byte plane.
Decoding checks the header in the order the format lists, before it allocates
anything, then every stream, every index and the absence of trailing bytes.
"""

from __future__ import annotations

import dataclasses
import struct

import numpy as np

from tfedge.codecs import _bitpack, _streams
from tfedge.codecs._crc import crc32
from tfedge.codecs._sparse import positions_from_gaps, relative_index
from tfedge.errors import FormatError

MAGIC = b"TFEP"
FORMAT_VERSION = 3
HEADER_SIZE = 28
LAYOUTS = ("dense", "sparse")
VALUE_KINDS = ("raw", "codebook", "channel_codebook", "planes")
# The first payload format version that has each value kind.
_KIND_VERSION = {"raw": 1, "codebook": 1, "channel_codebook": 2, "planes": 3}
# Value kinds that store the element bits themselves (no codebook).
_BIT_KINDS = ("raw", "planes")
ELEMENT_SIZES = (1, 2, 4, 8)
MAX_CODEBOOK = 256
# Format version 3: a codebook (value kind 1) of elements wider than one byte may hold
# up to this many entries, its indices then up to 16 bits (rANS coded).
MAX_LARGE_CODEBOOK = 65535
DEFAULT_MAX_DECODED = 2**31 - 1

# Element sizes of the TFLite tensor types whose size is fixed; a payload may carry any
# other type value, whose size the caller vouches for.
TFLITE_ELEMENT_SIZES = {
    0: 4,  # FLOAT32
    1: 2,  # FLOAT16
    2: 4,  # INT32
    3: 1,  # UINT8
    4: 8,  # INT64
    6: 1,  # BOOL
    7: 2,  # INT16
    8: 8,  # COMPLEX64
    9: 1,  # INT8
    10: 8,  # FLOAT64
    12: 8,  # UINT64
    15: 4,  # UINT32
    16: 2,  # UINT16
    18: 2,  # BFLOAT16
    21: 1,  # FLOAT8_E4M3FN
    22: 1,  # FLOAT8_E5M2
}

_HEADER = struct.Struct("<4sBBBBB3sQII")
_U32_MAX = 0xFFFFFFFF
_UINT_BY_SIZE = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


@dataclasses.dataclass(frozen=True)
class PayloadHeader:
    """The fixed 28-byte header of a payload."""

    version: int
    layout: str
    value_kind: str
    element_type: int
    element_size: int
    decoded_size: int
    body_size: int
    crc: int

    @property
    def count(self) -> int:
        """The number of elements, N."""
        return self.decoded_size // self.element_size


def _byte_view(data) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    return np.frombuffer(data, np.uint8)


def read_header(
    data: bytes | bytearray | memoryview | np.ndarray,
    *,
    name: str | None = None,
    max_decoded: int = DEFAULT_MAX_DECODED,
    expected_size: int | None = None,
    check_crc: bool = True,
) -> PayloadHeader:
    """Reads and validates a payload's header, in the order docs/FORMAT.md lists.

    Args:
        data: the whole payload.
        name: the tensor named in errors.
        max_decoded: the largest decoded size accepted (the reader's bound).
        expected_size: when the tensor is known, its byte size: the decoded size must
            equal it (it is then also the bound).
        check_crc: whether to verify the CRC too (the last check).

    Returns:
        The header.

    Raises:
        FormatError: a check fails.
    """
    buf = _byte_view(data)

    def fail(message: str, at: int) -> FormatError:
        return FormatError(message, tensor=name, offset=at)

    if buf.size < HEADER_SIZE:
        raise fail(
            f"truncated payload: {buf.size} bytes, the header alone takes "
            f"{HEADER_SIZE}",
            0,
        )
    (magic, version, layout, kind, etype, esize, reserved, decoded, body, crc) = (
        _HEADER.unpack_from(buf, 0)
    )
    if magic != MAGIC:
        raise fail(f"bad magic {magic!r}, expected {MAGIC!r}", 0)
    if version > FORMAT_VERSION:
        raise fail(
            f"payload format version {version} is newer than this reader's "
            f"{FORMAT_VERSION}; upgrade tfedge",
            4,
        )
    if version < 1:
        raise fail(f"unknown payload format version {version}", 4)
    if layout >= len(LAYOUTS):
        raise fail(f"unknown layout {layout} (0 dense, 1 sparse)", 5)
    if kind >= len(VALUE_KINDS):
        raise fail(
            f"unknown value kind {kind} (0 raw, 1 codebook, 2 per-channel codebook, "
            "3 byte planes)",
            6,
        )
    if version < _KIND_VERSION[VALUE_KINDS[kind]]:
        raise fail(
            f"value kind {kind} ({VALUE_KINDS[kind]}) needs payload format version "
            f"{_KIND_VERSION[VALUE_KINDS[kind]]}, this payload says {version}",
            6,
        )
    if esize not in ELEMENT_SIZES:
        raise fail(f"element size {esize} is not 1, 2, 4 or 8", 8)
    if reserved != b"\0\0\0":
        raise fail("reserved bytes are not zero", 9)
    if decoded % esize:
        raise fail(
            f"decoded size {decoded} is not a multiple of the element size {esize}", 12
        )
    bound = max_decoded if expected_size is None else min(max_decoded, expected_size)
    if decoded > bound:
        raise fail(f"decoded size {decoded} exceeds the bound of {bound} bytes", 12)
    if expected_size is not None and decoded != expected_size:
        raise fail(
            f"decoded size {decoded} disagrees with the tensor's {expected_size} bytes",
            12,
        )
    if body != buf.size - HEADER_SIZE:
        raise fail(
            f"body size {body} disagrees with the {buf.size - HEADER_SIZE} bytes "
            "present",
            20,
        )
    if check_crc:
        actual = crc32(buf[HEADER_SIZE:], crc32(buf[:24]))
        if actual != crc:
            raise fail(
                f"CRC mismatch: header says {crc:#010x}, data gives {actual:#010x}", 24
            )
    return PayloadHeader(
        version=version,
        layout=LAYOUTS[layout],
        value_kind=VALUE_KINDS[kind],
        element_type=etype,
        element_size=esize,
        decoded_size=decoded,
        body_size=body,
        crc=crc,
    )


@dataclasses.dataclass(frozen=True)
class _Codebook:
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


def _codebook_limit(version: int, value_kind: str, es: int) -> int:
    """The most codebook entries a payload of this version, kind and element size may
    have: 256, or 65535 for a version-3 codebook of multi-byte elements."""
    if version >= 3 and value_kind == "codebook" and es > 1:
        return MAX_LARGE_CODEBOOK
    return MAX_CODEBOOK


def _index_bits(codebook) -> int:
    """The widest index symbols a payload's value stream may have: 8, or 16 with a
    codebook of more than 256 entries."""
    return 16 if codebook is not None and codebook.k > MAX_CODEBOOK else 8


def _read_codebook(buf, pos: int, header: PayloadHeader, fail) -> _Codebook | None:
    """Reads and checks the codebook section at `pos` (None for raw and planes)."""
    if header.value_kind in _BIT_KINDS:
        return None
    size, es, n = buf.size, header.element_size, header.count
    start = pos
    if size - pos < 2:
        raise fail("truncated codebook size", pos)
    (k,) = struct.unpack_from("<H", buf, pos)
    limit = _codebook_limit(header.version, header.value_kind, es)
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
    return _Codebook(entries, k, shared, channels, run, start, pos + need)


def decode_payload(
    data: bytes | bytearray | memoryview | np.ndarray,
    *,
    name: str | None = None,
    max_decoded: int = DEFAULT_MAX_DECODED,
    expected_size: int | None = None,
) -> np.ndarray:
    """Decodes a payload into the tensor's bytes.

    Args:
        data: the whole payload.
        name: the tensor named in errors.
        max_decoded: the largest decoded size accepted, checked before allocating.
        expected_size: the tensor's byte size when known; the decoded size must
            equal it.

    Returns:
        A new uint8 array of `decoded_size` bytes (the elements, little-endian).

    Raises:
        FormatError: the payload is truncated, corrupted, of a newer version, larger
            than the bound, or otherwise malformed.
    """
    buf = _byte_view(data)
    header = read_header(
        buf, name=name, max_decoded=max_decoded, expected_size=expected_size
    )
    es = header.element_size
    n = header.count
    size = buf.size

    def fail(message: str, at: int) -> FormatError:
        return FormatError(message, tensor=name, offset=at)

    codebook = _read_codebook(buf, HEADER_SIZE, header, fail)
    pos = HEADER_SIZE if codebook is None else codebook.end
    rotation, pos = _read_rotation(buf, pos, header, fail)

    positions = None
    fill = None
    if header.layout == "sparse":
        if size - pos < es:
            raise fail(
                f"truncated fill value: {es} bytes needed, {size - pos} present", pos
            )
        fill = buf[pos : pos + es]
        pos += es
        gaps_at = pos
        gaps, pos = _streams.decode_stream(
            buf, pos, name=name, max_count=n, max_version=header.version, max_bits=8
        )
        positions = positions_from_gaps(gaps, n, name=name, offset=gaps_at)
        stored = positions.size
    else:
        stored = n

    if header.value_kind == "planes":
        return _decode_planes(buf, pos, header, stored, rotation, positions, fill, name)
    expected = stored * es if header.value_kind == "raw" else stored
    values_at = pos
    if header.value_kind == "raw" and size - pos >= 2 and buf[pos + 1] != 8:
        raise fail(
            "a raw value stream must have 8-bit symbols, this one has "
            f"{int(buf[pos + 1])}",
            pos + 1,
        )
    values, pos = _streams.decode_stream(
        buf,
        pos,
        name=name,
        max_count=expected,
        max_version=header.version,
        max_bits=_index_bits(codebook),
    )
    if values.size != expected:
        raise fail(
            f"value stream holds {values.size} symbols, expected {expected}", values_at
        )
    if pos != size:
        raise fail(f"{size - pos} trailing bytes after the value stream", pos)

    if codebook is not None and values.size and int(values.max()) >= codebook.k:
        j = int(np.argmax(values >= codebook.k))
        raise fail(
            f"value {j} is codebook index {int(values[j])}, but the codebook has "
            f"{codebook.k} entries"
            + (" per channel" if header.value_kind == "channel_codebook" else ""),
            values_at,
        )
    # Elements are moved as whole unsigned integers of their size (one gather each).
    word = _UINT_BY_SIZE[es]
    if codebook is None:
        elements = values.view(word)
    else:
        table = np.ascontiguousarray(codebook.entries).view(word).reshape(-1)
        elements = table[codebook.table_index(values, positions)]
    if positions is None:
        return elements.view(np.uint8)
    out = np.empty(n, word)
    out[:] = np.ascontiguousarray(fill).view(word)[0]
    out[positions] = elements
    return out.view(np.uint8)


def _read_rotation(buf, pos: int, header: PayloadHeader, fail) -> tuple[int, int]:
    """The planes kind's rotation byte R (0 for other kinds), and the next offset."""
    if header.value_kind != "planes":
        return 0, pos
    if buf.size - pos < 1:
        raise fail("truncated plane rotation", pos)
    rotation = int(buf[pos])
    if rotation >= 8 * header.element_size:
        raise fail(
            f"plane rotation {rotation} is not in [0, {8 * header.element_size - 1}]",
            pos,
        )
    return rotation, pos + 1


def _plane_streams(buf, pos: int, header: PayloadHeader, stored: int, name, decode):
    """Reads (decode=True: decodes) the planes kind's element-size streams of `stored`
    8-bit symbols each; returns (the planes or stream infos, the offset past them)."""
    out = []
    for b in range(header.element_size):
        at = pos
        if buf.size - pos >= 2 and buf[pos + 1] != 8:
            raise FormatError(
                f"plane stream {b} must have 8-bit symbols, this one has "
                f"{int(buf[pos + 1])}",
                tensor=name,
                offset=pos + 1,
            )
        if decode:
            plane, pos = _streams.decode_stream(
                buf,
                pos,
                name=name,
                max_count=stored,
                max_version=header.version,
                max_bits=8,
            )
            count = plane.size
        else:
            plane = _streams.stream_info(
                buf, pos, name=name, max_version=header.version, max_bits=8
            )
            pos, count = plane.end, plane.count
        if count != stored:
            raise FormatError(
                f"plane stream {b} holds {count} symbols, expected {stored}",
                tensor=name,
                offset=at,
            )
        out.append(plane)
    if pos != buf.size:
        raise FormatError(
            f"{buf.size - pos} trailing bytes after the plane streams",
            tensor=name,
            offset=pos,
        )
    return out, pos


def rotate_left(u: np.ndarray, r: int) -> np.ndarray:
    """Rotates each unsigned integer of `u` left by r bits within its width."""
    if r == 0:
        return u
    width = 8 * u.dtype.itemsize
    return (u << u.dtype.type(r)) | (u >> u.dtype.type(width - r))


def _decode_planes(buf, pos, header, stored, rotation, positions, fill, name):
    es = header.element_size
    planes, _ = _plane_streams(buf, pos, header, stored, name, decode=True)
    word = _UINT_BY_SIZE[es]
    rotated = np.zeros(stored, word)
    for b, plane in enumerate(planes):
        rotated |= plane.astype(word) << word(8 * b)
    elements = rotate_left(rotated, (8 * es - rotation) % (8 * es))
    if positions is None:
        return elements.view(np.uint8)
    out = np.empty(header.count, word)
    out[:] = np.ascontiguousarray(fill).view(word)[0]
    out[positions] = elements
    return out.view(np.uint8)


@dataclasses.dataclass(frozen=True)
class PayloadInfo:
    """A payload's parts, read and validated without decoding its streams."""

    header: PayloadHeader
    # Codebook kinds: the entries as stored, (count, element size) uint8: the K entries,
    # or per channel the shared ones, then each channel's K - shared own ones.
    codebook: np.ndarray | None
    fill: bytes | None  # sparse layout only
    gaps: _streams.StreamInfo | None  # stream G: sparse layout only
    values: _streams.StreamInfo  # stream V
    codebook_bytes: int = 0  # the codebook section's size (its counts and entries)
    k: int | None = None  # codebook kinds: entries per channel (K)
    shared_entries: int | None = None  # per-channel kind: G
    channels: int | None = None  # per-channel kind: C
    channel_run: int | None = None  # per-channel kind: R
    rotation: int | None = None  # planes kind: R
    # Planes kind: every plane stream, least significant byte first (`values` is the
    # first of them).
    planes: tuple[_streams.StreamInfo, ...] = ()

    @property
    def value_streams(self) -> tuple[_streams.StreamInfo, ...]:
        """The value stream, or the planes kind's plane streams."""
        return self.planes or (self.values,)

    @property
    def encoding(self) -> str:
        """The layout, value kind and stream codings (gap stream first), e.g.
        "sparse/codebook/fixed+huffman"."""
        streams = ([self.gaps] if self.gaps is not None else []) + list(
            self.value_streams
        )
        codings = "+".join(stream.coding for stream in streams)
        return f"{self.header.layout}/{self.header.value_kind}/{codings}"


def inspect_payload(
    data: bytes | bytearray | memoryview | np.ndarray,
    *,
    name: str | None = None,
    max_decoded: int = DEFAULT_MAX_DECODED,
    expected_size: int | None = None,
) -> PayloadInfo:
    """Reads a payload's header, codebook, fill and stream headers (for reports).

    Checks everything `decode_payload` checks before it decodes a stream's data (the
    header, the CRC, the stream headers and tables, the symbol counts and the absence
    of trailing bytes), but not the codebook indices or the sparse cursor.

    Raises:
        FormatError: the payload is malformed.
    """
    buf = _byte_view(data)
    header = read_header(
        buf, name=name, max_decoded=max_decoded, expected_size=expected_size
    )
    es = header.element_size
    size = buf.size

    def fail(message: str, at: int) -> FormatError:
        return FormatError(message, tensor=name, offset=at)

    book = _read_codebook(buf, HEADER_SIZE, header, fail)
    fill = gaps = codebook = None
    rotation, pos = _read_rotation(buf, HEADER_SIZE, header, fail)
    channel_info = {}
    if book is not None:
        codebook = book.entries.copy()
        pos = book.end
        channel_info["k"] = book.k
        if header.value_kind == "channel_codebook":
            channel_info.update(
                shared_entries=book.shared,
                channels=book.channels,
                channel_run=book.run,
            )
    stored = header.count
    if header.layout == "sparse":
        if size - pos < es:
            raise fail("truncated fill value", pos)
        fill = buf[pos : pos + es].tobytes()
        gaps = _streams.stream_info(
            buf, pos + es, name=name, max_version=header.version, max_bits=8
        )
        if gaps.count > header.count:
            raise fail(
                f"stream holds {gaps.count} symbols, more than the {header.count} "
                "allowed",
                gaps.offset + 2,
            )
        stored = gaps.count
        pos = gaps.end
    if header.value_kind == "planes":
        planes, _ = _plane_streams(buf, pos, header, stored, name, decode=False)
        return PayloadInfo(
            header,
            None,
            fill,
            gaps,
            planes[0],
            0,
            rotation=rotation,
            planes=tuple(planes),
        )
    values = _streams.stream_info(
        buf, pos, name=name, max_version=header.version, max_bits=_index_bits(book)
    )
    expected = stored * es if header.value_kind == "raw" else stored
    if header.value_kind == "raw" and values.bits != 8:
        raise fail(
            f"a raw value stream must have 8-bit symbols, this one has {values.bits}",
            pos + 1,
        )
    if values.count != expected:
        raise fail(
            f"value stream holds {values.count} symbols, expected {expected}", pos
        )
    if values.end != size:
        raise fail(
            f"{size - values.end} trailing bytes after the value stream", values.end
        )
    return PayloadInfo(
        header,
        codebook,
        fill,
        gaps,
        values,
        0 if book is None else book.end - book.offset,
        **channel_info,
    )


# --------------------------------------------------------------------------- encoding


def _check_choice(value, allowed, name):
    if value not in allowed:
        raise ValueError(f"Expected `{name}` in {allowed}. Received: {name}={value!r}")


def _element_bytes(array, es: int, name: str) -> np.ndarray:
    """Returns `array` as an (n, es) uint8 matrix of little-endian element bytes."""
    arr = np.asarray(array)
    if arr.dtype.itemsize != es:
        raise ValueError(
            f"Expected `{name}` with {es}-byte elements (element_size={es}). "
            f"Received: dtype {arr.dtype} ({arr.dtype.itemsize} bytes)"
        )
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return np.ascontiguousarray(arr).reshape(-1).view(np.uint8).reshape(-1, es)


def _as_uint(matrix: np.ndarray) -> np.ndarray:
    """Each row of an (n, es) byte matrix as one unsigned integer (for comparisons)."""
    es = matrix.shape[1]
    return np.ascontiguousarray(matrix).view(_UINT_BY_SIZE[es]).reshape(-1)


@dataclasses.dataclass
class _Prepared:
    """Everything about a payload but its streams' bytes."""

    element_type: int
    element_size: int
    count: int
    layout: str
    value_kind: str
    value_bits: int
    symbols: np.ndarray  # per element: its index, or its es bytes as rows (raw)
    codebook: np.ndarray | None  # (K or C x K, es) uint8
    channels: int
    channel_run: int | None
    shared: int  # per-channel kind: leading entries equal in every channel (G)
    fill_bytes: np.ndarray | None  # es bytes
    fill_symbols: np.ndarray | None  # the V symbols of one filler entry
    positions: np.ndarray | None  # stored (non-fill) element positions
    value_coding: str
    gap_coding: str
    gap_bits: int | None
    rotation: int = 0  # planes kind: R

    def stored_entries(self) -> np.ndarray:
        """The codebook entries as the payload stores them (shared ones once)."""
        if self.value_kind != "channel_codebook":
            return self.codebook
        k = self.codebook.shape[0] // self.channels
        table = self.codebook.reshape(self.channels, k, self.element_size)
        return np.concatenate(
            [
                table[0, : self.shared],
                table[:, self.shared :].reshape(-1, self.element_size),
            ]
        )

    def prefix_size(self) -> int:
        size = 0
        if self.codebook is not None:
            size += 2 + self.stored_entries().size
        if self.value_kind == "channel_codebook":
            size += 10
        if self.layout == "sparse":
            size += self.element_size
        if self.value_kind == "planes":
            size += 1
        return size


def _leading_shared(table: np.ndarray) -> int:
    """How many leading columns of a (C, K) table are the same in every row."""
    same = np.all(table == table[:1], axis=0)
    return int(np.argmin(same)) if not same.all() else table.shape[1]


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
    plane_rotation=None,
) -> _Prepared:
    _check_choice(layout, LAYOUTS, "layout")
    _check_choice(value_kind, VALUE_KINDS, "value_kind")
    _check_choice(value_coding, _streams.CODINGS, "value_coding")
    _check_choice(gap_coding, _streams.CODINGS, "gap_coding")
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
    if isinstance(count, bool) or int(count) < 0:
        raise ValueError(f"Expected `count` >= 0. Received: count={count!r}")
    count = int(count)
    es = element_size
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

    if value_kind != "channel_codebook" and channel_run is not None:
        raise ValueError(
            "`channel_run` applies to value_kind='channel_codebook' only. Received: "
            f"channel_run={channel_run!r}"
        )
    rotation = 0
    if value_kind == "planes":
        rotation = 0 if plane_rotation is None else plane_rotation
        if isinstance(rotation, bool) or not isinstance(rotation, int | np.integer):
            raise ValueError(
                f"Expected an int `plane_rotation`. Received: {plane_rotation!r}"
            )
        if not 0 <= rotation < 8 * es:
            raise ValueError(
                f"Expected `plane_rotation` in [0, {8 * es - 1}]. Received: "
                f"plane_rotation={rotation}"
            )
        rotation = int(rotation)
    elif plane_rotation is not None:
        raise ValueError(
            "`plane_rotation` applies to value_kind='planes' only. Received: "
            f"plane_rotation={plane_rotation!r}"
        )
    channels = 1
    if value_kind in _BIT_KINDS:
        if codebook is not None or indices is not None or index_bits is not None:
            raise ValueError(
                "`codebook`, `indices` and `index_bits` apply to the codebook value "
                "kinds only."
            )
        if elements is None:
            raise ValueError(
                f"Expected `elements` for value_kind={value_kind!r}. Received: None"
            )
        rows = _element_bytes(elements, es, "elements")
        if rows.shape[0] != count:
            raise ValueError(
                f"Expected {count} elements (count={count}). Received: {rows.shape[0]}"
            )
        symbols, book, value_bits = rows, None, 8
        fill_bytes = fill_symbols = positions = None
        if layout == "sparse":
            keys = _as_uint(rows)
            if fill is None:
                fill_key = _most_common(keys)
                fill_bytes = (
                    np.array([fill_key], _UINT_BY_SIZE[es])
                    .astype(f"<u{es}")
                    .view(np.uint8)
                )
            else:
                if isinstance(fill, bytes | bytearray):
                    fill_bytes = np.frombuffer(bytes(fill), np.uint8)
                    if fill_bytes.size != es:
                        raise ValueError(
                            f"Expected a {es}-byte `fill`. Received: "
                            f"{fill_bytes.size} bytes"
                        )
                else:
                    # A Python number takes the elements' dtype; arrays keep theirs.
                    plain = isinstance(fill, int | float) and not isinstance(fill, bool)
                    fill_arr = np.asarray(
                        fill, np.asarray(elements).dtype if plain else None
                    )
                    if fill_arr.size != 1:
                        raise ValueError(
                            f"Expected one fill element. Received: {fill_arr.size} "
                            "elements"
                        )
                    fill_bytes = _element_bytes(fill_arr, es, "fill").reshape(-1)
                fill_key = _as_uint(fill_bytes.reshape(1, es))[0]
            fill_bytes = fill_bytes.copy()
            positions = np.flatnonzero(keys != fill_key)
            fill_symbols = fill_bytes
        if rotation:
            # The planes are bytes of each element rotated left by R.
            word = _UINT_BY_SIZE[es]
            symbols = (
                rotate_left(_as_uint(rows).astype(word), rotation)
                .astype(f"<u{es}")
                .view(np.uint8)
                .reshape(-1, es)
            )
            if fill_symbols is not None:
                fill_symbols = (
                    rotate_left(_as_uint(fill_symbols.reshape(1, es)), rotation)
                    .astype(f"<u{es}")
                    .view(np.uint8)
                    .reshape(-1)
                )
    else:
        if elements is not None:
            raise ValueError("`elements` applies to value_kind='raw' only.")
        if codebook is None or indices is None:
            raise ValueError(
                f"Expected `codebook` and `indices` for value_kind={value_kind!r}."
            )
        if value_kind == "channel_codebook":
            codebook = np.asarray(codebook)
            if codebook.ndim != 2:
                raise ValueError(
                    "Expected a (channels, K) `codebook` for value_kind="
                    f"'channel_codebook'. Received: shape {codebook.shape}"
                )
            channels = codebook.shape[0]
            if isinstance(channel_run, bool) or not isinstance(
                channel_run, int | np.integer
            ):
                raise ValueError(
                    "Expected an int `channel_run` (elements per channel run) for "
                    f"value_kind='channel_codebook'. Received: {channel_run!r}"
                )
            channel_run = int(channel_run)
            if not 1 <= channels <= _U32_MAX or not 1 <= channel_run <= _U32_MAX:
                raise ValueError(
                    f"Expected 1 to {_U32_MAX} channels and channel_run. Received: "
                    f"{channels} channels, channel_run={channel_run}"
                )
            if count % (channels * channel_run):
                raise ValueError(
                    f"Expected {channels} channels x channel_run={channel_run} to "
                    f"divide count={count}."
                )
        book = _element_bytes(codebook, es, "codebook")
        k = book.shape[0] // channels
        limit = _codebook_limit(3, value_kind, es)
        if not 1 <= k <= limit:
            raise ValueError(
                f"Expected 1 to {limit} codebook entries (elements of {es} bytes, "
                f"value_kind={value_kind!r}). Received: {k}"
            )
        value_bits = max(1, (k - 1).bit_length()) if index_bits is None else index_bits
        if k > MAX_CODEBOOK:
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
        else:
            value_bits = _bitpack.check_bits(value_bits, "index_bits")
        idx = np.asarray(indices).reshape(-1)
        if idx.size != count:
            raise ValueError(
                f"Expected {count} indices (count={count}). Received: {idx.size}"
            )
        if idx.size:
            if not np.issubdtype(idx.dtype, np.integer):
                raise ValueError(
                    f"Expected integer `indices`. Received: dtype {idx.dtype}"
                )
            low, high = int(idx.min()), int(idx.max())
            if low < 0 or high >= k:
                raise ValueError(
                    f"Expected `indices` in [0, {k - 1}] (K={k}). Received: [{low}, "
                    f"{high}]"
                )
            if high >= 1 << value_bits:
                raise ValueError(
                    f"Expected `indices` < 2**index_bits={1 << value_bits}. "
                    f"Received: max index {high}; increase `index_bits`."
                )
        symbols = idx.astype(np.uint8 if value_bits <= 8 else np.uint16)
        fill_bytes = fill_symbols = positions = None
        if layout == "sparse":
            table = _as_uint(book).reshape(channels, k)
            uniform = np.all(table == table[:1], axis=0)  # same entry in every channel
            if fill is None:
                if not uniform.any():
                    raise ValueError(
                        "A sparse per-channel codebook needs an index whose entry is "
                        "the same in every channel (the fill value); none is. Pass "
                        "layout='dense', or add the fill value to every channel."
                    )
                counts = np.bincount(symbols, minlength=k)[:k] if symbols.size else None
                fill_index = (
                    int(np.argmax(np.where(uniform, counts, -1)))
                    if counts is not None
                    else int(np.argmax(uniform))
                )
            else:
                if isinstance(fill, bool) or not isinstance(fill, int | np.integer):
                    raise ValueError(
                        f"Expected an int `fill` (a codebook index). Received: {fill!r}"
                    )
                if not 0 <= fill < k:
                    raise ValueError(
                        f"Expected `fill` in [0, {k - 1}]. Received: fill={fill}"
                    )
                if not uniform[fill]:
                    raise ValueError(
                        f"Expected the fill index {fill} to hold the same value in "
                        "every channel's codebook (unstored elements all take it)."
                    )
                if fill >= 1 << value_bits:
                    raise ValueError(
                        f"Expected `fill` < 2**index_bits={1 << value_bits}. "
                        f"Received: {fill}"
                    )
                fill_index = int(fill)
            fill_bytes = book[fill_index].copy()
            fill_symbols = np.array([fill_index], symbols.dtype)
            positions = np.flatnonzero(symbols != fill_index)
    return _Prepared(
        element_type=int(element_type),
        element_size=es,
        count=count,
        layout=layout,
        value_kind=value_kind,
        value_bits=value_bits,
        symbols=symbols,
        codebook=book,
        channels=channels,
        channel_run=channel_run,
        shared=(
            _leading_shared(_as_uint(book).reshape(channels, -1))
            if value_kind == "channel_codebook"
            else 0
        ),
        fill_bytes=fill_bytes,
        fill_symbols=fill_symbols,
        positions=positions,
        value_coding=value_coding,
        gap_coding=gap_coding,
        gap_bits=gap_bits,
        rotation=rotation,
    )


def _most_common(keys: np.ndarray):
    if keys.size == 0:
        return keys.dtype.type(0)
    if keys.dtype == np.uint8:
        return np.uint8(np.argmax(np.bincount(keys, minlength=256)))
    values, counts = np.unique(keys, return_counts=True)
    return values[np.argmax(counts)]


def _symbol_freqs(symbols: np.ndarray, bits: int) -> np.ndarray:
    return np.bincount(symbols.reshape(-1), minlength=1 << bits)


def _values_size(p: _Prepared, freqs: list[np.ndarray]) -> int:
    """The value streams' size from their frequencies (one per plane: planes kind)."""
    return sum(
        _streams.stream_size_from_frequencies(f, p.value_bits, p.value_coding)
        for f in freqs
    )


def _value_freqs(p: _Prepared, symbols: np.ndarray) -> list[np.ndarray]:
    if p.value_kind == "planes":
        rows = symbols.reshape(-1, p.element_size)
        return [_symbol_freqs(rows[:, b], 8) for b in range(p.element_size)]
    return [_symbol_freqs(symbols, p.value_bits)]


def _streams_size(p: _Prepared) -> tuple[int, int | None]:
    """Returns (size of the streams, chosen gap width) without building any bytes."""
    if p.layout == "dense":
        return _values_size(p, _value_freqs(p, p.symbols)), None
    gap = np.diff(p.positions, prepend=-1) - 1
    base = _value_freqs(p, p.symbols[p.positions])
    fill_freqs = _value_freqs(p, p.fill_symbols)
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


def payload_size(*, estimate: bool = False, **kwargs) -> int:
    """Returns the exact byte size of `encode_payload(**kwargs)`.

    Takes the same keyword arguments as `encode_payload`. Fixed-width and Huffman
    sizes need no encoding; a rANS stream's exact size depends on the order of its
    symbols, so when a stream may be rANS coded ("rans" or "auto") the payload is
    encoded to measure it, unless `estimate` is True: then rANS streams are estimated
    from their frequencies (to within a few bytes), which is cheap.
    """
    p = _prepare(**_with_defaults(kwargs))
    may_rans = "rans" in (p.value_coding, p.gap_coding) or "auto" in (
        p.value_coding,
        p.gap_coding if p.layout == "sparse" else "fixed",
    )
    if may_rans and not estimate:
        return len(encode_payload(**kwargs))
    streams, _ = _streams_size(p)
    return HEADER_SIZE + p.prefix_size() + streams


def _with_defaults(kwargs: dict) -> dict:
    required = ("element_type", "element_size", "count", "layout", "value_kind")
    missing = [k for k in required if k not in kwargs]
    if missing:
        raise TypeError(f"Missing keyword arguments: {', '.join(missing)}")
    defaults = dict(
        elements=None,
        codebook=None,
        indices=None,
        fill=None,
        index_bits=None,
        gap_bits=None,
        value_coding="auto",
        gap_coding="auto",
        channel_run=None,
        plane_rotation=None,
    )
    unknown = set(kwargs) - set(required) - set(defaults)
    if unknown:
        raise TypeError(f"Unexpected keyword arguments: {', '.join(sorted(unknown))}")
    return {**defaults, **kwargs}


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
    parts = []
    if p.value_kind == "planes":
        parts.append(struct.pack("<B", p.rotation))
    if p.codebook is not None:
        parts.append(struct.pack("<H", p.codebook.shape[0] // p.channels))
        if p.value_kind == "channel_codebook":
            parts.append(struct.pack("<HII", p.shared, p.channels, p.channel_run))
        parts.append(p.stored_entries().tobytes())
    if p.layout == "sparse":
        _, g = _streams_size(p)
        gaps, stored = relative_index(p.positions, p.count, g)
        parts.append(p.fill_bytes.tobytes())
        parts.append(_streams.encode_stream(gaps, g, p.gap_coding))
        values = p.symbols[stored]
        streams = [parts[-1]]
    else:
        values = p.symbols
        streams = []
    if p.value_kind == "planes":
        rows = values.reshape(-1, p.element_size)
        for b in range(p.element_size):
            parts.append(_streams.encode_stream(rows[:, b], 8, p.value_coding))
            streams.append(parts[-1])
    else:
        parts.append(
            _streams.encode_stream(values.reshape(-1), p.value_bits, p.value_coding)
        )
        streams.append(parts[-1])
    # The lowest version that has the payload's value kind and stream codings.
    version = max(
        [_KIND_VERSION[p.value_kind], 3 if p.value_bits > 8 else 1]
        + [_streams.CODING_VERSION[_streams.CODING_NAMES[s[0]]] for s in streams]
    )
    body = b"".join(parts)
    if len(body) > _U32_MAX:
        raise ValueError(
            f"Expected a payload body under 4 GiB. Received: {len(body)} bytes"
        )
    head = _HEADER.pack(
        MAGIC,
        version,
        LAYOUTS.index(p.layout),
        VALUE_KINDS.index(p.value_kind),
        p.element_type,
        p.element_size,
        b"\0\0\0",
        p.count * p.element_size,
        len(body),
        0,
    )[:24]
    crc = crc32(body, crc32(head))
    return head + struct.pack("<I", crc) + body


def entropy_bits(symbols: np.ndarray, alphabet: int | None = None) -> float:
    """Returns the Shannon entropy of `symbols` in bits per symbol (0 when empty).

    Args:
        symbols: non-negative integers.
        alphabet: the alphabet size, when larger than max(symbols) + 1 (it does not
            change the entropy; it only validates the symbols against it).
    """
    sym = np.asarray(symbols).reshape(-1)
    if sym.size == 0:
        return 0.0
    if not np.issubdtype(sym.dtype, np.integer) or sym.min() < 0:
        raise ValueError("Expected non-negative integer `symbols`.")
    if alphabet is not None and sym.max() >= alphabet:
        raise ValueError(
            f"Expected `symbols` < alphabet={alphabet}. Received: max {int(sym.max())}"
        )
    counts = np.bincount(sym, minlength=alphabet or 0)
    p = counts[counts > 0] / sym.size
    return float(max(0.0, -np.sum(p * np.log2(p))))
