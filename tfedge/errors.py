"""tfedge's exceptions.

`TfedgeError` is the base of every failure that tfedge itself detects. Argument errors
are plain `ValueError`s, as in Keras.
"""

from __future__ import annotations


class TfedgeError(Exception):
    """Base class of tfedge's own failures."""


class FormatError(TfedgeError):
    """A file or payload is malformed: truncated, corrupted, or of a newer format.

    The message names the tensor (when known), the byte offset (when known) and the
    problem.
    """

    def __init__(
        self, message: str, *, tensor: str | None = None, offset: int | None = None
    ):
        self.tensor = tensor
        self.offset = offset
        where = []
        if tensor is not None:
            where.append(f"tensor {tensor!r}")
        if offset is not None:
            where.append(f"byte {offset}")
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + message)


class ConversionError(TfedgeError):
    """TensorFlow Lite's converter could not turn a Keras model or SavedModel into a
    .tflite file; the message names the operations and layers, and the fix."""


class PackError(TfedgeError):
    """Packing failed: a tensor could not be encoded within the requested tolerance."""


class BudgetError(TfedgeError, ValueError):
    """A size budget cannot be met: it is below the smallest file the model reaches
    (`tfedge.budget.plan`, `Analysis.plan`). A `ValueError` too, as an impossible
    argument, so that code catching `ValueError` catches it."""
