"""What the planner may do to a kernel (`Option`, `transform`) and what it costs in the
packed file, exactly: the packer's own lossless encoder, its graph overhead, packing."""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np

from tfedge.pack import (
    ECSQ_ERRORS,
    GRAPH_OVERHEAD_BYTES,
    compress_tflite,
    ecsq_share,
    share,
)
from tfedge.tflite import opcode_name

# Sparsities tried per kernel (fraction of weights pruned by magnitude). 0 keeps every
# weight; LeNet-like fully-connected layers stand 90-98% (Han et al. 2015, table 1).
DEFAULT_SPARSITIES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)


# Sharing bits tried per kernel: Deep Compression uses 8 for conv and 5 for fc layers
# after fine-tuning; without fine-tuning 2-3 bits still suit some layers.
DEFAULT_BITS = (8, 6, 5, 4, 3, 2)


# ECSQ points tried per kernel and sparsity with `ecsq=True`: every other point of the
# converter's rate ladder (relative weight errors 0.02-0.18, about 7 to 3 bits of
# k-means), so that each sparsity costs four more sensitivity runs, not seven.
DEFAULT_ECSQ_ERRORS = ECSQ_ERRORS[::2]


@dataclasses.dataclass(frozen=True)
class Option:
    """How a kernel is coded: prune to `sparsity`, then float, `bits`-bit k-means,
    ternary, or `ecsq`: entropy-constrained scalar quantization (Choi et al. 2017)
    aimed at that relative weight error (`tfedge.compress(method="ecsq")`'s rate
    ladder)."""

    sparsity: float
    bits: int | None = None
    ternary: bool = False
    ecsq: float | None = None

    @property
    def coding(self) -> str:
        if self.ternary:
            return "ternary"
        if self.ecsq is not None:
            return f"ecsq {self.ecsq:g}"
        return "float" if self.bits is None else f"{self.bits}-bit"

    def __str__(self) -> str:
        return f"{self.coding} @ {self.sparsity:.0%} pruned"


# Operators and the input positions that hold a weight matrix (not a bias).
_WEIGHT_OPERANDS = {
    "FULLY_CONNECTED": (1,),
    "CONV_2D": (1,),
    "DEPTHWISE_CONV_2D": (1,),
    "CONV_3D": (1,),
    "TRANSPOSE_CONV": (1,),
    "BATCH_MATMUL": (0, 1),
    "GATHER": (0,),
    "EMBEDDING_LOOKUP": (1,),
}


def weight_matrix_buffers(model) -> set[int]:
    """Buffers of the weight tensors the planner tunes: float constants with at least
    two dimensions larger than 1, or read by an op as its weight matrix (a Dense layer
    with one unit is [1, n]). Biases are vectors however they are shaped: TensorFlow's
    export gives [n], the JAX export [1, n] or [1, 1, 1, n] (added by a separate ADD),
    and tuning those as kernels doubled the planner's interpreter runs on JAX."""
    operands: set[int] = set()
    shaped: set[int] = set()
    for sg in model.subgraphs:
        tensors = sg.tensors or []
        for t in tensors:
            shape = [] if t.shape is None else [int(d) for d in t.shape]
            if t.buffer > 0 and sum(d > 1 for d in shape) >= 2:
                shaped.add(t.buffer)
        for op in sg.operators or []:
            for pos in _WEIGHT_OPERANDS.get(opcode_name(model, op.opcodeIndex), ()):
                inputs = [] if op.inputs is None else list(op.inputs)
                if pos < len(inputs) and inputs[pos] >= 0:
                    operands.add(tensors[int(inputs[pos])].buffer)
    return shaped | {b for b in operands if b > 0}


def check_fractions(values, name: str, low: float, high: float) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except TypeError as e:
        raise ValueError(
            f"Expected `{name}` to be a list of numbers. Received: {values!r}"
        ) from e
    if not out or any(not low <= v < high for v in out):
        raise ValueError(
            f"Expected `{name}` in [{low:g}, {high:g}). Received: {name}={list(values)}"
        )
    return tuple(sorted(set(out)))


def check_bits(values) -> tuple[int, ...]:
    try:
        out = tuple(values)
    except TypeError as e:
        raise ValueError(
            f"Expected `bits` to be a list of ints. Received: {values!r}"
        ) from e
    if any(
        isinstance(b, bool) or not isinstance(b, numbers.Integral) or not 1 <= b <= 8
        for b in out
    ):
        raise ValueError(f"Expected `bits` in [1, 8]. Received: bits={list(values)}")
    return tuple(sorted({int(b) for b in out}, reverse=True))


def transform(values: np.ndarray, option: Option, *, seed: int = 0) -> np.ndarray:
    """`values` (1-D float) pruned and coded as `option` says; same dtype."""
    v = np.array(values, copy=True).reshape(-1)
    k = int(round(option.sparsity * v.size))
    if k > 0:
        drop = np.argpartition(np.abs(v.astype(np.float64)), k - 1)[:k]
        v[drop] = 0
    if option.ternary:
        pos, neg = v > 0, v < 0
        out = np.zeros_like(v)
        if pos.any():
            out[pos] = v[pos].astype(np.float64).mean()
        if neg.any():
            out[neg] = v[neg].astype(np.float64).mean()
        return out
    if option.ecsq is not None:
        shared = ecsq_share(v, option.ecsq)
        return v if shared is None else shared.codebook[shared.indices]
    if option.bits is not None:
        shared = share(v, option.bits, seed=seed)
        return shared.codebook[shared.indices]
    return v


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    ref = float(np.linalg.norm(a.astype(np.float64)))
    err = float(np.linalg.norm(a.astype(np.float64) - b.astype(np.float64)))
    return err / ref if ref > 0 else err


def packed_cost(payload: int, raw: int, name: str) -> int:
    """What a tensor adds to the file when `compress` packs it: the payload plus the
    graph overhead compress itself counts, or its raw bytes when packing does not
    pay."""
    packed = payload + GRAPH_OVERHEAD_BYTES + len(name)
    return raw if packed >= raw else packed


def pack_lossless(tflite: bytes, min_bytes: int):
    """`tfedge.compress(tflite, lossless=True)`: what the planner measures sizes
    with."""
    return compress_tflite(tflite, lossless=True, min_bytes=min_bytes, progress=False)
