"""Run a .tflite model on representative inputs and measure how far its outputs drift.

The drift of one output tensor is max|y - y_ref| / max|y_ref| over all samples
(quantized outputs are dequantized first); a model's drift is the largest over its
outputs.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from tfedge.errors import TfedgeError

# Representative data in its accepted forms: see tfedge/pack/_samples.py.
from tfedge.pack._samples import (
    generate_sample,
    make_samples,  # noqa: F401 (compress uses it)
)
from tfedge.tflite import schema, write

_EPS = 1e-12


def interpreter_class():
    """The stock TFLite interpreter: LiteRT's when installed, else TensorFlow's."""
    from tfedge._quiet import absorb_delegate_notice

    try:
        from ai_edge_litert.interpreter import Interpreter

        return absorb_delegate_notice(Interpreter, _one_op_model)
    except ImportError:
        pass
    try:
        import tensorflow as tf

        return absorb_delegate_notice(tf.lite.Interpreter, _one_op_model)
    except ImportError as e:
        raise TfedgeError(
            "No TFLite interpreter: install `ai-edge-litert` "
            "(pip install ai-edge-litert) or TensorFlow."
        ) from e


def _one_op_model() -> bytes:
    """y = x + x on one float: the smallest model the default delegate takes."""
    s = schema()
    model = s.ModelT()
    model.version = 3
    model.buffers = [s.BufferT(), s.BufferT(), s.BufferT()]
    tensors = []
    for i, name in enumerate((b"x", b"y")):
        t = s.TensorT()
        t.shape, t.type, t.buffer, t.name = [1], s.TensorType.FLOAT32, i + 1, name
        tensors.append(t)
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.ADD
    code.version = 1
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 0], [1]
    sg = s.SubGraphT()
    sg.tensors, sg.inputs, sg.outputs, sg.operators = tensors, [0], [1], [op]
    model.operatorCodes, model.subgraphs = [code], [sg]
    return write(model)


class _Entry:
    """One way into the model: the default subgraph, or one signature."""

    def __init__(self, interpreter, key: str | None):
        self.key = key
        self.interpreter = interpreter
        if key is None:
            interpreter.allocate_tensors()
            self.inputs = interpreter.get_input_details()
            self.outputs = interpreter.get_output_details()
            self.runner = None
        else:
            self.runner = interpreter.get_signature_runner(key)
            ins = self.runner.get_input_details()
            outs = self.runner.get_output_details()
            self.input_names = sorted(ins)
            self.output_names = sorted(outs)
            self.inputs = [dict(ins[n], name=n) for n in self.input_names]
            self.outputs = [dict(outs[n], name=n) for n in self.output_names]

    def run(self, sample: list[np.ndarray]) -> list[np.ndarray]:
        if self.runner is not None:
            result = self.runner(**dict(zip(self.input_names, sample, strict=True)))
            return [
                _as_float(result[n], d)
                for n, d in zip(self.output_names, self.outputs, strict=True)
            ]
        it = self.interpreter
        for detail, x in zip(self.inputs, sample, strict=True):
            if tuple(x.shape) != tuple(detail["shape"]):
                it.resize_tensor_input(detail["index"], list(x.shape))
                it.allocate_tensors()
                self.inputs = it.get_input_details()
                self.outputs = it.get_output_details()
            it.set_tensor(detail["index"], x)
        it.invoke()
        return [_as_float(it.get_tensor(d["index"]), d) for d in self.outputs]


class ModelRunner:
    """Runs a model on fixed input samples: through subgraph 0, or through every
    signature when the model has several (so weights of every subgraph are
    exercised)."""

    def __init__(self, model_bytes: bytes):
        self.model_bytes = bytes(model_bytes)
        interpreter = interpreter_class()(model_content=self.model_bytes)
        keys = sorted(interpreter.get_signature_list())
        if len(keys) > 1:
            self.entries = [_Entry(interpreter, k) for k in keys]
        else:
            self.entries = [_Entry(interpreter, None)]

    @property
    def inputs(self) -> list[dict]:
        return self.entries[0].inputs

    def run(
        self, samples: list[list[list[np.ndarray]]]
    ) -> list[list[list[np.ndarray]]]:
        """`samples[e][i]` is sample i of entry e; returns `outputs[e][i][j]`."""
        return [
            [entry.run(sample) for sample in entry_samples]
            for entry, entry_samples in zip(self.entries, samples, strict=True)
        ]


def _as_float(y: np.ndarray, detail: dict) -> np.ndarray:
    y = np.asarray(y)
    scale, zero = detail.get("quantization", (0.0, 0))
    if y.dtype.kind in "iu" and scale:
        return (y.astype(np.float64) - zero) * scale
    if y.dtype.kind in "biuf":
        return y.astype(np.float64)
    return y  # strings and the like are compared for equality only


def _outputs(reference, outputs):
    """(reference, got) per output of every entry: each a list over the samples."""
    for ref_entry, got_entry in zip(reference, outputs, strict=True):
        for j in range(len(ref_entry[0]) if ref_entry else 0):
            yield [r[j] for r in ref_entry], [o[j] for o in got_entry]


def _error(a: np.ndarray, b: np.ndarray) -> float:
    """max|a - b|: 0 where both hold the same value (infinities and NaNs included),
    NaN where only one of them is NaN."""
    if not a.size:
        return 0.0
    with np.errstate(invalid="ignore"):
        d = np.abs(a - b)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    return float(np.max(np.where(same, 0.0, d)))


def _scale(a: np.ndarray) -> float:
    """max|a| over its finite values (0 when it has none)."""
    finite = np.abs(a[np.isfinite(a)])
    return float(np.max(finite)) if finite.size else 0.0


def _per_sample(ref: list, got: list) -> tuple[np.ndarray, np.ndarray]:
    """A float output's (max|y - y_ref|, max|y_ref| over finite y_ref) on each
    sample."""
    pairs = list(zip(ref, got, strict=True))
    err = [_error(a, b) for a, b in pairs]
    scale = [_scale(a) for a, _ in pairs]
    return np.asarray(err), np.asarray(scale)


def drift(reference, outputs) -> float:
    """max over entries and outputs of max|y - y_ref| / max|y_ref| across all samples:
    inf when a non-float output differs, or a float output differs by NaN or
    infinity on any sample (values equal on both sides, NaN included, do not count).

    Both arguments are `ModelRunner.run` results: `[entry][sample][output]` arrays.
    """
    return drift_and_errors(reference, outputs)[0]


def drift_and_errors(
    reference, outputs
) -> tuple[float, list[tuple[np.ndarray, np.ndarray]]]:
    """`drift`, and what it is made of, per sample: for each float output of every
    entry, (each sample's max|y - y_ref|, each sample's max|y_ref| over its finite
    values). The drift of any set of these samples is, over the outputs, the largest
    error over the largest scale; non-float outputs (compared for equality) have no
    entry. One pass over the outputs for both.
    """
    worst, errors = 0.0, []
    for ref, got in _outputs(reference, outputs):
        if ref[0].dtype.kind != "f":
            same = all(np.array_equal(a, b) for a, b in zip(ref, got, strict=True))
            worst = max(worst, 0.0 if same else float("inf"))
            continue
        err, scale = _per_sample(ref, got)
        errors.append((err, scale))
        largest = float(np.max(err))  # NaN when any sample's error is
        if not np.isfinite(largest):
            worst = float("inf")
        else:
            worst = max(worst, largest / max(float(np.max(scale)), _EPS))
    return worst, errors


def tflite_metric(
    model_bytes: bytes, x: np.ndarray, y: np.ndarray, metric=None, batch: int = 1000
) -> float:
    """`metric(y, predictions)` (default top-1 accuracy) of a .tflite model run in the
    stock interpreter on `x` in batches; float data is quantized for an int8/uint8 input
    with the input's own parameters."""
    from tfedge._checks import top1_accuracy

    it = interpreter_class()(model_content=bytes(model_bytes))
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    scale, zero = inp["quantization"]
    preds = []
    for start in range(0, len(x), batch):
        xb = x[start : start + batch]
        if np.dtype(inp["dtype"]).kind in "iu" and scale:
            info = np.iinfo(inp["dtype"])
            xb = np.clip(np.round(xb / scale + zero), info.min, info.max)
        it.resize_tensor_input(inp["index"], [len(xb), *x.shape[1:]])
        it.allocate_tensors()
        it.set_tensor(inp["index"], xb.astype(inp["dtype"]))
        it.invoke()
        preds.append(np.array(it.get_tensor(out["index"])))
    return float((metric or top1_accuracy)(y, np.concatenate(preds)))


