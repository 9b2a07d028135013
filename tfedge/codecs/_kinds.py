"""The value kinds of a payload (docs/FORMAT.md, section 2), in one table.

A value kind is what the body stores for each element: its bytes (raw, planes) or an
index into a codebook (codebook, channel_codebook). Each has a code (header byte 6),
the first format version that has it, the `encode_payload` options only it takes, and
its body's writer and readers:

* `prepare(EncodeArgs) -> KindValues`: checks the arguments, returns the kind's body
  section (the bytes before the sparse fill) and its value symbols;
* `value_streams(symbols, element_size)`: the value symbols split into its streams;
* `read_section(buf, pos, header, fail) -> (section, pos)`: reads and checks the
  section;
* `decode(buf, pos, header, section, stored, positions, name, fail)`: decodes the
  value streams into the `stored` elements, as unsigned words;
* `inspect(buf, pos, header, section, stored, name, fail) -> dict`: reads the value
  streams' headers, giving the kind's `PayloadInfo` fields.

To add a kind: write these (a `_kind_*.py` module), add its row below, and teach
docs/FORMAT.md, the C++ decoder and the Java unpacker.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from tfedge.codecs import _kind_bits, _kind_codebook


@dataclasses.dataclass(frozen=True)
class ValueKind:
    name: str  # `value_kind` in the API
    code: int  # header byte 6
    description: str  # in error messages
    version: int  # the first payload format version that has it
    options: tuple[str, ...]  # `encode_payload` options that apply to this kind only
    prepare: Callable
    value_streams: Callable
    read_section: Callable
    decode: Callable
    inspect: Callable


# In code order: a kind's code is its index here.
KINDS = (
    ValueKind(
        name="raw",
        code=0,
        description="raw",
        version=1,
        options=(),
        prepare=_kind_bits.prepare_raw,
        value_streams=_kind_bits.raw_streams,
        read_section=_kind_bits.read_no_section,
        decode=_kind_bits.decode_raw,
        inspect=_kind_bits.inspect_raw,
    ),
    ValueKind(
        name="codebook",
        code=1,
        description="codebook",
        version=1,
        options=(),
        prepare=_kind_codebook.prepare_codebook,
        value_streams=_kind_codebook.index_streams,
        read_section=_kind_codebook.read_codebook,
        decode=_kind_codebook.decode_codebook,
        inspect=_kind_codebook.inspect_codebook,
    ),
    ValueKind(
        name="channel_codebook",
        code=2,
        description="per-channel codebook",
        version=2,
        options=("channel_run",),
        prepare=_kind_codebook.prepare_codebook,
        value_streams=_kind_codebook.index_streams,
        read_section=_kind_codebook.read_codebook,
        decode=_kind_codebook.decode_codebook,
        inspect=_kind_codebook.inspect_codebook,
    ),
    ValueKind(
        name="planes",
        code=3,
        description="byte planes",
        version=3,
        options=("plane_rotation",),
        prepare=_kind_bits.prepare_planes,
        value_streams=_kind_bits.plane_streams,
        read_section=_kind_bits.read_rotation,
        decode=_kind_bits.decode_planes,
        inspect=_kind_bits.inspect_planes,
    ),
)
VALUE_KINDS = tuple(kind.name for kind in KINDS)
BY_NAME = {kind.name: kind for kind in KINDS}
# The options some kind takes alone, in the order `encode_payload` checks them.
KIND_OPTIONS = tuple(option for kind in KINDS for option in kind.options)
