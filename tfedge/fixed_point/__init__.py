"""Dynamic fixed point (Qiu et al. 2016): per-layer fractional lengths, TFLite export.

- `quantize(model, representative_data, ...) -> FixedPointResult`: the weight phase and
  the greedy data phase; the result holds the lengths (`layers`, `LayerLengths`), a
  Keras simulation model (`result.model`) and the .tflite (`bytes(result)`).
- `FixedPointQuantize`, `FixedPointWeights`: the Keras layers of the simulation.

Importing this package imports Keras; exporting imports TensorFlow.
"""

from __future__ import annotations

from tfedge.fixed_point._export import MAX_DRIFT_LSB
from tfedge.fixed_point._layers import FixedPointQuantize, FixedPointWeights
from tfedge.fixed_point._numeric import FL_MAX, FL_MIN
from tfedge.fixed_point._quantize import (
    ACTIVATION_BITS_RANGE,
    MODES,
    WEIGHT_BITS_RANGE,
    FixedPointResult,
    LayerLengths,
    quantize,
)

__all__ = [
    "ACTIVATION_BITS_RANGE",
    "FL_MAX",
    "FL_MIN",
    "FixedPointQuantize",
    "FixedPointResult",
    "FixedPointWeights",
    "LayerLengths",
    "MAX_DRIFT_LSB",
    "MODES",
    "WEIGHT_BITS_RANGE",
    "quantize",
]
