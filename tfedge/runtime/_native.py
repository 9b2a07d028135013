"""The native payload decoder (tfedge/runtime/cc), loaded with ctypes.

The shared library is built by the package's own build (setup.py) next to this module.
It is optional: when it was not built, `native_available()` is False and callers use
the numpy reader `tfedge.codecs.decode_payload`, which is the reference this decoder is
tested against (identical bytes out, a `FormatError` for the same inputs).

The same library is the TFEDGE_DECODE external delegate (see `_interpreter.py`).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.machinery
import os

import numpy as np

from tfedge.errors import FormatError, TfedgeError

__all__ = ["decode_payload_native", "native_available", "native_library_path"]

# Decoded tensors are bounded by their own byte size when known; this bounds the rest.
DEFAULT_MAX_DECODED = 2**31 - 1
# Set to a library path to use another build (for example a sanitizer build).
LIBRARY_ENV = "TFEDGE_NATIVE_LIBRARY"

_LIBRARY_STEM = "_tfedge_native"
_ERR_LEN = 512
_OK, _FORMAT_ERROR, _ARGUMENT_ERROR = 0, 1, 2


def native_library_path() -> str | None:
    """The path of the built native library, or None when it was not built."""
    override = os.environ.get(LIBRARY_ENV)
    if override:
        return override if os.path.isfile(override) else None
    here = os.path.dirname(os.path.abspath(__file__))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(here, _LIBRARY_STEM + suffix)
        if os.path.isfile(path):
            return path
    return None


@functools.cache
def _load(path: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(path)
    try:
        _declare(lib)
    except AttributeError as e:
        # A library built from other sources than this Python code (a source tree
        # whose C++ changed since its last build): not this package's decoder.
        raise OSError(
            f"tfedge's native library {path} is from another build of tfedge ({e}); "
            "rebuild it (pip install -e . or python setup.py build_ext --inplace)"
        ) from e
    return lib


def _declare(lib: ctypes.CDLL) -> None:
    """Declares the C API's signatures (AttributeError when a symbol is missing)."""
    u8p = ctypes.POINTER(ctypes.c_uint8)
    lib.tfedge_format_version.restype = ctypes.c_int
    lib.tfedge_format_version.argtypes = []
    lib.tfedge_decoded_size.restype = ctypes.c_int
    lib.tfedge_decoded_size.argtypes = [
        u8p,
        ctypes.c_size_t,
        ctypes.c_uint64,
        ctypes.POINTER(ctypes.c_uint64),
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.POINTER(ctypes.c_int64),
    ]
    lib.tfedge_decode.restype = ctypes.c_int
    lib.tfedge_decode.argtypes = [
        u8p,
        ctypes.c_size_t,
        u8p,
        ctypes.c_size_t,
        ctypes.c_uint64,
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.POINTER(ctypes.c_int64),
    ]
    lib.tfedge_rans_encode.restype = ctypes.c_int
    lib.tfedge_rans_encode.argtypes = [
        ctypes.POINTER(ctypes.c_int32),
        ctypes.c_size_t,
        ctypes.POINTER(ctypes.c_uint32),
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_size_t,
        u8p,
        ctypes.c_size_t,
        ctypes.POINTER(ctypes.c_uint64),
        ctypes.POINTER(ctypes.c_size_t),
    ]
    lib.tfedge_crc32.restype = ctypes.c_uint32
    lib.tfedge_crc32.argtypes = [ctypes.c_uint32, u8p, ctypes.c_size_t]
    lib.tfedge_delegate_probe_report.restype = ctypes.c_size_t
    lib.tfedge_delegate_probe_report.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    lib.tfedge_delegate_decode_count.restype = ctypes.c_uint64
    lib.tfedge_delegate_decode_count.argtypes = []
    lib.tfedge_delegate_held_bytes.restype = ctypes.c_uint64
    lib.tfedge_delegate_held_bytes.argtypes = []
    u64p = ctypes.POINTER(ctypes.c_uint64)
    lib.tfedge_sparse_stats.restype = None
    lib.tfedge_sparse_stats.argtypes = [u64p, u64p, u64p, u64p]
    lib.tfedge_sparse_isa_supported.restype = ctypes.c_int
    lib.tfedge_sparse_isa_supported.argtypes = [ctypes.c_char_p]


def _library() -> ctypes.CDLL:
    path = native_library_path()
    if path is None:
        raise TfedgeError(
            "tfedge's native library is not built (no C++17 compiler at install "
            "time?); reinstall tfedge with a compiler, or use "
            "tfedge.codecs.decode_payload"
        )
    return _load(path)


def native_available() -> bool:
    """Whether the native decoder library is built and loads."""
    path = native_library_path()
    if path is None:
        return False
    try:
        _load(path)
    except OSError:
        return False
    return True


def _as_bytes_array(data) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    return np.frombuffer(data, np.uint8)


def _ptr(arr: np.ndarray):
    return arr.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))


