"""tfedge: make Keras models small and fast enough to ship in mobile and embedded apps.

The public surface:

- `compress(model, ...) -> Packed`: the converter stage (weight sharing, sparse index,
  Huffman) for a `.tflite` file or bytes, a Keras model, a tf_keras model or a
  SavedModel.
- `expand(packed) -> bytes`: a plain `.tflite` that runs in any interpreter.
- `Interpreter`: the stock TFLite interpreter with the TFEDGE_DECODE op available.
- `deep_compress(model, train_data, val_data, ...)`: Deep Compression's three stages in
  one call (pruning, trained weight sharing, then `compress`).
- `TfedgeError`, `FormatError`, `PackError`, `BudgetError`, `ConversionError`.

Training-time wrappers live in `tfedge.keras`; conversion to .tflite in
`tfedge.convert`; size planning in `tfedge.budget`; dynamic fixed point in
`tfedge.fixed_point`; docs/ARCHITECTURE.md gives the layers and what each imports.
Importing `tfedge` imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

from tfedge._version import __version__
from tfedge.errors import (
    BudgetError,
    ConversionError,
    FormatError,
    PackError,
    TfedgeError,
)

__all__ = [
    "BudgetError",
    "ConversionError",
    "DeepCompressed",
    "FormatError",
    "Interpreter",
    "PackError",
    "Packed",
    "TfedgeError",
    "compress",
    "deep_compress",
    "expand",
    "__version__",
]

# Public names that pull in heavier modules are resolved on first use, so that
# `import tfedge` stays cheap and never imports TensorFlow.
_LAZY = {
    "compress": ("tfedge.convert", "compress"),
    "Packed": ("tfedge.pack", "Packed"),
    "expand": ("tfedge.runtime", "expand"),
    "Interpreter": ("tfedge.runtime", "Interpreter"),
    "deep_compress": ("tfedge._deep_compress", "deep_compress"),
    "DeepCompressed": ("tfedge._deep_compress", "DeepCompressed"),
}

# Subpackages reachable as attributes (`tfedge.budget.plan(...)` after `import
# tfedge`), imported on first use.
_SUBPACKAGES = (
    "budget",
    "codecs",
    "convert",
    "datasets",
    "errors",
    "fixed_point",
    "keras",
    "pack",
    "runtime",
    "tflite",
)


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f"tfedge.{name}")
    raise AttributeError(f"module 'tfedge' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_SUBPACKAGES))
