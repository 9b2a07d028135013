"""Training-time tfedge: Keras 3 layer wrappers, schedules, callbacks and `strip`.

Every wrapper implements `tfedge_strip()`, which returns a plain, built Keras layer with the
wrapper's final weights baked in; `strip(model)` calls it for every tfedge layer so that the
result holds only stock Keras layers, ready for `tfedge.compress`.
"""

from __future__ import annotations

__all__: list[str] = []

# --- pruning (Han et al. 2015, LeCun et al. 1989) and strip ------------------------------

# --- trained ternary quantization (Zhu et al. 2016) ------------------------------------

# --- trained weight sharing (Deep Compression, Han et al. 2016) ------------------------

# --- low-rank factorization (Zhang et al. 2015) ----------------------------------------
