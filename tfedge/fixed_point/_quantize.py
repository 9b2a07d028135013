"""`quantize`: Qiu et al.'s weight phase and greedy data phase; the result object."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping

import keras
import numpy as np
from absl import logging

from tfedge.fixed_point import _numeric
from tfedge.fixed_point._chain import check_is_chain, read_chain
from tfedge.fixed_point._layers import FixedPointQuantize, FixedPointWeights

MODES = ("dynamic", "static")
# TFLite's integer kernels hold weights as int8 (also in its 16-bit activation mode);
# narrower widths are int8 tensors with fewer distinct codes, which tfedge.compress
# packs into that many bits.
WEIGHT_BITS_RANGE = (2, 8)
# Feature maps are int8 up to 8 bits and int16 above.
ACTIVATION_BITS_RANGE = (2, 16)
_BATCH = 256


@dataclasses.dataclass(frozen=True)
class LayerLengths:
    """The fixed-point format chosen for one Conv2D, DepthwiseConv2D or Dense layer.

    Values are `code * 2**-fractional_length`. The bias uses the sum of the input and
    weight lengths (TFLite's bias scale). `saturated` is the fraction of the layer's
    output values, on the representative data, that hit the end of the code range.
    """

    name: str
    weight_bits: int
    weight_fractional_length: int
    bias_fractional_length: int
    input_fractional_length: int
    output_fractional_length: int
    saturated: float


class FixedPointResult:
    """What `quantize` returns.

    Attributes:
        model: the simulation: a Keras model with fixed-point weights and feature maps
            (`FixedPointWeights` and `FixedPointQuantize` layers), to evaluate with
            `model.evaluate` or fine-tune with `model.fit` (gradients pass straight
            through the rounding to the float weights).
        layers: a `LayerLengths` per weight layer, in order.
        input_fractional_length: the fractional length of the model input.
        activation_bits: width of every feature map.
        mode: "dynamic" (a length per layer) or "static" (one for all).

    `bytes(result)` (or `result.to_tflite()`) is the exported .tflite: integer tensors
    with scales `2**-fl` and zero point 0, float input and output. It is exported on
    first use from the simulation model's current weights (so it follows fine-tuning;
    the file is cached until the weights change), run in the stock interpreter on up to
    64 representative samples and compared with the simulation: `export_drift_lsb` is
    the largest output difference in steps of the output grid, and export raises
    `TfedgeError` beyond `MAX_DRIFT_LSB`.
    """

    def __init__(
        self,
        *,
        model,
        layers,
        input_fractional_length,
        activation_bits,
        mode,
        float_model,
        calibration,
    ):
        self.model = model
        self.layers = tuple(layers)
        self.input_fractional_length = input_fractional_length
        self.activation_bits = activation_bits
        self.mode = mode
        self._float_model = float_model
        self._calibration = calibration
        self._cache: tuple[bytes, bytes] | None = None
        self.export_drift_lsb: float | None = None

    @property
    def weight_fractional_lengths(self) -> dict[str, int]:
        return {la.name: la.weight_fractional_length for la in self.layers}

    @property
    def weight_bits(self) -> dict[str, int]:
        return {la.name: la.weight_bits for la in self.layers}

    @property
    def activation_fractional_lengths(self) -> dict[str, int]:
        """The input's length (key "input") and each weight layer's output length."""
        lengths = {"input": self.input_fractional_length}
        lengths.update({la.name: la.output_fractional_length for la in self.layers})
        return lengths

    def _wrappers(self) -> list[FixedPointWeights]:
        return [la for la in self.model.layers if isinstance(la, FixedPointWeights)]

    def _fingerprint(self) -> bytes:
        h = hashlib.sha256()
        for w in self.model.get_weights():
            h.update(np.ascontiguousarray(w).tobytes())
        return h.digest()

    def to_tflite(self) -> bytes:
        """The .tflite of the simulation model's current weights (cached)."""
        from tfedge.fixed_point._export import export

        key = self._fingerprint()
        if self._cache is None or self._cache[0] != key:
            data, drift = export(self)
            self.export_drift_lsb = drift
            self._cache = (key, data)
        return self._cache[1]

    def __bytes__(self) -> bytes:
        return self.to_tflite()

    def table(self) -> str:
        """The chosen lengths, one row per layer."""
        from tfedge._table import Column, render

        columns = [Column("layer", max_width=30)] + [
            Column(t, ">")
            for t in (
                "w bits",
                "w fl",
                "bias fl",
                "in fl",
                "out fl",
                "saturated",
            )
        ]
        rows = [
            [
                la.name,
                la.weight_bits,
                la.weight_fractional_length,
                la.bias_fractional_length,
                la.input_fractional_length,
                la.output_fractional_length,
                f"{la.saturated:.2%}",
            ]
            for la in self.layers
        ]
        return render(
            columns,
            rows,
            footer=[
                "columns: fl = fractional length (bits after the binary point) of the "
                "weights, biases, input and output feature maps; saturated = output "
                "values at the end of the code range"
            ],
        )

    def summary(self) -> str:
        """The same as `table()` (the name of earlier releases)."""
        return self.table()

    def __repr__(self) -> str:
        return (
            f"FixedPointResult(mode={self.mode!r}, activation_bits="
            f"{self.activation_bits}, input_fl={self.input_fractional_length}, "
            f"layers={[dataclasses.astuple(la)[:6] for la in self.layers]})"
        )


