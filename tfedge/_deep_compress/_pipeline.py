"""`deep_compress`: the pipeline, its stages in order."""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from absl import logging

from tfedge._checks import check_int, check_sharing_bits, top1_accuracy
from tfedge._progress import resolve_verbose, stage
from tfedge.errors import PackError
from tfedge.pack._verify import tflite_metric

__all__ = ["DeepCompressed", "LayerRow", "Stage", "deep_compress"]

# The sparsities the sensitivity analysis tries. Denser near the top than the keras
# default: LeNet-like fully-connected layers tolerate 90-97%, and the choice between
# those decides most of the final size.
SENSITIVITY_SPARSITIES = (0.5, 0.7, 0.8, 0.85, 0.9, 0.925, 0.95, 0.97)
# Allowed one-shot (no retraining) accuracy drop per layer when choosing sparsities.
# Retraining recovers most of it (Han et al. 2015, fig. 5): one-shot losses of a few
# points typically end below half a point after iterative retraining.
DEFAULT_MAX_LOSS = 0.02
_STAGES = ("float", "pruned", "shared", "tfedge")
# `method="hessian"`/"ecsq": batches (of 32 training examples) behind the curvature
# estimate; 512 examples measure the squared gradients of LeNet-sized layers to a few
# percent, and the clustering only needs their relative sizes.
HESSIAN_BATCHES = 16


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
    input model, "pruned" and "shared" are stripped, plain models).
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


# --- argument checks ------------------------------------------------------------------


def _check_float(value, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"Expected `{name}` to be a number. Received: {name}={value!r}"
        )
    if not low < float(value) < high:
        raise ValueError(
            f"Expected `{name}` in ({low:g}, {high:g}). Received: {name}={value!r}"
        )
    return float(value)


def _is_dataset(obj) -> bool:
    return any(
        c.__name__ in ("DatasetV2", "DatasetV1")
        and c.__module__.startswith("tensorflow")
        for c in type(obj).__mro__
    )


