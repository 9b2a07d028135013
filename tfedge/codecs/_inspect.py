"""Reading a payload's parts without decoding its streams (for reports)."""

from __future__ import annotations

import dataclasses

import numpy as np

from tfedge.codecs import _streams
from tfedge.codecs._header import (
    DEFAULT_MAX_DECODED,
    HEADER_SIZE,
    PayloadHeader,
    read_header,
)
from tfedge.codecs._kindbase import byte_view
from tfedge.codecs._kinds import BY_NAME
from tfedge.errors import FormatError


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
    buf = byte_view(data)
    header = read_header(
        buf, name=name, max_decoded=max_decoded, expected_size=expected_size
    )
    es = header.element_size
    size = buf.size

    def fail(message: str, at: int) -> FormatError:
        return FormatError(message, tensor=name, offset=at)

    kind = BY_NAME[header.value_kind]
    section, pos = kind.read_section(buf, HEADER_SIZE, header, fail)
    fill = gaps = None
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
    info = kind.inspect(buf, pos, header, section, stored, name, fail)
    return PayloadInfo(
        header=header,
        codebook=info.pop("codebook", None),
        fill=fill,
        gaps=gaps,
        values=info.pop("values"),
        **info,
    )