def decode_payload_native(
    data,
    *,
    name: str | None = None,
    max_decoded: int = DEFAULT_MAX_DECODED,
    expected_size: int | None = None,
) -> np.ndarray:
    """Decodes one payload (docs/FORMAT.md section 2) with the C++ decoder.

    Args:
        data: the whole payload (bytes-like or a uint8 array).
        name: the tensor named in errors.
        max_decoded: the largest decoded size accepted, checked before allocating.
        expected_size: the tensor's byte size when known; it is then also the bound,
            and the decoded size must equal it.

    Returns:
        A new uint8 array of the decoded bytes.

    Raises:
        FormatError: the payload is malformed (the same inputs the numpy reader
            rejects), naming the tensor and the byte offset.
        TfedgeError: the native library is not built.
    """
    if max_decoded < 0:
        raise ValueError(
            f"Expected `max_decoded` >= 0. Received: max_decoded={max_decoded}"
        )
    lib = _library()
    buf = _as_bytes_array(data)
    bound = max_decoded if expected_size is None else min(max_decoded, expected_size)
    err = ctypes.create_string_buffer(_ERR_LEN)
    offset = ctypes.c_int64(-1)
    size = ctypes.c_uint64(0)
    rc = lib.tfedge_decoded_size(
        _ptr(buf),
        buf.size,
        bound,
        ctypes.byref(size),
        err,
        _ERR_LEN,
        ctypes.byref(offset),
    )
    if rc != _OK:
        raise FormatError(_message(err), tensor=name, offset=_offset(offset))
    if expected_size is not None and size.value != expected_size:
        raise FormatError(
            f"decoded size {size.value} disagrees with the tensor's "
            f"{expected_size} bytes",
            tensor=name,
            offset=12,
        )
    out = np.empty(size.value, np.uint8)
    rc = lib.tfedge_decode(
        _ptr(buf),
        buf.size,
        _ptr(out),
        out.size,
        bound,
        err,
        _ERR_LEN,
        ctypes.byref(offset),
    )
    if rc == _FORMAT_ERROR:
        raise FormatError(_message(err), tensor=name, offset=_offset(offset))
    if rc != _OK:
        raise RuntimeError(f"tfedge native decoder failed: {_message(err)}")
    return out


def rans_encode_native(symbols, plan) -> tuple[np.ndarray, bytes]:
    """`tfedge.codecs`' rANS encoder (`rans_encode(symbols, plan)`: block offsets and
    data) in C++: the numpy encoder's bytes, without its per-step passes."""
    sym = np.ascontiguousarray(np.asarray(symbols).reshape(-1), np.int32)
    if sym.size == 0:
        return np.zeros(0, np.int64), b""
    freqs = np.ascontiguousarray(plan.freqs, np.uint32)
    block = int(plan.block_size)
    nblocks = -(-sym.size // block)
    out = np.empty(nblocks * 4 * plan.lanes + 2 * sym.size, np.uint8)
    offsets = np.zeros(max(nblocks - 1, 0), np.uint64)
    written = ctypes.c_size_t(0)
    rc = _library().tfedge_rans_encode(
        sym.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
        sym.size,
        freqs.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32)),
        freqs.size,
        int(plan.scale_bits),
        int(plan.lanes),
        block,
        _ptr(out),
        out.size,
        offsets.ctypes.data_as(ctypes.POINTER(ctypes.c_uint64)),
        ctypes.byref(written),
    )
    if rc != _OK:
        raise ValueError(
            "Expected symbols each with a non-zero frequency in a table summing to "
            f"2**{plan.scale_bits}, 1..32 lanes and a positive block size"
        )
    return offsets.astype(np.int64), out[: written.value].tobytes()


def use_native_rans_encoder() -> bool:
    """Has `tfedge.codecs` encode rANS streams with the native library when it is
    built (the same bytes, far faster on large tensors); returns whether it is."""
    from tfedge.codecs import set_rans_encoder

    if not native_available():
        return False
    set_rans_encoder(rans_encode_native)
    return True


def crc32_native(data, crc: int = 0) -> int:
    """zlib-compatible CRC-32 of `data` continuing from `crc` (tests, benches)."""
    buf = _as_bytes_array(data)
    return int(_library().tfedge_crc32(crc, _ptr(buf), buf.size))


def delegate_probe_report() -> str:
    """The graph as the TFEDGE_DECODE delegate last saw it with option probe=1."""
    lib = _library()
    n = lib.tfedge_delegate_probe_report(None, 0)
    buf = ctypes.create_string_buffer(n + 1)
    lib.tfedge_delegate_probe_report(buf, n + 1)
    return buf.value.decode("utf-8", "replace")


def delegate_decode_count() -> int:
    """How many payloads the TFEDGE_DECODE kernel has decoded in this process."""
    return int(_library().tfedge_delegate_decode_count())


def delegate_held_bytes() -> int:
    """Bytes of weights the delegate decoded at partitioning time and still holds
    (they go with the interpreter that uses them)."""
    return int(_library().tfedge_delegate_held_bytes())


def sparse_stats() -> dict[str, int]:
    """The delegate's sparse kernels in this process: `layers` built (`blocked`: of
    those, with a 1x4 or 4x1 block layout), operator `runs`, and `nanos` spent in
    those runs (their own timer)."""
    keys = ("layers", "blocked", "runs", "nanos")
    values = [ctypes.c_uint64(0) for _ in keys]
    _library().tfedge_sparse_stats(*(ctypes.byref(v) for v in values))
    return dict(zip(keys, (int(v.value) for v in values), strict=True))


SPARSE_ISAS = ("auto", "avx512", "avx2", "generic")


def sparse_isa_supported(name: str) -> bool:
    """Whether the sparse kernels' instruction set `name` (one of SPARSE_ISAS) is in
    this build and runs on this CPU: the values the delegate option `sparse_isa`
    accepts here (for tests of every code path; "auto", the default, picks the best).

    Raises:
        ValueError: `name` is not one of SPARSE_ISAS.
    """
    supported = _library().tfedge_sparse_isa_supported(name.encode("ascii"))
    if supported < 0:
        raise ValueError(
            f"Expected `name` one of {SPARSE_ISAS}. Received: name={name!r}"
        )
    return supported == 1


def _message(err) -> str:
    return err.value.decode("utf-8", "replace")


def _offset(offset: ctypes.c_int64) -> int | None:
    return offset.value if offset.value >= 0 else None
