"""The decoder side: `expand` (numpy, or native when built) and `Interpreter`.

`Interpreter` is the stock LiteRT interpreter with tfedge's TFEDGE_DECODE op loaded as
an external delegate; importing it loads LiteRT, so it is resolved on first use.
"""

from tfedge.runtime._expand import expand
from tfedge.runtime._native import (
    decode_payload_native,
    native_available,
    use_native_rans_encoder,
)

__all__ = [
    "Interpreter",
    "allocate_tensors",
    "decode_payload_native",
    "expand",
    "load_decode_delegate",
    "native_available",
    "use_native_rans_encoder",
]

_LAZY = {"Interpreter", "allocate_tensors", "load_decode_delegate"}


def __getattr__(name: str):
    if name in _LAZY:
        from tfedge.runtime import _interpreter

        value = getattr(_interpreter, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tfedge.runtime' has no attribute {name!r}")
