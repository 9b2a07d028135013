"""Build of tfedge's native library: the C++ payload decoder and TFEDGE_DECODE delegate
(with its sparse kernels).

Everything else about the package is declared in setup.cfg. The library is a plain
shared object loaded with ctypes and by TFLite's `load_delegate`; it links against
nothing but the C++ runtime, so it is built as a setuptools extension for its
compiler discovery and wheel tagging only (it has no Python module init).

It is optional: a machine without a working C++17 compiler still installs tfedge,
which then decodes with numpy (`tfedge.runtime.native_available()` is False).
"""

from __future__ import annotations

import sys

from setuptools import Extension, setup

_SOURCES = [
    "tfedge/runtime/cc/decoder.cc",
    "tfedge/runtime/cc/c_api.cc",
    "tfedge/runtime/cc/rans_encode.cc",
    "tfedge/runtime/cc/delegate.cc",
    "tfedge/runtime/cc/sparse_kernels.cc",
]

_COMPILE_ARGS = (
    []
    if sys.platform == "win32"
    else [
        "-std=c++17",
        "-O3",
        "-fvisibility=hidden",
        "-fno-strict-aliasing",
        "-g0",
    ]
)

setup(
    ext_modules=[
        Extension(
            "tfedge.runtime._tfedge_native",
            sources=_SOURCES,
            depends=[
                "tfedge/runtime/cc/decoder.h",
                "tfedge/runtime/cc/c_api.h",
                "tfedge/runtime/cc/tflite_abi.h",
                "tfedge/runtime/cc/sparse_kernels.h",
                "tfedge/runtime/cc/sparse_gemm_impl.h",
            ],
            language="c++",
            extra_compile_args=_COMPILE_ARGS,
            optional=True,
        )
    ]
)
