"""What `deep_compress` returns: `DeepCompressed`, its `Stage` rows and `LayerRow`s."""

from __future__ import annotations

import dataclasses

__all__ = ["STAGE_NAMES", "DeepCompressed", "LayerRow", "Stage"]

# The stages, in the pipeline's order.
STAGE_NAMES = ("float", "pruned", "shared", "tfedge")


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of the pipeline.

    Attributes:
        name: "float", "pruned", "shared" or "tfedge".
        accuracy: metric on the validation data (Keras predictions for the first three,
            the expanded packed .tflite in the stock interpreter for "tfedge").
        bytes: storage of the stage: the float .tflite file; the file with the packed
            tensors stored sparse with fixed-width streams (pruned: float32 values,
            shared: codebook indices); the packed file itself.
        ratio: the float .tflite file's bytes / `bytes`: how many times smaller than
            the float file the stage is. The float row reads 1.0x on every Keras
            backend (the JAX export writes a few kB more graph than TensorFlow's, which
            made a ratio against the weights read 0.9x for a small float file).
        weight_ratio: float32 weight bytes of the input model (4 x parameters) /
            `bytes`, the paper's accounting (below 1 for the float file, by its graph).
    """

    name: str
    accuracy: float
    bytes: int
    ratio: float
    weight_ratio: float


@dataclasses.dataclass(frozen=True)
class LayerRow:
    """One packed weight tensor of the final file (Deep Compression tables 2-3).

    Attributes:
        tensor: the tensor's name in the .tflite file.
        layer: the Keras layer it comes from ("" when no layer name matches).
        shape: the tensor's shape.
        weights: number of elements.
        kept: fraction of non-zero elements.
        shared_bits: the layer's weight-sharing bits (2^bits shared non-zero values;
            None for tensors that were not shared, such as biases).
        bits: codebook index width in the payload (None for raw values). The codebook
            also holds the zero of pruned weights, so it may be `shared_bits + 1`.
        value_bits: bits per stored entry of the value stream after coding.
        index_bits: symbol width of the relative index (None for a dense layout).
        coded_index_bits: bits per stored entry of the relative index after coding.
        encoding: "<layout>/<values>/<coding(s)>" as in `Packed.report`.
        packed_bytes: the tensor's payload bytes.
        value_entropy: Shannon entropy of the codebook indices in the value stream,
            bits per symbol (None for raw values), the bound `value_bits` approaches.
        index_entropy: entropy of the relative index's symbols (None when dense), the
            bound of `coded_index_bits`.
        nonzero_bits: the whole payload in bits per non-zero weight.
    """

    tensor: str
    layer: str
    shape: tuple[int, ...]
    weights: int
    kept: float
    shared_bits: int | None
    bits: int | None
    value_bits: float
    index_bits: int | None
    coded_index_bits: float | None
    encoding: str
    packed_bytes: int
    value_entropy: float | None = None
    index_entropy: float | None = None
    nonzero_bits: float | None = None


class DeepCompressed:
    """What `deep_compress` returns.

    `bytes(result)` (or `result.packed`) is the packed .tflite; `result.model` the final
    plain Keras model (pruned, shared, stripped); `result.stages` the size and accuracy
    of each stage; `result.layers` one row per packed tensor; `result.report` the
    converter's `tfedge.pack.Report`; `result.sparsity` and `result.bits` the per-layer
    choices; `result.sensitivity` the sensitivity table (None when sparsities were
    given); `result.stage_models` the Keras model after each stage ("float" is the
    input model, "pruned" and "shared" are stripped, plain models, batch
    normalisations folded); `result.float_weight_bytes` the float model's weights as
    float32 (batch normalisations folded: the weights of its .tflite).
    """

    def __init__(
        self,
        *,
        packed,
        model,
        tflite: bytes,
        stages: list[Stage],
        layers: list[LayerRow],
        sparsity: dict[str, float],
        bits: dict[str, int],
        sensitivity,
        float_weight_bytes: int,
        stage_models: dict,
    ):
        self.packed = packed
        self.model = model
        self.tflite = tflite
        self.stages = stages
        self.layers = layers
        self.sparsity = sparsity
        self.bits = bits
        self.sensitivity = sensitivity
        self.float_weight_bytes = float_weight_bytes
        self.stage_models = stage_models

    @property
    def report(self):
        return self.packed.report

    def __bytes__(self) -> bytes:
        return bytes(self.packed)

    def __len__(self) -> int:
        return len(self.packed)

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"No stage {name!r}; stages are {[s.name for s in self.stages]}")

    def table(self) -> str:
        """The stages, then one row per packed tensor."""
        from tfedge._table import Column, render

        stages = render(
            [Column("stage"), Column("accuracy", ">"), Column("bytes", ">")]
            + [Column("ratio", ">")],
            [
                [s.name, f"{s.accuracy:.4f}", s.bytes, f"{s.ratio:.1f}x"]
                for s in self.stages
            ],
        )

        def num(x):
            return "-" if x is None else f"{x:.2f}"

        rows = []
        for r in self.layers:
            rows.append(
                [
                    r.tensor.split(";")[0],
                    f"{r.kept:.1%}",
                    r.shared_bits or "-",
                    num(r.nonzero_bits),
                    f"{r.value_bits:.2f}",
                    num(r.value_entropy),
                    r.index_bits or "-",
                    num(r.coded_index_bits),
                    num(r.index_entropy),
                    r.packed_bytes,
                ]
            )
        names = ("kept", "share", "b/nz", "val b", "val H", "idx", "idx b", "idx H")
        tensors = render(
            [Column("tensor", max_width=36)]
            + [Column(t, ">") for t in (*names, "bytes")],
            rows,
            footer=[
                "columns: kept = weights left after pruning; share = shared-weight "
                "bits; b/nz = payload bits per non-zero weight; val b, idx b = coded "
                "bits per symbol of the value and sparse-index streams, val H, idx H "
                "= their entropies; idx = index width"
            ],
        )
        return stages + "\n\n" + tensors

    def __repr__(self) -> str:
        last = self.stages[-1]
        return (
            f"<tfedge.DeepCompressed {len(self)} bytes, {last.ratio:.1f}x smaller than "
            f"the float .tflite, accuracy {last.accuracy:.4f}>"
        )
