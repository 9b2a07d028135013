"""The converter stage: per-tensor encoding choice, packing, verification and the
report."""

from tfedge.pack._compress import DEFAULT_TOLERANCE, Packed, compress
from tfedge.pack._report import Report, TensorReport

__all__ = ["DEFAULT_TOLERANCE", "Packed", "Report", "TensorReport", "compress"]
