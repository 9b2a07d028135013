"""Training-time tfedge: Keras 3 layer wrappers, schedules, callbacks and `strip`.

Every wrapper implements `tfedge_strip()`, which returns a plain, built Keras layer with
the wrapper's final weights baked in; `strip(model)` calls it for every tfedge layer so
that the result holds only stock Keras layers, ready for `tfedge.compress`.
"""

from __future__ import annotations

__all__: list[str] = []

# --- pruning (Han et al. 2015, LeCun et al. 1989) and strip ---------------------------
from tfedge.keras._callbacks import PruningLogger  # noqa: E402
from tfedge.keras._obd import estimate_hessian  # noqa: E402
from tfedge.keras._prune import (  # noqa: E402
    PRUNABLE_WEIGHTS,
    PruningWrapper,
    is_prunable,
    prunable_weights,
    prune,
)
from tfedge.keras._schedules import (  # noqa: E402
    ConstantSparsity,
    IterativePruning,
    PolynomialDecay,
    PruningSchedule,
)
from tfedge.keras._sensitivity import (  # noqa: E402
    SensitivityTable,
    choose_sparsity,
    plot_sensitivity,
    sensitivity,
)
from tfedge.keras._strip import strip  # noqa: E402

__all__ += [
    "PRUNABLE_WEIGHTS",
    "ConstantSparsity",
    "IterativePruning",
    "PolynomialDecay",
    "PruningLogger",
    "PruningSchedule",
    "PruningWrapper",
    "SensitivityTable",
    "choose_sparsity",
    "estimate_hessian",
    "is_prunable",
    "plot_sensitivity",
    "prunable_weights",
    "prune",
    "sensitivity",
    "strip",
]

# --- trained ternary quantization (Zhu et al. 2016) -----------------------------------
from tfedge.keras._ternary import TernaryWrapper, ternarize  # noqa: E402

__all__ += ["TernaryWrapper", "ternarize"]

# --- trained weight sharing (Deep Compression, Han et al. 2016) -----------------------
from tfedge.keras._weight_sharing import WeightSharingWrapper, share_weights  # noqa: E402

__all__ += ["WeightSharingWrapper", "share_weights"]

# --- batch normalisation folded into the layer before (before sharing its kernels) ----
from tfedge.keras._fold import fold_batch_norm, foldable_batch_norms  # noqa: E402

__all__ += ["fold_batch_norm", "foldable_batch_norms"]

# --- low-rank factorization (Zhang et al. 2015) ---------------------------------------
from tfedge.keras._factorize import factorize, multiply_adds, select_ranks  # noqa: E402
from tfedge.keras._lowrank import LowRankConv2D, LowRankDense  # noqa: E402

__all__ += [
    "LowRankConv2D",
    "LowRankDense",
    "factorize",
    "multiply_adds",
    "select_ranks",
]

# --- the internal API ---------------------------------------------------------------
# Not public (not in __all__): the names tfedge's upper layers (deep_compress) use
# instead of this package's private modules; they may change with tfedge.
from tfedge.keras._kernel_swap import kernel_variable as kernel_variable  # noqa: E402
from tfedge.keras._kernel_swap import to_numpy as to_numpy  # noqa: E402
from tfedge.keras._weight_sharing import (  # noqa: E402
    HESSIAN_BATCH_SIZE as HESSIAN_BATCH_SIZE,
)
from tfedge.keras._weight_sharing import (  # noqa: E402
    check_sharing_method as check_sharing_method,
)
from tfedge.keras._weight_sharing import default_bits as default_bits  # noqa: E402

# --- size budget ----------------------------------------------------------------------
# `SizeBudget` lives in `tfedge.budget` (a layer above this package, see
# docs/ARCHITECTURE.md) and is re-exported here on first use.
__all__ += ["SizeBudget"]


def __getattr__(name: str):
    if name == "SizeBudget":
        from tfedge.budget import SizeBudget

        globals()[name] = SizeBudget
        return SizeBudget
    raise AttributeError(f"module 'tfedge.keras' has no attribute {name!r}")