class _Data:
    """Training or validation data: (x, y) arrays or a tf.data dataset of batches."""

    def __init__(self, data, name: str, batch_size: int, steps_per_epoch: int | None):
        self.name = name
        self.batch_size = batch_size
        if _is_dataset(data):
            self.dataset = data
            self.x = self.y = None
            if steps_per_epoch is not None:
                self.steps = steps_per_epoch
            else:
                n = int(data.cardinality())
                if n == -1:  # INFINITE
                    raise ValueError(
                        f"`{name}` is an infinite dataset: pass `steps_per_epoch`."
                    )
                if n < 0:  # UNKNOWN: count once
                    n = sum(1 for _ in data)
                self.steps = n
            if self.steps < 1:
                raise ValueError(f"`{name}` is an empty dataset.")
            return
        if not (isinstance(data, (tuple, list)) and len(data) == 2):
            raise ValueError(
                f"Expected `{name}` to be a tuple (x, y) of arrays or a "
                f"tf.data.Dataset of (x, y) batches. Received: {type(data).__name__}"
            )
        x, y = np.asarray(data[0]), np.asarray(data[1])
        if x.ndim == 0 or y.ndim == 0 or len(x) != len(y) or len(x) == 0:
            raise ValueError(
                f"Expected `{name}` = (x, y) with the same, non-zero number of "
                "samples. "
                f"Received: x of shape {x.shape}, y of shape {y.shape}"
            )
        self.dataset = None
        self.x, self.y = x, y
        self.steps = steps_per_epoch or math.ceil(len(x) / batch_size)

    def fit(self, model, epochs: int, verbose: int | str) -> None:
        if self.dataset is not None:
            # A dataset is shuffled (or not) by the user's pipeline; Keras warns when
            # `shuffle=True` (its default) is passed with one.
            model.fit(
                self.dataset,
                epochs=epochs,
                steps_per_epoch=self.steps,
                shuffle=False,
                verbose=verbose,
            )
        else:
            model.fit(
                self.x,
                self.y,
                batch_size=self.batch_size,
                epochs=epochs,
                shuffle=True,
                verbose=verbose,
            )

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The data as arrays (a dataset is read once, up to `steps` batches)."""
        if self.dataset is None:
            return self.x, self.y
        xs, ys = [], []
        for i, item in enumerate(self.dataset):
            if i >= self.steps:
                break
            if not (isinstance(item, (tuple, list)) and len(item) >= 2):
                raise ValueError(
                    f"Expected `{self.name}` to yield (x, y) batches. Received an "
                    f"element of type {type(item).__name__}"
                )
            xs.append(np.asarray(item[0]))
            ys.append(np.asarray(item[1]))
        return np.concatenate(xs), np.concatenate(ys)


# --- helpers --------------------------------------------------------------------------


def _default_loss(model, y: np.ndarray):
    import keras

    last = model.layers[-1] if model.layers else None
    softmax = getattr(last, "activation", None) is keras.activations.softmax
    if y.ndim >= 2 and y.shape[-1] > 1:
        return keras.losses.CategoricalCrossentropy(from_logits=not softmax)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=not softmax)


def _to_tflite(model) -> bytes:
    import tensorflow as tf

    from tfedge._quiet import quiet_tf

    # The Keras exporter prints the traced signature; the library never prints.
    with quiet_tf():
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def _weight_count(model) -> int:
    return int(sum(int(np.prod(w.shape)) for w in model.weights))


def _fixed_width_bytes(values: np.ndarray, ttype: int) -> int:
    """Smallest payload of `values` with fixed-width streams only (no Huffman)."""
    from tfedge import codecs

    n = values.size
    size = values.dtype.itemsize
    common = dict(element_type=ttype, element_size=size, count=n)
    fixed = dict(value_coding="fixed", gap_coding="fixed")
    sizes = [
        len(
            codecs.encode_payload(
                layout="dense", value_kind="raw", elements=values, **common, **fixed
            )
        )
    ]
    u = values.view(np.dtype(f"<u{size}"))
    uniq, inverse = np.unique(u, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse, minlength=uniq.size)
    mode = int(np.argmax(counts))
    sparse_ok = counts[mode] / max(n, 1) >= 0.05
    if sparse_ok:
        sizes.append(
            len(
                codecs.encode_payload(
                    layout="sparse",
                    value_kind="raw",
                    elements=values,
                    fill=uniq[mode : mode + 1].view(values.dtype),
                    **common,
                    **fixed,
                )
            )
        )
    if uniq.size <= codecs.MAX_CODEBOOK:
        book = dict(
            value_kind="codebook", codebook=uniq.view(values.dtype), indices=inverse
        )
        sizes.append(
            len(codecs.encode_payload(layout="dense", **book, **common, **fixed))
        )
        if sparse_ok:
            sizes.append(
                len(
                    codecs.encode_payload(
                        layout="sparse", fill=mode, **book, **common, **fixed
                    )
                )
            )
    return min(sizes)


def _payload_rows(
    packed_bytes: bytes,
    report,
    layer_names: Sequence[str],
    shared_bits: dict[str, tuple[int, int]],
) -> list[LayerRow]:
    """One `LayerRow` per packed tensor, read from the payloads themselves.

    `shared_bits` maps a layer name to (sharing bits, kernel size): a tensor of that
    layer with the kernel's size is its kernel (a bias is never shared).
    """
    from tfedge import codecs
    from tfedge.tflite import buffer_data, read, tensor_name

    model = read(packed_bytes)
    payloads = {}
    for sg in model.subgraphs:
        for t in sg.tensors or []:
            name = tensor_name(t)
            if name.endswith("/tfedge_payload"):
                payloads[name[: -len("/tfedge_payload")]] = buffer_data(model, t.buffer)
    rows = []
    for t in report.tensors:
        if not t.packed or t.name not in payloads:
            continue
        payload = bytes(payloads[t.name])
        info = codecs.inspect_payload(payload)
        n = int(np.prod(t.shape)) if t.shape else 1
        index_bits = coded_index = index_entropy = value_entropy = None
        if info.gaps is not None:
            index_bits = info.gaps.bits
            coded_index = 8.0 * info.gaps.size / max(info.gaps.count, 1)
            index_entropy = _stream_entropy(payload, info.gaps, t.name)
        values = info.values
        stored = (
            values.count
            if info.codebook is not None or info.planes
            else values.count // info.header.element_size
        )
        if info.codebook is not None:
            value_entropy = _stream_entropy(payload, values, t.name)
        nonzero = n * (1.0 - t.sparsity)
        value_bytes = sum(s.size for s in info.value_streams)
        layer = _layer_of(t.name, layer_names)
        rows.append(
            LayerRow(
                tensor=t.name,
                layer=layer,
                shape=tuple(t.shape),
                weights=n,
                kept=1.0 - t.sparsity,
                shared_bits=(
                    shared_bits[layer][0]
                    if layer in shared_bits and shared_bits[layer][1] == n
                    else None
                ),
                bits=t.bits,
                value_bits=8.0 * value_bytes / max(stored, 1),
                index_bits=index_bits,
                coded_index_bits=coded_index,
                encoding=t.encoding,
                packed_bytes=len(payload),
                value_entropy=value_entropy,
                index_entropy=index_entropy,
                nonzero_bits=8.0 * len(payload) / nonzero if nonzero else None,
            )
        )
    return rows


def _stream_entropy(payload: bytes, stream, name: str) -> float:
    """Entropy, bits per symbol, of a payload's stream (decoded for the report)."""
    from tfedge import codecs

    symbols, _ = codecs.decode_stream(payload, stream.offset, name=name)
    return codecs.entropy_bits(symbols)