def _check_bits(name: str, value, lo: int, hi: int, why: str = "") -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool):
        raise ValueError(f"Expected `{name}` to be an int. Received: {name}={value!r}")
    if not lo <= value <= hi:
        raise ValueError(
            f"Expected `{name}` in [{lo}, {hi}]{why}. Received: {name}={value}"
        )
    return int(value)


_WEIGHT_WHY = " (TFLite's integer kernels hold weights as int8)"


def _check_data(model, representative_data) -> np.ndarray:
    try:
        x = np.asarray(representative_data, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ValueError(
            "Expected `representative_data` to be an array of inputs (first axis: "
            f"samples). Received: a {type(representative_data).__name__} that numpy "
            "cannot convert to one float32 array"
        ) from e
    want = tuple(model.inputs[0].shape)
    if x.ndim != len(want) or any(
        w is not None and w != g for w, g in zip(want[1:], x.shape[1:], strict=True)
    ):
        raise ValueError(
            "Expected `representative_data` of shape "
            f"(n, {', '.join(map(str, want[1:]))}) to match the model input. "
            f"Received: shape {x.shape}"
        )
    if x.shape[0] == 0:
        raise ValueError(
            "Expected `representative_data` to hold at least one sample. Received: "
            f"shape {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError("`representative_data` holds inf or NaN values.")
    return x


def _run(layers, x: np.ndarray) -> np.ndarray:
    """Applies `layers` in order to `x`, in batches, in inference mode."""
    outs = []
    for i in range(0, len(x), _BATCH):
        y = x[i : i + _BATCH]
        for layer in layers:
            y = layer(y, training=False)
        outs.append(keras.ops.convert_to_numpy(y))
    return np.concatenate(outs)


def _clone(layer):
    return type(layer).from_config(layer.get_config())


def quantize(
    model: keras.Model,
    representative_data,
    *,
    weight_bits: int = 8,
    activation_bits: int = 8,
    bits_per_layer: Mapping[str, int] | None = None,
    mode: str = "dynamic",
) -> FixedPointResult:
    """Dynamic fixed point (Qiu et al. 2016) for a chain of Keras layers.

    Weight phase: each Conv2D/DepthwiseConv2D/Dense kernel gets the fractional length
    that minimises `sum |w - w_fixed|` among those that avoid overflow of its range
    and a few finer ones. Data phase: greedily, layer by layer, with every earlier layer
    already in fixed point, each feature map gets the length whose rounded values are
    closest (L1) to the float model's feature map on `representative_data`.
    `mode="static"` is the baseline: one length for all kernels and one for all
    feature maps.

    Args:
        model: a Sequential (or single-chain functional) Keras model of Conv2D,
            DepthwiseConv2D, Dense, pooling, Flatten, Reshape, Dropout and ReLU layers.
        representative_data: inputs, first axis samples (a few hundred suffice).
        weight_bits: kernel width, 2 to 8.
        activation_bits: feature-map width, 2 to 16 (int8 tensors up to 8, int16 above).
        bits_per_layer: kernel width per layer name, overriding `weight_bits` (for
            example 4 bits for the fully-connected layers, as in the paper).
        mode: "dynamic" or "static".

    Returns:
        A `FixedPointResult`; `bytes(result)` is the .tflite.

    Raises:
        ValueError: for bad arguments, unsupported layers, or a range that overflows
            every allowed fractional length (`_numeric.FL_MIN`).
    """
    if mode not in MODES:
        raise ValueError(f"Expected `mode` in {MODES}. Received: mode={mode!r}")
    weight_bits = _check_bits(
        "weight_bits", weight_bits, *WEIGHT_BITS_RANGE, _WEIGHT_WHY
    )
    activation_bits = _check_bits(
        "activation_bits", activation_bits, *ACTIVATION_BITS_RANGE
    )
    steps = read_chain(model)
    weight_steps = [s for s in steps if s.kind == "weights"]
    names = [s.layer.name for s in weight_steps]
    per_layer = {}
    if bits_per_layer is not None:
        if not isinstance(bits_per_layer, Mapping):
            raise ValueError(
                "Expected `bits_per_layer` to be a mapping of layer name to bits. "
                f"Received: bits_per_layer={bits_per_layer!r}"
            )
        for name, bits in bits_per_layer.items():
            if name not in names:
                raise ValueError(
                    f"`bits_per_layer` names layer {name!r}, which is not a weight "
                    f"layer of model {model.name!r}. Weight layers: {names}"
                )
            per_layer[name] = _check_bits(
                f"bits_per_layer[{name!r}]", bits, *WEIGHT_BITS_RANGE, _WEIGHT_WHY
            )
    x = _check_data(model, representative_data)
    check_is_chain(model, steps, x[:2])
    wbits = {name: per_layer.get(name, weight_bits) for name in names}
    abits = activation_bits
    bias_bits = 32 if abits <= 8 else 64

    # Weight phase.
    kernels = {s.layer.name: np.asarray(s.layer.get_weights()[0]) for s in weight_steps}
    if mode == "dynamic":
        wfl = {
            n: _numeric.choose_length(
                [(kernels[n], kernels[n], wbits[n])], f"layer {n!r} kernel"
            )
            for n in names
        }
    else:
        shared = _numeric.choose_length(
            [(kernels[n], kernels[n], wbits[n]) for n in names], "the kernels"
        )
        wfl = dict.fromkeys(names, shared)

    # Float feature maps, for the data phase.
    refs = []
    y = x
    for s in steps:
        y = _run([s.layer, *s.activations], y)
        refs.append(y)
    static_fl = None
    if mode == "static":
        maps = [x] + [
            r for s, r in zip(steps, refs, strict=True) if s.kind == "weights"
        ]
        static_fl = _numeric.choose_length(
            [(m, m, abits) for m in maps], "the feature maps"
        )

    # Data phase: greedy, layer by layer, on the fixed-point model built so far.
    in_fl = static_fl
    if in_fl is None:
        in_fl = _numeric.choose_length([(x, x, abits)], "the input")
    sim_layers = [
        keras.Input(tuple(model.inputs[0].shape[1:])),
        FixedPointQuantize(abits, in_fl, name="input_fixed_point"),
    ]
    xq = _numeric.quantize(x, abits, in_fl)
    cur = in_fl
    records = []
    for s, ref in zip(steps, refs, strict=True):
        if s.kind == "weights":
            name = s.layer.name
            inner = _clone(s.layer)
            inner.build((None, *xq.shape[1:]))
            inner.set_weights(s.layer.get_weights())
            wrapper = FixedPointWeights(
                inner,
                weight_bits=wbits[name],
                weight_fractional_length=wfl[name],
                bias_bits=bias_bits,
                bias_fractional_length=cur + wfl[name],
                name=f"{name}_fixed_point_weights",
            )
            acts = [_clone(a) for a in s.activations]
            yq = _run([wrapper, *acts], xq)
            out_fl = static_fl
            if out_fl is None:
                out_fl = _numeric.choose_length(
                    [(yq, ref, abits)], f"layer {name!r} output"
                )
            lo, hi = _numeric.code_range(abits)
            codes = _numeric.round_half_away(yq.astype(np.float64) * 2.0**out_fl)
            saturated = float(np.mean((codes < lo) | (codes > hi)))
            records.append(
                LayerLengths(
                    name=name,
                    weight_bits=wbits[name],
                    weight_fractional_length=wfl[name],
                    bias_fractional_length=cur + wfl[name],
                    input_fractional_length=cur,
                    output_fractional_length=out_fl,
                    saturated=saturated,
                )
            )
            logging.info(
                "fixed point %s: kernel %d bits, fl %d; output %d bits, fl %d "
                "(%.2f%% saturated)",
                name,
                wbits[name],
                wfl[name],
                abits,
                out_fl,
                100 * saturated,
            )
            out_q = FixedPointQuantize(abits, out_fl, name=f"{name}_fixed_point")
            sim_layers += [wrapper, *acts, out_q]
            xq = _numeric.quantize(yq, abits, out_fl)
            cur = out_fl
        elif s.kind == "average":
            layer = _clone(s.layer)
            requant = FixedPointQuantize(abits, cur, name=f"{s.layer.name}_fixed_point")
            sim_layers += [layer, requant]
            xq = _numeric.quantize(_run([layer], xq), abits, cur)
        else:
            layer = _clone(s.layer)
            sim_layers.append(layer)
            xq = _run([layer], xq)
    sim = keras.Sequential(sim_layers, name=f"{model.name}_fixed_point")
    result = FixedPointResult(
        model=sim,
        layers=records,
        input_fractional_length=in_fl,
        activation_bits=abits,
        mode=mode,
        float_model=model,
        calibration=x[:_CALIBRATION],
    )
    return result


# Samples used to run TFLite's converter (whose calibration is then overwritten) and to
# check the exported model against the simulation.
_CALIBRATION = 64
