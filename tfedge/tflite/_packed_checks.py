"""File-level checks that every reader of a packed model makes (docs/FORMAT.md,
"Hostile files"): the `tfedge` metadata entry, the TFEDGE_DECODE operators' buffers,
the resource bound, and the size the model would take once its shared objects are
written out one by one. `tfedge.expand`, `tfedge.inspect` and `tfedge.Interpreter`
call `read_packed`; the Java unpacker makes the same checks with the same messages.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import struct

import numpy as np

from tfedge.errors import FormatError

# The deepest JSON nesting the metadata entry may have: tfedge writes a flat object, and
# a bound keeps every reader's parser (recursive in Python's json) out of trouble.
MAX_METADATA_DEPTH = 64
# A well-formed model grows by padding and unshared vtables only when it is written out
# again; a model whose objects are referenced many times (only a forged file) would
# multiply, so readers refuse a model that would take more than this many times its
# file size, plus a constant for tiny files (besides its decoded weights).
MAX_UNSHARED_GROWTH = 8
UNSHARED_SLACK = 1 << 16

_METADATA = "'tfedge' metadata entry"
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"?', re.S)
# Foreign exceptions a forged flatbuffer can raise from the schema's object API or from
# index arithmetic over it; each reader turns them into FormatError.
_FOREIGN = (
    IndexError,
    KeyError,
    TypeError,
    ValueError,
    OverflowError,
    RecursionError,
    MemoryError,
    struct.error,
    UnicodeDecodeError,
    AttributeError,
)


@contextlib.contextmanager
def foreign_errors_as_format_errors():
    """Re-raises an exception that a forged file provokes in code that is not
    tfedge's (the flatbuffers runtime, numpy) as a FormatError."""
    try:
        yield
    except FormatError:
        raise
    except _FOREIGN as e:
        raise FormatError(
            f"corrupted or truncated .tflite flatbuffer ({type(e).__name__}: {e})"
        ) from e


def _json_depth(text: str) -> int:
    """The deepest nesting of [ and { outside JSON strings (an unterminated string
    runs to the end)."""
    rest = np.frombuffer(_STRINGS.sub("", text).encode("utf-8"), np.uint8)
    steps = np.zeros(rest.size, np.int64)
    steps[(rest == ord("[")) | (rest == ord("{"))] = 1
    steps[(rest == ord("]")) | (rest == ord("}"))] = -1
    return int(np.cumsum(steps).max(initial=0))


class _Object(list):
    """A JSON object as its list of (key, value) pairs (duplicates kept)."""


def _ascii_number(parse):
    def check(text: str):
        if not text.isascii():  # Python's json takes any Unicode digit
            raise ValueError(f"non-ASCII digits in {text!r}")
        return parse(text)

    return check


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def metadata_format_version(raw: bytes) -> int:
    """The `format_version` of the `tfedge` metadata entry's bytes.

    The entry must be UTF-8 JSON (RFC 8259: no NaN or Infinity), nested at most
    `MAX_METADATA_DEPTH` deep, whose top level is an object with exactly one
    `format_version` member, an integer >= 1.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"the {_METADATA} is not UTF-8 text") from e
    if _json_depth(text) > MAX_METADATA_DEPTH:
        raise FormatError(
            f"the {_METADATA} nests JSON deeper than {MAX_METADATA_DEPTH} levels"
        )
    try:
        meta = json.loads(
            text,
            object_pairs_hook=_Object,
            parse_int=_ascii_number(int),
            parse_float=_ascii_number(float),
            parse_constant=_no_constant,
        )
    except (ValueError, RecursionError) as e:
        raise FormatError(f"the {_METADATA} is not valid JSON") from e
    if not isinstance(meta, _Object):
        raise FormatError(f"the {_METADATA} is not a JSON object")
    versions = [v for k, v in meta if k == "format_version"]
    if len(versions) != 1:
        raise FormatError(
            f"the {_METADATA} has {len(versions)} format_version members, expected 1"
        )
    (version,) = versions
    if type(version) is not int or version < 1:
        raise FormatError(f"the {_METADATA}'s format_version is not an integer >= 1")
    return version


def check_decode_buffers(model, ops) -> None:
    """Each TFEDGE_DECODE operator's payload and weight tensors refer to real buffers
    other than buffer 0 (TFLite's empty buffer), so the payload can be read and the
    weight written."""
    n = len(model.buffers or [])
    for si, oi, p_index, w_index in ops:
        sg = model.subgraphs[si]
        for role, ti in (("payload", p_index), ("weight", w_index)):
            b = sg.tensors[ti].buffer
            if not 1 <= b < n:
                raise FormatError(
                    f"subgraph {si} operator {oi}: the TFEDGE_DECODE {role} tensor "
                    f"{ti} refers to buffer {b}, which cannot hold its data (the model "
                    f"has {n} buffers; buffer 0 is the empty one)"
                )


def tensor_bytes(shape, itemsize: int) -> int:
    """Elements x itemsize in Python integers (a forged shape cannot wrap)."""
    return math.prod(int(d) for d in shape) * itemsize


def unshared_size(model) -> int:
    """About how many bytes the model takes once written with every object on its
    own (its buffers' data included): what a shared object would multiply."""
    total = 0
    stack = [model]
    while stack:
        obj = stack.pop()
        total += 16
        for value in vars(obj).values():
            if value is None:
                continue
            if isinstance(value, np.ndarray):
                total += value.nbytes
            elif isinstance(value, (bytes, str)):
                total += len(value)
            elif isinstance(value, list):
                total += 4 * len(value)
                for item in value:
                    if isinstance(item, (bytes, str)):
                        total += len(item)
                    elif hasattr(item, "__dict__"):
                        stack.append(item)
            elif hasattr(value, "__dict__"):
                stack.append(value)
    return total


def check_unshared_size(model, file_size: int) -> None:
    """Refuses a model whose objects are shared so much that writing it out (as every
    reader does) would multiply it (only a forged file shares them)."""
    limit = MAX_UNSHARED_GROWTH * file_size + UNSHARED_SLACK
    if unshared_size(model) > limit:
        raise FormatError(
            f"corrupted or truncated .tflite flatbuffer (the expanded model would take "
            f"over {limit} bytes besides its weights: objects are shared or the file "
            "is forged)"
        )