def _layer_of(tensor: str, layer_names: Sequence[str]) -> str:
    """The Keras layer named in a converted tensor's name ("seq_1/fc1_1/MatMul": fc1).

    The converter names tensors by the traced layer paths, where Keras may have added
    a "_<n>" suffix to keep names unique.
    """
    for part in re.split(r"[/;]", tensor):
        base = re.sub(r"_\d+$", "", part)
        for candidate in (part, base):
            if candidate in layer_names:
                return candidate
    return ""


def _stage_bytes(stage_tflite: bytes, final_tflite: bytes, packed, report) -> int:
    """The stage's file with the finally packed tensors in fixed-width sparse payloads.

    The graph overhead of packing (payload tensors, decode operators, metadata) is taken
    from the final packed file, so the stages differ only in how weights are coded.
    """
    from tfedge.tflite import TYPES, buffer_data, read

    stage = read(stage_tflite)
    final = read(final_tflite)
    rows = [t for t in report.tensors if t.packed]
    overhead = len(packed) - (
        report.original_bytes
        - sum(t.original_bytes for t in rows)
        + sum(t.packed_bytes for t in rows)
    )
    total = len(stage_tflite) - sum(t.original_bytes for t in rows) + overhead
    for t in rows:
        ours = stage.subgraphs[t.subgraph].tensors[t.tensor]
        theirs = final.subgraphs[t.subgraph].tensors[t.tensor]
        if list(np.asarray(ours.shape)) != list(np.asarray(theirs.shape)) or (
            ours.type != theirs.type
        ):
            raise PackError(
                f"tensor {t.name!r}: the stage's .tflite does not have the final "
                "model's graph (a tfedge bug; please report it)"
            )
        values = np.ascontiguousarray(buffer_data(stage, ours.buffer)).view(
            TYPES[ours.type].dtype
        )
        total += _fixed_width_bytes(values.reshape(-1), ours.type)
    return int(total)


# --- the pipeline ---------------------------------------------------------------------

SparsitySpec = float | Mapping[str, float] | None
OptimizerSpec = str | Callable[[str, float], object] | None