# ---------------------------------------------------------------------------------
# Inputs in the ranges the model takes, a held-out set, and the blindness check.

# Name of the TFLite Support metadata buffer (metadata_schema.fbs, ModelMetadata).
_SUPPORT_METADATA = "TFLITE_METADATA"
# TFLite Support's ProcessUnitOptions union: NormalizationOptions is member 1.
_NORMALIZATION_OPTIONS = 1
# An image model's raw input is 8-bit pixels: metadata normalisation (x - mean) / std
# maps [0, 255] to the range the model takes.
_PIXEL_RANGE = (0.0, 255.0)
# Outputs that move by less than this fraction of their own magnitude across all the
# samples carry no information about the weights (e.g. a wake-word score that stays at
# 0 on generated inputs): a drift check on them is blind.
BLIND_SPREAD = 1e-3


def _fb_table(buf, pos: int):
    from flatbuffers.table import Table

    return Table(buf, pos)


def _fb_offset(tab, field: int) -> int:
    return tab.Offset(4 + 2 * field)


def _fb_tables(tab, field: int) -> list:
    o = _fb_offset(tab, field)
    if not o:
        return []
    start, n = tab.Vector(o), tab.VectorLen(o)
    return [_fb_table(tab.Bytes, tab.Indirect(start + 4 * k)) for k in range(n)]


