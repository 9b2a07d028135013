"""The package build compiles the native decoder wherever a C++ compiler exists.

Not skipped when the library is missing: that is exactly what this test catches (the
other native tests skip then, so a silently failed build would otherwise pass CI).
"""

from __future__ import annotations

import shutil

import pytest

from tfedge.codecs import FORMAT_VERSION
from tfedge.errors import TfedgeError
from tfedge.runtime import _native
from tfedge.runtime._interpreter import Interpreter


def _compiler() -> str | None:
    return shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")


@pytest.mark.skipif(_compiler() is None, reason="no C++ compiler on this machine")
def test_library_is_built_when_a_compiler_exists():
    assert _native.native_library_path() is not None, (
        "a C++ compiler exists but tfedge's native library was not built; "
        "reinstall with `pip install -e .` and read the build_ext warning"
    )
    assert _native.native_available()
    # The native reader reads what the numpy reader reads: format version 2.
    assert _native._library().tfedge_format_version() == FORMAT_VERSION == 3


def test_without_the_library_python_still_works(monkeypatch):
    # The override points at no file: the package reports the library as missing
    # and the Interpreter says what to do instead of failing obscurely.
    monkeypatch.setenv(_native.LIBRARY_ENV, "/nonexistent/libtfedge.so")
    assert _native.native_library_path() is None
    assert not _native.native_available()
    with pytest.raises(TfedgeError, match="not built"):
        _native.decode_payload_native(b"TFEP")

    with pytest.raises(TfedgeError, match=r"tfedge\.expand"):
        Interpreter(model_content=b"TFL3")


def test_a_library_from_another_build_is_named_not_taken_for_a_corrupt_file(
    monkeypatch,
):
    # A shared library without tfedge's C API (here the C library itself) stands in
    # for a native decoder built from older sources: expand falls back to the numpy
    # reader, and asking for the native one says to rebuild.
    import ctypes.util

    libc = ctypes.util.find_library("c")
    if libc is None:
        pytest.skip("no C library to load by name on this machine")
    monkeypatch.setattr(_native, "native_library_path", lambda: libc)
    assert not _native.native_available()
    with pytest.raises(OSError, match="another build of tfedge.*rebuild"):
        _native._library()