def deep_compress(
    model,
    train_data,
    val_data,
    *,
    sparsity: SparsitySpec = None,
    max_loss: float = DEFAULT_MAX_LOSS,
    sensitivity_sparsities: Sequence[float] = SENSITIVITY_SPARSITIES,
    prune_rounds: int = 3,
    prune_epochs: int = 3,
    bits=None,
    init: str = "linear",
    method: str = "kmeans",
    rate: float | None = None,
    target_bits: float | None = None,
    share_epochs: int = 2,
    loss=None,
    optimizer: OptimizerSpec = None,
    prune_learning_rate: float = 5e-4,
    share_learning_rate: float = 1e-4,
    metrics: Sequence | None = None,
    metric: str | Callable = "accuracy",
    batch_size: int = 128,
    steps_per_epoch: int | None = None,
    seed: int = 0,
    verbose: int | str = "auto",
) -> DeepCompressed:
    """Prunes, trains shared weights and packs a trained model (Deep Compression).

    Args:
        model: a trained Sequential or functional Keras 3 model (not changed).
        train_data: `(x, y)` arrays or a tf.data dataset of `(x, y)` batches, for the
            retraining after pruning and the centroid fine-tuning.
        val_data: the same kinds, held out: the sensitivity analysis and every stage's
            accuracy are measured on it (a dataset is read into memory once).
        sparsity: per-layer sparsity: None chooses it by sensitivity analysis; a float
            in [0, 1) for every prunable layer; a dict `{layer name: sparsity}` prunes
            only those layers.
        max_loss: for the sensitivity choice: the one-shot metric drop allowed per
            layer (absolute, 0.02 = two points of accuracy).
        sensitivity_sparsities: the sparsities the analysis tries, increasing.
        prune_rounds: iterative pruning rounds. Each round removes the same fraction
            of the weights still left (kept fraction (1 - s) ** (i / rounds) after
            round i), then retrains; the last round, at the target, retrains twice as
            long as the others.
        prune_epochs: epochs of pruning and retraining in all (>= 1).
        bits: weight-sharing bits as in `tfedge.keras.share_weights`: None for the
            paper's 8 for convolutions and 5 for the rest, except 7 for a pruned
            convolution (8-bit, Huffman-coded indices address at most 256 values,
            and a pruned layer's codebook holds its zero too), and fewer for a layer
            with fewer distinct non-zero weights; an int; a dict; a callable.
        init: centroid initialisation, "linear" (the paper's), "density" or "random"
            (not for "hessian" and "ecsq").
        method: how the shared values are chosen before fine-tuning, as in
            `tfedge.keras.share_weights`: "kmeans" (the paper's), "hessian"
            (Hessian-weighted k-means) or "ecsq" (entropy-constrained scalar
            quantization); the curvature is the mean squared per-example gradient
            over the first `HESSIAN_BATCHES` batches of 32 training examples.
        rate: "ecsq": lambda for every layer; None searches it per layer to meet
            `target_bits`.
        target_bits: "ecsq" with `rate=None`: index entropy per non-zero weight;
            None: `bits - 2` per layer.
        share_epochs: epochs of centroid fine-tuning (0 keeps the k-means centroids).
        loss: training loss; default the model's compiled loss, else sparse (or, for
            one-hot labels, plain) categorical cross-entropy, from logits unless the
            last layer is a softmax.
        optimizer: None (Adam), a Keras optimizer name, or a callable
            `(stage, learning_rate) -> optimizer` with stage "prune" or "share"; a new
            optimizer is made for each stage.
        prune_learning_rate, share_learning_rate: learning rates of the two stages.
        metrics: metrics for `compile` (shown by `model.fit` when verbose).
        metric: the reported metric: "accuracy" (argmax against integer or one-hot
            labels) or `fn(y_true, y_pred) -> float`, higher is better.
        batch_size: batch size for array data.
        steps_per_epoch: steps per epoch (needed for infinite datasets).
        seed: seed of the Keras random state, k-means and shuffling.
        verbose: as in Keras: 0 silent; 1 `model.fit`'s progress bars and tfedge's
            (the sensitivity analysis, packing), or one line per stage when stderr is
            not a terminal; 2 one line per epoch and per stage; "auto" is 1.

    Returns:
        A `DeepCompressed`: `bytes(result)` is the packed .tflite.

    Raises:
        ValueError: bad arguments or data; a model with no prunable or shareable layer.
    """
    import keras

    import tfedge
    import tfedge.keras as tk

    if not isinstance(model, keras.Model):
        raise ValueError(
            "Expected `model` to be a trained Keras 3 model. Received: "
            f"{type(model).__name__}"
        )
    if not model.built or not model.weights:
        raise ValueError(
            f"Model {model.name!r} is not built or has no weights: train it first."
        )
    prune_rounds = check_int(prune_rounds, "prune_rounds", 1)
    prune_epochs = check_int(prune_epochs, "prune_epochs", 1)
    share_epochs = check_int(share_epochs, "share_epochs", 0)
    batch_size = check_int(batch_size, "batch_size", 1)
    seed = check_int(seed, "seed", 0)
    resolve_verbose(verbose)
    if steps_per_epoch is not None:
        steps_per_epoch = check_int(steps_per_epoch, "steps_per_epoch", 1)
    if (
        isinstance(max_loss, bool)
        or not isinstance(max_loss, numbers.Real)
        or max_loss < 0
    ):
        raise ValueError(f"Expected `max_loss` >= 0. Received: max_loss={max_loss!r}")
    prune_learning_rate = _check_float(prune_learning_rate, "prune_learning_rate", 0, 1)
    share_learning_rate = _check_float(share_learning_rate, "share_learning_rate", 0, 1)
    if init not in ("linear", "density", "random"):
        raise ValueError(
            "Expected `init` in ['linear', 'density', 'random']. "
            f"Received: init={init!r}"
        )
    from tfedge.keras._weight_sharing import _HESSIAN_BATCH_SIZE, _check_method

    _check_method(method, rate, target_bits, init)
    if metric == "accuracy":
        metric_fn = top1_accuracy
    elif callable(metric):
        metric_fn = metric
    else:
        raise ValueError(
            f"Expected `metric` 'accuracy' or a callable. Received: metric={metric!r}"
        )
    if not (optimizer is None or isinstance(optimizer, str) or callable(optimizer)):
        raise ValueError(
            "Expected `optimizer` None, a Keras optimizer name or a callable "
            f"(stage, learning_rate) -> optimizer. Received: optimizer={optimizer!r}"
        )

    prunable = [lyr.name for lyr in _all_prunable(model)]
    if not prunable:
        raise ValueError(
            f"Model {model.name!r} has no prunable layer (Dense, Conv, ...): Deep "
            "Compression has nothing to compress."
        )
    targets = _check_sparsity(sparsity, prunable)
    if targets is not None and not any(s > 0 for s in targets.values()):
        raise ValueError(
            f"`sparsity` prunes no layer (Received: sparsity={sparsity!r}). Give at "
            "least one layer a sparsity in (0, 1), or None to choose by sensitivity."
        )
    _check_bits(bits, [lyr.name for lyr in _all_sublayers(model)])

    train = _Data(train_data, "train_data", batch_size, steps_per_epoch)
    val = _Data(val_data, "val_data", batch_size, None)
    x_val, y_val = val.arrays()
    if loss is None and getattr(model, "compiled", False):
        loss = getattr(model, "loss", None)
    if loss is None:
        y_probe = train.y if train.y is not None else y_val
        loss = _default_loss(model, np.asarray(y_probe))

    def make_optimizer(stage: str, lr: float):
        if optimizer is None:
            return keras.optimizers.Adam(lr)
        if isinstance(optimizer, str):
            opt = keras.optimizers.get(optimizer)
            opt.learning_rate = lr
            return opt
        return optimizer(stage, lr)

    def compile_for(m, stage: str, lr: float):
        m.compile(
            optimizer=make_optimizer(stage, lr),
            loss=loss,
            metrics=list(metrics) if metrics else None,
        )

    def evaluate(m) -> float:
        return float(metric_fn(y_val, m.predict(x_val, batch_size=1024, verbose=0)))

    keras.utils.set_random_seed(seed)
    float_weight_bytes = 4 * _weight_count(model)
    float_accuracy = evaluate(model)
    float_tflite = _to_tflite(model)
    logging.info("deep_compress: float accuracy %.4f", float_accuracy)

    # --- stage 1: pruning -------------------------------------------------------------
    table = None
    if targets is None:
        table = tk.sensitivity(
            model,
            (x_val, y_val),
            sparsities=sensitivity_sparsities,
            metric=metric_fn,
            verbose=verbose,
        )
        targets = tk.choose_sparsity(table, max_loss=float(max_loss))
        logging.info("deep_compress: sensitivity chose %s", targets)
    active = {name: s for name, s in targets.items() if s > 0}
    if not active:
        raise ValueError(
            "No layer can be pruned within `max_loss`="
            f"{max_loss} (sensitivity chose {targets}). Raise `max_loss` or pass "
            "`sparsity`."
        )
    total_steps = prune_epochs * train.steps
    round_steps = max(1, total_steps // (prune_rounds + 1))
    schedules = {
        name: tk.IterativePruning(_round_sparsities(s, prune_rounds), round_steps)
        for name, s in active.items()
    }
    pruning = tk.prune(model, schedule=schedules)
    compile_for(pruning, "prune", prune_learning_rate)
    with stage(f"deep_compress: pruning, {prune_epochs} epochs", verbose=verbose):
        train.fit(pruning, prune_epochs, verbose)
    pruned = _positive_zeros(tk.strip(pruning))
    pruned_accuracy = evaluate(pruned)
    pruned_tflite = _to_tflite(pruned)
    logging.info("deep_compress: pruned accuracy %.4f", pruned_accuracy)

    # --- stage 2: trained weight sharing ----------------------------------------------
    curvature = {}
    curvature_examples = HESSIAN_BATCHES * _HESSIAN_BATCH_SIZE
    if method != "kmeans":
        curvature = dict(
            hessian_data=train.dataset
            if train.dataset is not None
            else (train.x[:curvature_examples], train.y[:curvature_examples]),
            hessian_batches=HESSIAN_BATCHES,
            loss=loss,
        )
    sharing = tk.share_weights(
        pruned,
        bits=_default_bits(set(active)) if bits is None else bits,
        init=init,
        seed=seed,
        method=method,
        rate=rate,
        target_bits=target_bits,
        **curvature,
    )
    chosen_bits = {
        w.name: w.bits
        for w in _all_sublayers(sharing)
        if isinstance(w, tk.WeightSharingWrapper)
    }
    if share_epochs:
        compile_for(sharing, "share", share_learning_rate)
        with stage(
            f"deep_compress: weight sharing, {share_epochs} epochs", verbose=verbose
        ):
            train.fit(sharing, share_epochs, verbose)
    final = tk.strip(sharing)
    shared_accuracy = evaluate(final)
    shared_tflite = _to_tflite(final)
    logging.info("deep_compress: shared accuracy %.4f", shared_accuracy)

    # --- stage 3: Huffman (lossless packing of the exact codebooks) -------------------
    with stage("deep_compress: packing", verbose=verbose):
        packed = tfedge.compress(
            shared_tflite, lossless=True, seed=seed, progress=False
        )
    report = packed.report
    final_accuracy = tflite_metric(
        tfedge.expand(bytes(packed)), x_val, y_val, metric_fn
    )

    sizes = {
        "float": len(float_tflite),
        "pruned": _stage_bytes(pruned_tflite, shared_tflite, packed, report),
        "shared": _stage_bytes(shared_tflite, shared_tflite, packed, report),
        "tfedge": len(packed),
    }
    accuracies = {
        "float": float_accuracy,
        "pruned": pruned_accuracy,
        "shared": shared_accuracy,
        "tfedge": final_accuracy,
    }
    stages = [
        Stage(
            name,
            accuracies[name],
            sizes[name],
            sizes["float"] / sizes[name],
            float_weight_bytes / sizes[name],
        )
        for name in _STAGES
    ]
    layer_names = [lyr.name for lyr in _all_sublayers(final)]
    return DeepCompressed(
        packed=packed,
        model=final,
        tflite=shared_tflite,
        stages=stages,
        layers=_payload_rows(
            bytes(packed),
            report,
            layer_names,
            {
                name: (b, int(np.prod(final.get_layer(name).kernel.shape)))
                for name, b in chosen_bits.items()
            },
        ),
        sparsity={name: float(targets.get(name, 0.0)) for name in prunable},
        bits=chosen_bits,
        sensitivity=table,
        float_weight_bytes=float_weight_bytes,
        stage_models={"float": model, "pruned": pruned, "shared": final},
    )


def _default_bits(pruned_layers: set[str]) -> Callable:
    """The paper's bits (8 conv, 5 fc), 7 for a pruned layer whose 2^8 values + 0 would
    not fit a codebook of 8-bit indices, and fewer for a layer with fewer distinct
    non-zero weights than that: just enough bits to hold each of them (so that no
    centroid is wasted, and share_weights has nothing to warn about).

    A pruned layer's codebook also holds its zero. Past `codecs.MAX_CODEBOOK` (256)
    entries the indices take 9 bits or more, which only rANS codes (format version
    3): no Huffman coding, the paper's third stage, for that layer.
    """
    from tfedge.codecs import MAX_CODEBOOK
    from tfedge.keras._kernel_swap import kernel_variable, to_numpy
    from tfedge.keras._weight_sharing import default_bits

    def pick(layer) -> int:
        b = default_bits(layer)
        if layer.name in pruned_layers and 2**b + 1 > MAX_CODEBOOK:
            b -= 1
        kernel = kernel_variable(layer)
        if kernel is not None:
            values = to_numpy(kernel)
            distinct = np.unique(values[values != 0]).size
            if 0 < distinct <= 2**b:
                b = max(1, math.ceil(math.log2(distinct)))
        return b

    return pick


def _positive_zeros(model):
    """`model` with every -0.0 weight set to +0.0 (in place; returns it).

    Masking by multiplication leaves -0.0 where a negative weight was pruned; a
    lossless coder sees two different zeros and stores half the pruned weights.
    """
    model.set_weights(
        [np.where(w == 0, np.zeros_like(w), w) for w in model.get_weights()]
    )
    return model


def _round_sparsities(target: float, rounds: int) -> list[float]:
    """Sparsity after each round: each keeps the same fraction of what is left."""
    values = [1.0 - (1.0 - target) ** ((i + 1) / rounds) for i in range(rounds)]
    values[-1] = target
    # Strictly increasing for IterativePruning (equal only if target is tiny).
    return sorted(set(values))


def _all_sublayers(model) -> list:
    from tfedge.keras._kernel_swap import flat_layers

    return flat_layers(model)


def _all_prunable(model) -> list:
    from tfedge.keras import is_prunable

    return [lyr for lyr in _all_sublayers(model) if is_prunable(lyr)]


def _check_sparsity(sparsity: SparsitySpec, prunable: list[str]) -> dict | None:
    if sparsity is None:
        return None
    if isinstance(sparsity, Mapping):
        out = {}
        for name, s in sparsity.items():
            if name not in prunable:
                raise ValueError(
                    f"`sparsity` names layer {name!r}, which is not a prunable layer "
                    "of the model. Prunable layers: {prunable}"
                )
            out[name] = _check_float_closed(s, f"sparsity[{name!r}]")
        return out
    value = _check_float_closed(sparsity, "sparsity")
    return {name: value for name in prunable}


def _check_bits(bits, names: list[str]) -> None:
    """Validates an int or dict `bits` before any training (`share_weights` does it
    again, after pruning)."""
    if bits is None or callable(bits):
        return
    if isinstance(bits, Mapping):
        for name, b in bits.items():
            if name not in names:
                raise ValueError(
                    f"`bits` names layer {name!r}, which is not in the model. Layers: "
                    f"{names}"
                )
            check_sharing_bits(b, f"bits[{name!r}]")
        return
    check_sharing_bits(bits)


def _check_float_closed(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"Expected `{name}` to be a float. Received: {name}={value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(
            f"Expected `{name}` in [0, 1). Received: {name}={value!r}. A sparsity is "
            "the fraction of weights set to zero."
        )
    return float(value)