def _fb_sub(tab, field: int):
    o = _fb_offset(tab, field)
    return _fb_table(tab.Bytes, tab.Indirect(o + tab.Pos)) if o else None


def _fb_floats(tab, field: int) -> np.ndarray | None:
    from flatbuffers import number_types

    o = _fb_offset(tab, field)
    if not o:
        return None
    return np.asarray(tab.GetVectorAsNumpy(number_types.Float32Flags, o), np.float64)


def _support_input_ranges(model_bytes: bytes) -> list[tuple[float, float] | None]:
    """The (low, high) range of each input of subgraph 0 that TFLite Support metadata
    gives: its Stats min/max, else its NormalizationOptions applied to 8-bit pixels.
    Empty when the model has no such metadata (or it does not parse)."""
    import struct

    from tfedge.tflite import buffer_data, read, tensor_name

    model = read(model_bytes)
    meta = next(
        (m for m in model.metadata or [] if tensor_name(m) == _SUPPORT_METADATA), None
    )
    if meta is None:
        return []
    buf = bytearray(buffer_data(model, meta.buffer).tobytes())
    try:
        root = _fb_table(buf, int.from_bytes(buf[:4], "little"))
        subgraphs = _fb_tables(root, 3)  # ModelMetadata.subgraph_metadata
        if not subgraphs:
            return []
        ranges: list[tuple[float, float] | None] = []
        for tensor in _fb_tables(subgraphs[0], 2):  # input_tensor_metadata
            ranges.append(_tensor_range(tensor))
        return ranges
    except (IndexError, ValueError, struct.error):
        return []  # malformed metadata: fall back to the generic generator


def _tensor_range(tensor) -> tuple[float, float] | None:
    from flatbuffers import number_types

    stats = _fb_sub(tensor, 5)  # TensorMetadata.stats
    if stats is not None:
        high, low = _fb_floats(stats, 0), _fb_floats(stats, 1)  # Stats.max, Stats.min
        if high is not None and low is not None and high.size and low.size:
            lo, hi = float(np.min(low)), float(np.max(high))
            if np.isfinite(lo) and np.isfinite(hi) and lo < hi:
                return lo, hi
    for unit in _fb_tables(tensor, 4):  # TensorMetadata.process_units
        o = _fb_offset(unit, 0)
        kind = unit.Get(number_types.Uint8Flags, o + unit.Pos) if o else 0
        if kind != _NORMALIZATION_OPTIONS:
            continue
        o = _fb_offset(unit, 1)
        if not o:
            continue
        options = _fb_table(unit.Bytes, 0)
        unit.Union(options, o)
        mean, std = _fb_floats(options, 0), _fb_floats(options, 1)
        if mean is None or std is None or not mean.size or not std.size:
            continue
        if np.any(std == 0):
            continue
        ends = [(p - mean) / std for p in _PIXEL_RANGE]
        lo, hi = float(np.min(ends)), float(np.max(ends))
        if np.isfinite(lo) and np.isfinite(hi) and lo < hi:
            return lo, hi
    return None


def _generate_in(
    detail: dict, rng: np.random.Generator, value_range, i: int
) -> np.ndarray:
    """One generated input: float inputs uniform in their known range, else N(0, 1)
    and uniform in [-1, 1] on alternate samples; other dtypes as `_generate`."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind != "f":
        return generate_sample(detail, rng)
    shape = [int(s) if s > 0 else 1 for s in detail["shape"]]
    sig = detail.get("shape_signature")
    if sig is not None and len(sig) == len(shape):
        shape = [int(s) if s > 0 else 1 for s in sig]
    if value_range is not None:
        return rng.uniform(*value_range, shape).astype(dtype)
    if i % 2:
        return rng.uniform(-1.0, 1.0, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


class SampleSets(NamedTuple):
    """`make_sample_sets`' result: inputs as `make_samples` gives them."""

    search: list
    held_out: list | None
    where: str  # a sentence saying where the samples come from
    # Held-out samples kept back until the search asks for more (empty lists when
    # the data has no more; None when nothing is held out).
    spare: list | None = None


def make_sample_sets(
    runner: ModelRunner, data, num_samples: int, seed: int = 0, spare: int = 0
) -> SampleSets:
    """Search samples, held-out samples and up to `spare` more held-out samples.

    With `data`, its first 2 x `num_samples` samples alternate between the search and
    the held-out set, and the spare ones are those after them (held out is None when
    fewer than two samples are given). Without, inputs are generated in the ranges
    the model takes: an int8/uint8 input over its whole quantized range, a float input
    in the range its TFLite Support metadata gives (Stats, or the normalisation of
    8-bit pixels), else N(0, 1) and uniform in [-1, 1] on alternate samples; the
    held-out and the spare sets are drawn the same way from other seeds.
    """
    if data is not None:
        both = make_samples(runner, data, 2 * num_samples + spare, seed)
        first = [entry[: 2 * num_samples] for entry in both]
        search = [entry[0::2] for entry in first]
        held = [entry[1::2] for entry in first]
        if any(not h for h in held):
            return SampleSets(
                search, None, "representative data (too few samples to hold any out)"
            )
        return SampleSets(
            search,
            held,
            "representative data, alternate samples held out",
            [entry[2 * num_samples :] for entry in both],
        )
    ranges = _support_input_ranges(runner.model_bytes)

    def generated(s: int, count: int) -> list:
        rng = np.random.default_rng([s, 0x7F3D])
        return [
            [
                [
                    _generate_in(
                        d, rng, ranges[k] if e == 0 and k < len(ranges) else None, i
                    )
                    for k, d in enumerate(entry.inputs)
                ]
                for i in range(count)
            ]
            for e, entry in enumerate(runner.entries)
        ]

    where = (
        "generated in the input ranges of the model's metadata"
        if any(r is not None for r in ranges)
        else "generated (float inputs N(0, 1) and uniform in [-1, 1], integer inputs "
        "over their quantized range)"
    )
    return SampleSets(
        generated(seed, num_samples),
        generated(seed + 1, num_samples),
        where,
        generated(seed + 2, spare),
    )


def blind_outputs(reference) -> bool:
    """Whether no float output moves across the samples by more than BLIND_SPREAD of
    its magnitude (then no weight change can be judged by the drift). A single sample
    cannot show movement: not judged blind."""
    if all(len(entry) < 2 for entry in reference):
        return False
    for entry in reference:
        if len(entry) < 2:
            continue
        for j in range(len(entry[0])):
            ys = [s[j] for s in entry]
            if ys[0].dtype.kind != "f" or not ys[0].size:
                if any(not np.array_equal(ys[0], y) for y in ys[1:]):
                    return False
                continue
            scale = max(float(np.max(np.abs(y))) for y in ys)
            spread = max(float(np.max(np.abs(y - ys[0]))) for y in ys[1:])
            if scale > _EPS and spread > BLIND_SPREAD * scale:
                return False
    return True
