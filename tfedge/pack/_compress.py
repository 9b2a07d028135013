"""`compress`: the converter stage (Deep Compression stages 2 and 3 on a .tflite)."""

from __future__ import annotations

import heapq
import os
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from absl import logging

from tfedge._checks import check_tolerance
from tfedge.errors import PackError
from tfedge.pack import _encode, _lossy, _tflm, _verify
from tfedge.pack._names import name_rows
from tfedge.pack._report import Report, TensorReport
from tfedge.tflite import (
    TYPES,
    buffer_data,
    decode_ops,
    densify_sources,
    index_bytes,
    insert_decoders,
    packed_format_version,
    read,
    schema,
    tensor_name,
    write,
)

# Default output tolerance: the largest output may move by 2% of its own range. Tight
# enough that class scores keep their order on the representative inputs in practice,
# loose enough that 4-5 bit sharing of dense layers passes, as in Deep Compression.
DEFAULT_TOLERANCE = 0.02
# A packed tensor costs a payload tensor, a decode operator and its name in the
# flatbuffer (measured: ~100 bytes plus the name); a tensor is packed only if it saves
# more than that.
GRAPH_OVERHEAD_BYTES = 112
# Each tensor's drift sensitivity is measured on this many of the search samples (one
# model run per sample and tensor: the search's main cost on large models).
SENSITIVITY_SAMPLES = 4
# The search verifies at most this many combinations on all its samples (each one run
# of the model per search and held-out sample) before it settles on the best that
# passed.
MAX_VERIFICATIONS = 8
# The first combination is chosen for this fraction of the tolerance by the predicted
# drift: the prediction (per-tensor drifts added in quadrature) is rough, and a first
# pass saves a verification.
_FIRST_TRY_FRACTION = 0.8
# Drift is a maximum over inputs, so it grows on inputs the search never saw: a fresh
# set can hold a larger error than any sample did, and a smaller largest output (the
# drift's denominator). The search holds each combination to the drift it estimates for
# a set of FRESH_SAMPLES fresh inputs drawn like its samples (`_fresh_drift`), from the
# per-sample errors and output scales measured on the search and held-out samples
# together. Per output: the largest error times (FRESH_SAMPLES / (n (-ln q)))^gamma,
# gamma the tail index of the largest TAIL_FRACTION of the n errors (Hill's estimator;
# the error that FRESH_SAMPLES fresh inputs stay under with probability q =
# FRESH_CONFIDENCE if the tail is Pareto), over the largest output scale that
# FRESH_SAMPLES fresh inputs reach with probability q (a quantile of the per-sample
# scales). Tightly concentrated errors get a reserve of a few percent; a maximum that
# comes from one outlier sample, or a scale that one sample dominates, a large one (and
# the search backs off). The reserve applied, judged / measured drift, is in the
# report's note.
#
# Measured with scripts/fresh_drift.py on 8 corpus models (tests/corpus; float32 and
# float16) at tolerances 0.02 and 0.01, each combination the search verified run on 8
# fresh sets of 8 inputs drawn as the corpus test draws its own. Held to the drift they
# measured (no reserve), fresh sets drifted up to 1.66 times as much on
# hand_landmark_full, 1.8 on star_trek, 2.3 on selfie_segmentation_landscape (its
# largest output comes from one sample in 32) and 29 on pyopen hey_jarvis (a sigmoid
# score that one fresh input in 64 sat on the edge of); the fixed 1 / 0.6 this replaces
# covered none of the last three. 2.8% of those 360 fresh sets (45 combinations)
# passed the estimate, never the corpus test's own set; the estimate was 1.2-1.5 times
# the measured drift on the models with concentrated errors (median), 12 on hey_jarvis
# and 67,000 on selfie_segmentation_landscape (outputs near zero on all but a few
# random inputs). No fixed floor: the data needed none beyond the estimate.
#
# A promise about sets of at least this many fresh inputs: the drift of fewer has a
# smaller denominator (of one input, unbounded as its output nears zero). The corpus
# test checks sets of 8 (tests/corpus/test_corpus.py HELD_OUT_STEPS).
FRESH_SAMPLES = 8
# The probability, per output, that the error of FRESH_SAMPLES fresh inputs stays
# within the estimate, and that their largest output reaches the scale it divides by.
# Measured as above (--reestimate): at 0.9 6.1% of the fresh sets passed the estimate
# (the test's own set on 3 combinations, by up to 5%), at 0.95 2.8% (none).
FRESH_CONFIDENCE = 0.95
# The tail Hill's estimator is fitted to: this fraction of the samples, the largest
# errors (8 of 16 + 16). Measured as above (--reestimate): 0.125 let 5.3% of the fresh
# sets pass, 0.375 1.4% at a larger reserve on hand_landmark_full (median 2.2 against
# 1.5).
TAIL_FRACTION = 0.25
# Fewer samples (search and held-out together) than this fit no tail (of 8, Hill's
# estimate already rests on the 2 largest errors): the search then aims at
# UNHELD_MARGIN of the tolerance.
MIN_TAIL_SAMPLES = 8
# Without held-out samples (representative data of a single sample), or too few for a
# tail, the search aims at this fraction of the tolerance (fresh inputs drifted up to
# 1.7 times what the search measured on its own samples).
UNHELD_MARGIN = 0.5
# The estimate's reserve is the price of few samples: of n errors, the largest is
# extrapolated by (FRESH_SAMPLES / (n (-ln q)))^gamma. When the search turned down a
# combination whose measured drift was within the tolerance by a reserve larger than
# GROW_WHEN_RESERVE, it searches again with GROW_HELD_OUT x num_samples more held-out
# samples (drawn like the others, or the representative data after the first
# 2 x num_samples). Measured with scripts/bench_corpus.py at the drift of
# ai-edge-quantizer's int8 recipe: star_trek's 32 per-sample errors at drift 0.0002
# held 2.2-4.7x in reserve and its file shrank 1.22x (the no-reserve file, 4.26x,
# stayed within on 8 fresh sets); with the 48 spare samples, 4.15x. More samples for
# every model cost bytes where the reserve was small (the largest error over more
# inputs is larger: 64 + 64 samples took embedding_model from 3.59x to 2.89x).
GROW_WHEN_RESERVE = 2.0
GROW_HELD_OUT = 3
_INITS = ("linear", "density", "random")
_TARGETS = ("tfedge", "tflm")
# `method`: the candidates of each lossy tensor. "kmeans": k-means codebooks at each
# bit width (per tensor and per channel); "ecsq": those and the ECSQ rate ladder
# (`_lossy.ECSQ_ERRORS`), the search choosing per tensor.
METHODS = ("kmeans", "ecsq")
DEFAULT_METHOD = "kmeans"


class Packed:
    """A packed .tflite model: `bytes(packed)`, `packed.save(path)`, `packed.report`."""

    def __init__(self, data: bytes, report: Report):
        self._data = bytes(data)
        self.report = report

    def __bytes__(self) -> bytes:
        return self._data

    def __len__(self) -> int:
        return len(self._data)

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "wb") as f:
            f.write(self._data)

    def expand(self) -> bytes:
        from tfedge.runtime import expand

        return expand(self._data)

    def __repr__(self) -> str:
        r = self.report
        return (
            f"<tfedge.Packed {len(self)} bytes, {r.ratio:.2f}x smaller, "
            f"{'lossless' if r.lossless else _drift_text(r.drift)}>"
        )


def _drift_text(drift: float | None) -> str:
    return "drift not measured" if drift is None else f"drift {drift:.3g}"


@dataclass
class _Candidate:
    """One weight buffer tfedge may pack, its options and the chosen one."""

    buffer: int
    ttype: int
    values: np.ndarray  # 1-D elements
    row: TensorReport
    init: str = "linear"
    seed: int = 0
    _lossless: _encode.Encoded | None = None
    # Lossy options that write fewer bytes than `base_bytes`, smallest last.
    options: list[_lossy.Option] = field(default_factory=list)
    option: _lossy.Option | None = None  # the choice; None = lossless
    # Measured (weight error, drift) points per option kind, ascending weight error
    # (per-tensor and per-channel codebooks spread their error over the channels
    # differently).
    sensitivity: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    # A DENSIFY-sparse tensor's stored values (its index is in the flatbuffer): packed
    # as its dense tensor, losslessly only.
    densify: np.ndarray | None = None

    @property
    def lossless(self) -> _encode.Encoded:
        if self._lossless is None:
            self._lossless = _encode.encode_lossless(
                self.ttype, self.values, self.row.shape
            )
        return self._lossless

    @property
    def overhead(self) -> int:
        return GRAPH_OVERHEAD_BYTES + len(self.row.name)

    @property
    def base_bytes(self) -> int:
        """Bytes the tensor takes when exact: raw, or its lossless payload when that
        gains."""
        return min(self.row.original_bytes, len(self.lossless.payload) + self.overhead)

    def cost(self, option: _lossy.Option | None) -> int:
        if option is None:
            return self.base_bytes
        return option.payload_bytes + self.overhead

    @property
    def bits(self) -> int | None:
        return None if self.option is None else self.option.bits

    @property
    def choice(self) -> _encode.Encoded:
        return self.lossless if self.option is None else self.option.encoded()

    @property
    def decoded(self) -> np.ndarray:
        """The bytes the written tensor decodes to."""
        return self.lossless.decoded if self.option is None else self.option.decoded

    def drop(self, reason: str) -> None:
        """Leave this buffer raw: the written model holds its original values."""
        self.option = None
        self.row.reason = self.row.reason or reason

    def predicted(self, option: _lossy.Option | None) -> float:
        """The option's drift, interpolated linearly in weight error between the
        measured points of its kind (and zero drift at zero error)."""
        if option is None:
            return 0.0
        points = self.sensitivity.get(option.kind)
        if not points:
            return 0.0
        w = [0.0] + [p[0] for p in points]
        d = [0.0] + [p[1] for p in points]
        if option.weight_error > w[-1]:
            return d[-1] * option.weight_error / max(w[-1], 1e-12)
        return float(np.interp(option.weight_error, w, d))


def check_options(
    *,
    lossless: bool,
    bits: int | None,
    tolerance: float | str,
    init: str,
    num_samples: int,
    target: str,
    method: str = DEFAULT_METHOD,
) -> tuple[float, int]:
    """`compress`'s options checked: (the tolerance as a fraction, the largest
    `bits` the target takes). `tfedge.compress` calls it before converting a model,
    so that a wrong option fails before a slow conversion."""
    tolerance = check_tolerance(tolerance, lossless=lossless)
    if target not in _TARGETS:
        raise ValueError(
            f"Expected `target` in {_TARGETS}. Received: target={target!r}"
        )
    max_bits = _tflm.MAX_BITS if target == "tflm" else 8
    if bits is not None and not (isinstance(bits, int) and 1 <= bits <= max_bits):
        raise ValueError(
            f"Expected `bits` in [1, {max_bits}] or None for target={target!r}. "
            f"Received: bits={bits}"
        )
    if init not in _INITS:
        raise ValueError(f"Expected `init` in {_INITS}. Received: init={init!r}")
    if method not in METHODS:
        raise ValueError(f"Expected `method` in {METHODS}. Received: method={method!r}")
    if method == "ecsq" and (bits is not None or target == "tflm"):
        raise ValueError(
            "Expected `method='ecsq'` with bits=None and target='tfedge': ECSQ "
            "codebooks have as many entries as their rate gives and need the entropy "
            f"coder. Received: bits={bits!r}, target={target!r}. Pass "
            "method='kmeans' for fixed bits or TFLM tables"
        )
    if num_samples < 1:
        raise ValueError(
            f"Expected `num_samples` >= 1. Received: num_samples={num_samples}"
        )
    return tolerance, max_bits


def plain_tflite(data: bytes) -> tuple[bytes, bool]:
    """(the .tflite `data` with any tfedge packing expanded, whether it was packed)."""
    data, _, was_packed = _read_plain(data)
    return data, was_packed


def _read_plain(data: bytes):
    """(plain .tflite bytes, their model, whether `data` was packed by tfedge)."""
    plain = read(data)
    if packed_format_version(plain) is None and not any(
        True for _ in decode_ops(plain)
    ):
        return data, plain, False
    from tfedge.runtime import expand

    data = expand(data)
    return data, read(data), True


def compress_tflite(
    data: bytes,
    *,
    keras_model=None,
    notes: list[str] | None = None,
    clock: Stages | None = None,
    lossless: bool = False,
    bits: int | None = None,
    tolerance: float | str = DEFAULT_TOLERANCE,
    representative_data=None,
    num_samples: int = 16,
    init: str = "linear",
    seed: int = 0,
    min_bytes: int = 256,
    target: str = "tfedge",
    method: str = DEFAULT_METHOD,
    progress: bool | None = None,
) -> Packed:
    """`tfedge.compress` (documented there) on .tflite bytes: `tfedge.convert` turns
    what the user hands `tfedge.compress` into these bytes and calls this.

    `keras_model`, the Keras model converted (None for a .tflite), names the report's
    rows by layer; `notes` are the conversion's notes, `clock` the stage timer started
    before it.
    """
    tolerance, max_bits = check_options(
        lossless=lossless,
        bits=bits,
        tolerance=tolerance,
        init=init,
        num_samples=num_samples,
        target=target,
        method=method,
    )
    clock = clock or Stages()
    notes = [] if notes is None else notes
    original_size = len(data)
    data, plain, was_packed = _read_plain(data)
    if was_packed:
        notes.append("input was already packed by tfedge: expanded, then packed again")
    clock.lap("reading")

    # TFLM has no densify decoder: its DENSIFY tensors stay as they are.
    candidates, rows = weight_candidates(
        plain, min_bytes, init, seed, densify=target == "tfedge"
    )
    name_rows(plain, rows, keras_model)
    for cand in _progress(candidates, "encoding", progress):
        cand.lossless  # noqa: B018 - encode now, inside the progress bar
        if not lossless and cand.ttype in _encode.LOSSY_TYPES and cand.densify is None:
            _lossy_options(cand, bits, max_bits, method)
    clock.lap("encoding")

    check = None
    backed_off: list[str] = []
    if any(c.options for c in candidates):
        check = _DriftCheck.create(
            data, candidates, representative_data, num_samples, seed, notes
        )
        clock.lap("samples")
    if check is not None:
        _measure_sensitivity(
            check, candidates, tolerance, progress, finer=bits is None and max_bits == 8
        )
        clock.lap("sensitivity")
        _search_growing(check, candidates, tolerance, bits, backed_off, notes)
        clock.lap("search")

    job = _Job(
        data,
        original_size,
        plain,
        candidates,
        rows,
        lossless,
        tolerance,
        check,
        backed_off,
        notes,
        clock,
    )
    if target == "tflm":
        return _write_tflm(job, num_samples, seed)
    return _write_tfedge(job)


class Stages:
    """Wall and CPU seconds of each stage of one compress call."""

    def __init__(self):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._t, self._c = time.perf_counter(), time.process_time()

    def lap(self, stage: str) -> None:
        t, c = time.perf_counter(), time.process_time()
        self.wall[stage] = self.wall.get(stage, 0.0) + t - self._t
        self.cpu[stage] = self.cpu.get(stage, 0.0) + c - self._c
        self._t, self._c = t, c


@dataclass
class _Job:
    """One compress call's state once the codings are chosen and verified."""

    data: bytes  # the plain .tflite
    original_size: int  # bytes the user handed in
    plain: object  # `data` parsed
    candidates: list[_Candidate]
    rows: list[TensorReport]
    lossless: bool
    tolerance: float
    check: _DriftCheck | None
    backed_off: list[str]
    notes: list[str]
    clock: Stages

    def report(
        self, packed_bytes: int, packed: set[int], written=None, **extra
    ) -> Report:
        """The report; `written` is the model whose outputs the packed file gives, for
        the final drift measurement."""
        drift = held_out = search = None
        if self.check is not None and written is not None:
            drift, held_out = self.check.final(written, self.tolerance)
            search = self.check.search_drift
            self.clock.lap("final check")
        return Report(
            original_bytes=self.original_size,
            packed_bytes=packed_bytes,
            lossless=self.lossless
            or all(c.bits is None for c in self.candidates if c.buffer in packed),
            tolerance=None if self.lossless else self.tolerance,
            drift=drift,
            tensors=self.rows,
            backed_off=self.backed_off,
            notes=self.notes,
            held_out_drift=held_out,
            search_drift=search,
            stage_seconds=dict(self.clock.wall),
            stage_cpu_seconds=dict(self.clock.cpu),
            **extra,
        )

    def unchanged(self, note: str) -> Packed:
        self.notes.append(note)
        return Packed(self.data, self.report(len(self.data), set()))


def _write_tfedge(job: _Job) -> Packed:
    """TFEDGE_DECODE payloads (docs/FORMAT.md) for every candidate that gains. Lossy
    options gain by construction; only exact tensors are left raw here, which does not
    change any value the search measured."""
    payloads = {}
    for cand in job.candidates:
        enc = cand.choice
        if len(enc.payload) + cand.overhead >= cand.row.original_bytes:
            if cand.option is not None:
                raise PackError(
                    f"tensor {cand.row.name!r}: the chosen lossy option does not gain "
                    "(a tfedge bug; please report it)"
                )
            cand.drop(
                f"no gain: best payload {len(enc.payload)} bytes plus graph overhead "
                f"is not smaller than {cand.row.original_bytes} bytes"
            )
            continue
        payloads[cand.buffer] = enc.payload
        _fill_row(cand.row, enc)
        cand.row.quantizer = "" if cand.option is None else cand.option.label
    job.clock.lap("writing")
    if not payloads:
        return job.unchanged(
            "nothing to improve: the model is written through unchanged"
        )

    from tfedge._version import __version__

    packed_model = read(job.data)
    version = insert_decoders(packed_model, payloads, producer=f"tfedge {__version__}")
    out = write(packed_model)
    if len(out) >= len(job.data):
        # The per-tensor overhead estimate can fall short (a buffer shared by several
        # subgraphs gets a decoder in each): the file must never grow.
        for cand in job.candidates:
            if cand.buffer in payloads:
                cand.drop(
                    f"no gain: the packed file ({len(out)} bytes) is not smaller than "
                    f"the original ({len(job.data)} bytes)"
                )
                cand.row.encoding, cand.row.packed_bytes = "raw", 0
        return job.unchanged(
            "nothing to improve: the model is written through unchanged"
        )
    expanded = _self_check(out, job.candidates, payloads)
    job.clock.lap("writing")
    return Packed(
        out, job.report(len(out), set(payloads), expanded, format_version=version)
    )


def weight_candidates(
    model, min_bytes: int, init: str, seed: int, *, densify: bool = False
) -> tuple[list[_Candidate], list[TensorReport]]:
    """One row per weight buffer; a candidate for each buffer tfedge may pack
    (`densify`: DENSIFY-sparse tensors too, as their dense tensors, exact only)."""
    users: dict[int, list[tuple[int, int]]] = {}
    produced: set[tuple[int, int]] = set()
    for si, sg in enumerate(model.subgraphs):
        for ti, t in enumerate(sg.tensors or []):
            if t.buffer > 0 and buffer_data(model, t.buffer).size:
                users.setdefault(t.buffer, []).append((si, ti))
        for op in sg.operators or []:
            for o in np.asarray(op.outputs if op.outputs is not None else [], np.int64):
                produced.add((si, int(o)))
        for i in np.asarray(sg.inputs if sg.inputs is not None else [], np.int64):
            produced.add((si, int(i)))
    densify = densify_sources(model) if densify else {}
    rows, cands = [], []
    for b_index in sorted(users):
        refs = users[b_index]
        si, ti = refs[0]
        t = model.subgraphs[si].tensors[ti]
        raw = buffer_data(model, b_index)
        info = TYPES.get(t.type)
        row = TensorReport(
            subgraph=si,
            tensor=ti,
            name=tensor_name(t),
            shape=[int(d) for d in np.asarray(t.shape if t.shape is not None else [])],
            dtype=info.name if info else f"type{t.type}",
            original_bytes=int(raw.size),
        )
        rows.append(row)
        if t.sparsity is not None and b_index in densify:
            # A DENSIFY-sparse tensor: packed as its dense tensor, exactly, in place
            # of its values and index (tfedge/tflite/_densify.py).
            dense, why = densify[b_index]
            if dense is None or t.type not in _encode.LOSSLESS_TYPES:
                why = why or f"{row.dtype} tensors are carried through"
                row.reason = f"already sparse (DENSIFY), carried through: {why}"
                continue
            row.original_bytes += index_bytes(t)
            values = _encode.element_array(t.type, dense)
            cands.append(_Candidate(b_index, t.type, values, row, init=init, seed=seed))
            cands[-1].densify = raw
            continue
        reason = _skip_reason(model, refs, t, raw, info, produced, min_bytes)
        if reason:
            row.reason = reason
            continue
        values = _encode.element_array(t.type, raw)
        cands.append(_Candidate(b_index, t.type, values, row, init=init, seed=seed))
    return cands, rows


def _skip_reason(model, refs, t, raw, info, produced, min_bytes) -> str:
    if t.type not in _encode.LOSSLESS_TYPES:
        return f"{info.name if info else t.type} tensors are carried through unchanged"
    for si, ti in refs:
        u = model.subgraphs[si].tensors[ti]
        if u.type != t.type:
            return "buffer shared by tensors of different types: carried through"
        if u.sparsity is not None:
            return "already sparse (DENSIFY): carried through unchanged"
        if u.isVariable:
            return "variable tensor: carried through"
        if (si, ti) in produced:
            return "written by an operator or fed as an input: not a constant"
    n = int(np.prod(np.asarray(t.shape if t.shape is not None else [], np.int64)))
    if n * info.itemsize != raw.size:
        return (
            f"buffer holds {raw.size} bytes but shape {list(t.shape)} "
            f"needs {n * info.itemsize}"
        )
    if raw.size < min_bytes:
        return f"smaller than min_bytes={min_bytes}"
    return ""


def _lossy_options(
    cand: _Candidate, bits: int | None, max_bits: int, method: str = DEFAULT_METHOD
) -> None:
    """The lossy options that write fewer bytes than the exact tensor: the explicit
    `bits` (for every tensor), or every bit width (per tensor, and per channel) whose
    own weight error is within `_lossy.MAX_WEIGHT_ERROR`, and with method="ecsq" each
    point of the ECSQ rate ladder within it (per-tensor codebooks, compared with the
    k-means ones on bytes and weight error); then biases (fewer than two dimensions
    over 1) and tensors under `_lossy.LOSSY_MIN_ELEMENTS` elements stay exact."""
    if not np.all(np.isfinite(cand.values)):
        cand.row.reason = "non-finite weights: packed losslessly"
        return
    if bits is None and len([d for d in cand.row.shape if d > 1]) < 2:
        cand.row.reason = "bias or vector: kept exact"
        return
    if bits is None and cand.values.size < _lossy.LOSSY_MIN_ELEMENTS:
        cand.row.reason = f"fewer than {_lossy.LOSSY_MIN_ELEMENTS} elements: kept exact"
        return
    base = cand.base_bytes

    def shared(b: int) -> _lossy.Option:
        s = _encode.share(cand.values, b, init=cand.init, seed=cand.seed)
        return _lossy.shared_option(cand.ttype, cand.values, s)

    options: list[_lossy.Option] = []
    if bits is not None:
        options.append(shared(bits))
    else:
        # Weight error grows as bits fall: stop at the first width past the bound.
        for b in range(max_bits, 0, -1):
            opt = shared(b)
            if opt.weight_error > _lossy.MAX_WEIGHT_ERROR:
                break
            options.append(opt)
        layout = _lossy.channel_layout(cand.row.shape, cand.values.size)
        if layout is not None and max_bits == 8:
            for b in range(_lossy.CHANNEL_MAX_BITS, 0, -1):
                opt = _lossy.channel_option(cand.ttype, cand.values, b, *layout)
                if opt is None:
                    continue
                if opt.weight_error > _lossy.MAX_WEIGHT_ERROR:
                    break
                options.append(opt)
        if method == "ecsq" and max_bits == 8:
            options += _lossy.ecsq_options(cand.ttype, cand.values, options)
    options = [o for o in options if cand.cost(o) < base]
    # Keep each kind's Pareto front (fewer bytes must cost more weight error); kinds
    # are compared later by their measured drift.
    front: list[_lossy.Option] = []
    for kind in dict.fromkeys(("tensor", "channel", _lossy.ECSQ_KIND)):
        mine = sorted(
            (o for o in options if o.kind == kind),
            key=lambda o: (-o.payload_bytes, o.weight_error),
        )
        kept: list[_lossy.Option] = []
        for o in mine:
            while kept and kept[-1].weight_error >= o.weight_error:
                kept.pop()
            kept.append(o)
        front += kept
    front.sort(key=lambda o: o.weight_error)
    cand.options = front
    if not front and bits is None:
        cand.row.reason = cand.row.reason or (
            "no lossy coding within the weight error bound "
            f"{_lossy.MAX_WEIGHT_ERROR:g} is smaller than the exact one"
        )


class _Patcher:
    """The plain model's bytes with some weight buffers replaced in place (no
    flatbuffer rebuild: each buffer's bytes are found once)."""

    def __init__(self, data: bytes, candidates: list[_Candidate]):
        self.data = bytes(data)
        self.where: dict[int, int] = {}
        try:
            m = schema().Model.GetRootAs(self.data, 0)
            for c in candidates:
                if c.densify is not None:  # never replaced: exact only
                    continue
                b = m.Buffers(c.buffer)
                o = b._tab.Offset(4)
                start = b._tab.Vector(o) if o else int(b.Offset())
                raw = np.frombuffer(self.data, np.uint8, c.values.nbytes, start)
                if np.array_equal(raw, c.values.view(np.uint8)):
                    self.where[c.buffer] = start
        except (IndexError, ValueError, AttributeError, TypeError):
            self.where = {}

    def bytes_with(self, replaced: dict[int, np.ndarray]) -> bytes:
        if any(b not in self.where for b in replaced):
            model = read(self.data)
            for b, v in replaced.items():
                model.buffers[b].data = v
            return write(model)
        out = bytearray(self.data)
        for b, v in replaced.items():
            start = self.where[b]
            out[start : start + v.size] = v.tobytes()
        return bytes(out)


class _DriftCheck:
    """The reference model's outputs on the search and held-out samples, and the drift
    of other models on them."""

    def __init__(self, data, candidates, search, held_out, where, spare=None):
        self.patcher = _Patcher(data, candidates)
        self.search, self.held_out, self.where = search, held_out, where
        self.spare = spare if held_out is not None and spare and any(spare) else None
        self.runner = _verify.ModelRunner(data)
        self.reference = self.runner.run(search)
        self.held_reference = (
            self.runner.run(held_out) if held_out is not None else None
        )
        k = min(SENSITIVITY_SAMPLES, len(search[0]) if search else 0)
        self.probe = [entry[:k] for entry in search]
        self.probe_reference = [entry[:k] for entry in self.reference]
        self.search_drift: float | None = None
        self.held_out_drift: float | None = None
        self.runs = 0

    @classmethod
    def create(cls, data, candidates, representative_data, num_samples, seed, notes):
        """None (and every tensor left exact) when the model cannot run or its
        outputs do not move across the samples (a blind check)."""

        def exact(reason: str, msg: str) -> None:
            for c in candidates:
                if c.options:
                    c.options = []
                    c.row.reason = reason
            notes.append(msg)
            warnings.warn(f"tfedge.compress: {msg}", stacklevel=4)

        def cannot_run(e: Exception) -> None:
            exact(
                "lossy coding could not be verified: packed losslessly",
                f"the model does not run in the stock interpreter "
                f"({str(e).splitlines()[0]}); lossy coding cannot be verified, so "
                "every tensor was packed losslessly",
            )

        try:
            runner = _verify.ModelRunner(data)
        except (RuntimeError, ValueError) as e:
            return cannot_run(e)
        # Bad representative data is the caller's error: raised, not caught.
        sets = _verify.make_sample_sets(
            runner, representative_data, num_samples, seed, GROW_HELD_OUT * num_samples
        )
        try:
            check = cls(data, candidates, *sets)
        except (RuntimeError, ValueError) as e:
            return cannot_run(e)
        if _verify.blind_outputs(check.reference):
            exact(
                "outputs do not move on the samples: packed losslessly",
                "the model's outputs do not change across the "
                f"{max(len(e) for e in check.search)} samples "
                f"({check.where}), so output drift cannot judge lossy coding; "
                "every tensor was packed losslessly. Pass `representative_data` "
                "(real inputs) to pack lossily",
            )
            return None
        notes.append(f"drift measured on {check.where}")
        return check

    def grow(self) -> int:
        """Moves the spare samples into the held-out set; how many per entry (the
        most of any)."""
        spare, self.spare = self.spare, None
        if spare is None:
            return 0
        more = self.runner.run(spare)
        self.held_out = [h + s for h, s in zip(self.held_out, spare, strict=True)]
        self.held_reference = [
            h + m for h, m in zip(self.held_reference, more, strict=True)
        ]
        return max(len(s) for s in spare)

    def _outputs(self, replaced: dict[int, np.ndarray], samples):
        self.runs += 1
        runner = _verify.ModelRunner(self.patcher.bytes_with(replaced))
        return runner.run(samples)

    def probe_drift(self, cand: _Candidate, option: _lossy.Option) -> float:
        got = self._outputs({cand.buffer: option.decoded}, self.probe)
        return _verify.drift(self.probe_reference, got)

    def measure(self, candidates, tolerance: float) -> _Measured:
        """The drifts of the state the candidates are in; the held-out set is run
        only when the search drift is within the tolerance."""
        replaced = {c.buffer: c.option.decoded for c in candidates if c.option}
        return self._drifts(lambda samples: self._outputs(replaced, samples), tolerance)

    def _drifts(self, run, tolerance: float = float("inf")) -> _Measured:
        search, errors = _verify.drift_and_errors(self.reference, run(self.search))
        if self.held_out is None or search > tolerance:
            return _Measured(search, None, [])
        held, held_errors = _verify.drift_and_errors(
            self.held_reference, run(self.held_out)
        )
        both = [
            (np.concatenate([e, he]), np.concatenate([s, hs]))
            for (e, s), (he, hs) in zip(errors, held_errors, strict=True)
        ]
        return _Measured(search, held, both)

    def final(self, model_bytes: bytes, tolerance: float):
        """(search drift, held-out drift) of the model as written; past the tolerance,
        or other than what the search measured, is a failure."""
        runner = _verify.ModelRunner(model_bytes)
        measured = self._drifts(runner.run)
        drift, held = measured.search, measured.held
        for name, value, searched in (
            ("drifts", drift, self.search_drift),
            ("drifts on held-out samples", held, self.held_out_drift),
        ):
            if value is not None and value > tolerance:
                raise PackError(
                    f"the written model {name} {value:.4g} from the original, past "
                    f"the tolerance {tolerance:g} (a tfedge bug; please report it)"
                )
            if value is not None and searched is not None and value != searched:
                raise PackError(
                    f"the written model {name} {value:.4g}, the search measured "
                    f"{searched:.4g} for the same values (a tfedge bug; please report "
                    "it)"
                )
        return drift, held


def _measure_sensitivity(
    check: _DriftCheck, candidates, tolerance: float, progress, *, finer: bool = False
) -> None:
    """Each lossy tensor's drift, measured per option kind with that tensor alone: at
    its finest option of the kind, then at the coarsest one whose drift, extrapolated
    in proportion to weight error from the finest, is within the tolerance (the
    prediction interpolates between the points by weight error). Drift is far from
    proportional to weight error on real models (a constant-Q filter bank of
    basic-pitch drifts 0.15 at 8 bits and 0.29 at 3, 36 times the error): one point at
    the coarsest option predicted the finest ones 20 times too low, and the search spent
    its verifications finding out. A tensor whose finest option already drifts past
    the tolerance costs one run per kind. With `finer`, a tensor whose every finest
    option drifts past `_lossy.GRID_WHEN_DRIFT_FRACTION` of the tolerance gets the
    uniform grid options (`_lossy.grid_options`), measured the same way."""
    lossy = [c for c in candidates if c.options]
    for c in _progress(lossy, "sensitivity", progress):
        _measure_kinds(check, c, c.options, tolerance)
        finest = min(points[0][1] for points in c.sensitivity.values())
        if finer and finest > _lossy.GRID_WHEN_DRIFT_FRACTION * tolerance:
            grid = _lossy.grid_options(
                c.ttype, c.values, c.row.shape, c.base_bytes - c.overhead
            )
            if grid:
                c.options = sorted(c.options + grid, key=lambda o: o.weight_error)
                _measure_kinds(check, c, grid, tolerance)


def _measure_kinds(check: _DriftCheck, c, options, tolerance: float) -> None:
    """`_measure_sensitivity`'s points of each kind of `options` (ascending weight
    error)."""
    by_kind: dict[str, list[_lossy.Option]] = {}
    for o in options:
        by_kind.setdefault(o.kind, []).append(o)
    for kind, opts in by_kind.items():
        finest = opts[0]
        points = [(finest.weight_error, check.probe_drift(c, finest))]
        c.sensitivity[kind] = points
        within = [o for o in opts[1:] if c.predicted(o) <= tolerance]
        if within:
            o = within[-1]
            points.append((o.weight_error, check.probe_drift(c, o)))


def _steps(candidates) -> list[tuple[_Candidate, _lossy.Option, float]]:
    """The greedy order: each step moves one tensor to a cheaper option, the step
    saving the most bytes per unit of predicted squared drift first (each tensor's
    steps along the lower convex hull of its (squared drift, bytes) points)."""
    heap = []
    hulls: dict[int, list] = {}
    for c in candidates:
        if not c.options:
            continue
        points = sorted(
            ((c.predicted(o) ** 2, c.cost(o), o) for o in c.options),
            key=lambda p: (p[0], p[1]),
        )
        hull = [(0.0, c.cost(None), None)]
        for p in points:
            if p[1] >= hull[-1][1]:
                continue
            while len(hull) >= 2 and _slope(hull[-2], hull[-1]) <= _slope(hull[-2], p):
                hull.pop()
            hull.append(p)
        hulls[c.buffer] = hull
        if len(hull) > 1:
            heapq.heappush(heap, (-_slope(hull[0], hull[1]), c.buffer, 1, c))
    order = []
    while heap:
        _, b, i, c = heapq.heappop(heap)
        hull = hulls[b]
        order.append((c, hull[i][2], hull[i][0] - hull[i - 1][0]))
        if i + 1 < len(hull):
            heapq.heappush(heap, (-_slope(hull[i], hull[i + 1]), b, i + 1, c))
    return order


def _slope(a, b) -> float:
    """Bytes saved per unit of added squared drift from point a to point b."""
    dd = b[0] - a[0]
    saved = a[1] - b[1]
    return saved / dd if dd > 0 else float("inf") * (1 if saved > 0 else 0)


def _apply(candidates, steps, k: int) -> None:
    for c in candidates:
        c.option = None
    for c, option, _ in steps[:k]:
        c.option = option


@dataclass(frozen=True)
class _Measured:
    """One combination's drift on the search samples and on the held-out ones (None
    when they were not run), and per float output the per-sample errors and output
    scales on both sets together (`_verify.drift_and_errors`; empty without held-out
    drift)."""

    search: float
    held: float | None
    errors: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)


def _fresh_drift(errors: list[tuple[np.ndarray, np.ndarray]]) -> float | None:
    """The drift of FRESH_SAMPLES fresh inputs that is exceeded with probability
    about 1 - FRESH_CONFIDENCE per output, estimated from per-output (per-sample
    error, per-sample output scale) arrays; None with fewer than MIN_TAIL_SAMPLES
    samples (no tail to fit). See the comment above FRESH_SAMPLES."""
    worst = 0.0
    q, m = FRESH_CONFIDENCE, FRESH_SAMPLES
    for err, scale in errors:
        n = err.size
        if n < MIN_TAIL_SAMPLES:
            return None
        top = np.sort(err)[::-1]
        if top[0] == 0:
            continue  # this output never moved
        r = max(2, round(TAIL_FRACTION * n))
        # The tail starts at the (r + 1)-th largest error; where fewer samples moved
        # at all (outputs that saturate, or quantized ones that move by whole steps),
        # at the smallest error of those that did.
        u = top[r] if top[r] > 0 else float(np.min(top[top > 0]))
        # Hill's estimate of the tail index gamma: P(E > x) ~ x^(-1 / gamma). The
        # largest of n errors sits near P = 1 / n; m fresh errors stay under x with
        # probability (1 - P(E > x))^m ~ exp(-m P(E > x)) = q, so x is the largest
        # times (m / (n (-ln q)))^gamma (at least the largest itself).
        gamma = float(np.mean(np.log(np.maximum(top[:r], u) / u)))
        bound = top[0] * max(1.0, m / (n * -np.log(q))) ** gamma
        # The largest of m fresh scales falls below the level-th quantile of one
        # scale with probability level^m = 1 - q.
        floor = float(np.quantile(scale, (1 - q) ** (1 / m)))
        if floor <= 0:
            return float("inf")
        worst = max(worst, bound / floor)
    return worst


def _judged(measured: _Measured) -> float:
    """The drift a combination is held to the tolerance by: the larger of the drifts
    measured and the drift estimated for FRESH_SAMPLES fresh inputs (`_fresh_drift`);
    the search drift over UNHELD_MARGIN when there are no held-out samples (or, past
    the tolerance, they were not run) or too few samples for the estimate."""
    if measured.held is None:
        return measured.search / UNHELD_MARGIN
    largest = max(measured.search, measured.held)
    fresh = _fresh_drift(measured.errors)
    if fresh is None:
        return largest / UNHELD_MARGIN
    return max(largest, fresh)


def _reserve(measured: _Measured) -> float:
    """The factor the search held the measured drift to: judged / largest measured."""
    largest = max(measured.search, measured.held or 0.0)
    judged = _judged(measured)
    if judged == largest:
        return 1.0
    return judged / largest if largest > 0 else float("inf")


def _search_growing(check, candidates, tolerance, bits, backed_off, notes) -> None:
    """`_search`, and again with the check's spare held-out samples when the first
    search turned down a combination by a reserve over GROW_WHEN_RESERVE (see there)."""
    first_backed: list[str] = []
    first_notes: list[str] = []
    held_back = _search(check, candidates, tolerance, bits, first_backed, first_notes)
    if held_back <= GROW_WHEN_RESERVE or check.spare is None:
        backed_off += first_backed
        notes += first_notes
        return
    before = len(check.held_out[0])
    more = check.grow()
    _search(check, candidates, tolerance, bits, backed_off, notes)
    notes.append(
        f"searched again with {more} more held-out samples ({before} before): the "
        f"first search turned down a combination within the tolerance, by the "
        f"{held_back:.3g}x it held in reserve for fresh inputs"
    )


def _search(check, candidates, tolerance, bits, backed_off, notes) -> float:
    """The longest prefix of the greedy order whose combination passes on the search
    and the held-out samples (`_judged` within the tolerance), found with at most
    MAX_VERIFICATIONS verifications: the
    first guess from the predicted drift, then guesses recalibrated by what was
    measured, bisecting between the longest prefix that passed and the shortest that
    failed. When those two are one step apart, that step is the culprit: it (and its
    tensor's coarser steps) leaves the order and the search goes on past it.

    Returns the largest reserve (`_reserve`) of a combination turned down although
    its measured drifts were within the tolerance (0 when there was none)."""
    steps = _steps(candidates)
    lo, hi = 0, len(steps) + 1  # lo passes (all exact); hi fails or is past the end
    lo_drift = _Measured(0.0, 0.0)
    tried: _Measured | None = None  # the last combination measured on both sets
    calibration = 1.0
    failed: tuple[int, float] | None = None
    reported: set[tuple[int, str]] = set()  # culprits named in backed_off
    held_back = 0.0

    def predicted() -> np.ndarray:
        return np.sqrt(np.cumsum([0.0] + [s[2] for s in steps]))

    def longest_within(limit: float) -> int:
        return int(np.searchsorted(predicted(), limit, side="right")) - 1

    def next_guess() -> int:
        guess = longest_within(tolerance * _FIRST_TRY_FRACTION / calibration)
        return guess if lo < guess < hi else (lo + hi) // 2

    k = max(longest_within(tolerance * _FIRST_TRY_FRACTION), min(1, len(steps)))
    for _ in range(MAX_VERIFICATIONS if steps else 0):
        _apply(candidates, steps, k)
        measured = check.measure(candidates, tolerance)
        search, held = measured.search, measured.held
        worst = _judged(measured)
        if held is not None:
            tried = measured
        logging.info(
            "tfedge.compress: %d of %d steps, drift %.4g (held out %s)",
            k,
            len(steps),
            search,
            "n/a" if held is None else f"{held:.4g}",
        )
        if worst <= tolerance:
            lo, lo_drift = k, measured
        else:
            hi, failed = k, (k, worst)
            if held is not None and max(search, held) <= tolerance:
                held_back = max(held_back, _reserve(measured))
        if predicted()[k] > 0 and np.isfinite(worst):
            calibration = max(worst / predicted()[k], 1e-6)
        if hi == lo + 1 and hi <= len(steps) and failed is not None:
            culprit, option, _ = steps[lo]
            earlier = [o for c, o, _ in steps[:lo] if c is culprit]
            before = earlier[-1] if earlier else None
            reported.add((culprit.buffer, option.label))
            backed_off.append(
                f"{culprit.row.name}: {option.label} -> "
                f"{'exact' if before is None else before.label} (the model drifted "
                f"{failed[1]:.3g} with it)"
            )
            steps = steps[:lo] + [s for s in steps[lo + 1 :] if s[0] is not culprit]
            hi, failed = len(steps) + 1, None
        if hi - lo <= 1:
            break
        k = next_guess()
        if k == lo:
            break
    _apply(candidates, steps, lo)
    check.search_drift, check.held_out_drift = lo_drift.search, lo_drift.held
    if failed is not None and failed[0] > lo:
        undone = {c.buffer: o for c, o, _ in steps[: failed[0]]}
        for c in candidates:
            if (
                c.buffer in undone
                and undone[c.buffer] is not c.option
                and (c.buffer, undone[c.buffer].label) not in reported
            ):
                now = "exact" if c.option is None else c.option.label
                backed_off.append(
                    f"{c.row.name}: {undone[c.buffer].label} -> {now} (the model "
                    f"drifted {failed[1]:.3g} with it)"
                )
    if bits is not None:
        for c in candidates:
            if c.options and c.option is None:
                backed_off.append(
                    f"{c.row.name}: {bits} bits -> exact (its own drift "
                    f"{c.predicted(c.options[0]):.3g})"
                )
    if steps and lo == 0:
        notes.append(
            f"no lossy coding held the tolerance {tolerance:g} with the drift "
            f"estimated for {FRESH_SAMPLES} fresh inputs in reserve"
            + (
                ""
                if tried is None
                else f" (reserve {_reserve(tried):.3g}x on the last combination "
                f"tried, drift {max(tried.search, tried.held or 0.0):.3g})"
            )
            + ": every tensor was packed losslessly"
        )
    elif steps:
        notes.append(_reserve_note(lo_drift))
    notes.append(
        f"lossy search: {len(steps)} steps over "
        f"{sum(1 for c in candidates if c.options)} tensors, {lo} taken; "
        f"{check.runs} model runs"
    )
    return held_back


def _reserve_note(measured: _Measured) -> str:
    """The report's note on the drifts measured and the reserve applied."""
    search, held = measured.search, measured.held
    reserve = _reserve(measured)
    if held is None:
        return (
            f"drift {search:.3g} on the search samples, none held out: reserve "
            f"{reserve:.3g}x (UNHELD_MARGIN {UNHELD_MARGIN:g} of the tolerance)"
        )
    head = f"drift {search:.3g} on the search samples, {held:.3g} on the held-out ones"
    if _fresh_drift(measured.errors) is None:
        return (
            f"{head}: reserve {reserve:.3g}x (too few samples to estimate the drift "
            f"on fresh inputs: UNHELD_MARGIN {UNHELD_MARGIN:g} of the tolerance)"
        )
    return (
        f"{head}: reserve {reserve:.3g}x (the drift estimated for {FRESH_SAMPLES} "
        f"fresh inputs, {_judged(measured):.3g}, held to the tolerance; from the tail "
        f"of the {measured.errors[0][0].size} per-sample errors and the spread of "
        "the output scales)"
    )


def _write_tflm(job: _Job, num_samples: int, seed: int) -> Packed:
    """TFLM's LUT layout for every candidate whose decoded values fit 128-entry
    tables."""
    encodings = {}
    for cand in job.candidates:
        enc = cand.choice
        values = enc.decoded.view(cand.values.dtype).reshape(tuple(cand.row.shape))
        tensor = job.plain.subgraphs[cand.row.subgraph].tensors[cand.row.tensor]
        lut = _tflm.lut_encode(values, _tflm.channel_axis(tensor))
        if lut is None:
            cand.drop(
                "more than 128 distinct values per table: TFLM's LUT decoder takes "
                "1-7 bit indices (pass lossless=False to share weights)"
            )
            continue
        overhead = _tflm.GRAPH_OVERHEAD_BYTES
        if lut.size + overhead >= cand.row.original_bytes:
            if cand.option is not None and job.check is not None:
                # The search measured this tensor shared; written raw, the model's
                # drift is measured again below, not taken from the search.
                job.check.search_drift = job.check.held_out_drift = None
            cand.drop(
                f"no gain: LUT encoding {lut.size} bytes plus graph overhead is not "
                f"smaller than {cand.row.original_bytes} bytes"
            )
            continue
        encodings[cand.buffer] = lut
        _fill_row(cand.row, enc)
        cand.row.encoding = lut.description
        cand.row.bits = lut.bits
        cand.row.packed_bytes = lut.size
    if not encodings:
        return job.unchanged(
            "nothing to improve for TFLM: the model is written through unchanged"
        )
    model = read(job.data)
    scratch = _tflm.insert_tflm_decoders(model, encodings)
    out = write(model)
    job.notes.append(
        f"TFLM: flash size {len(out)} bytes (the file); TFLM_DECODE scratch "
        f"{scratch} bytes (decoded tensors alive at once)"
    )
    decoded_model = _Patcher(job.data, job.candidates).bytes_with(
        {c.buffer: c.decoded for c in job.candidates if c.option is not None}
    )
    job.notes.append(_verify_tflm(out, decoded_model, num_samples, seed))
    report = job.report(
        len(out), set(encodings), decoded_model, tflm_scratch_bytes=scratch
    )
    return Packed(out, report)


def _verify_tflm(packed: bytes, reference: bytes, num_samples: int, seed: int) -> str:
    """Runs the TFLM file and the values it must decode to in TFLM's own interpreter."""
    try:
        import tflite_micro  # noqa: F401
    except ImportError:
        return (
            "TFLM: not run in TFLM's interpreter (pip install tflite-micro to "
            "verify); the decoded values were verified in the LiteRT interpreter"
        )
    runner = _verify.ModelRunner(reference)
    samples = _verify.make_samples(runner, None, min(num_samples, 4), seed)[0]
    try:
        got = _tflm.run_in_tflm(packed, samples)
    except (RuntimeError, ValueError) as e:
        raise PackError(
            f"TFLM's interpreter rejected the TFLM output ({str(e).splitlines()[0]}); "
            "please report this with the model"
        ) from e
    want = _tflm.run_in_tflm(reference, samples)
    for g, w in zip(got, want, strict=True):
        for a, b in zip(g, w, strict=True):
            if not np.array_equal(a, b):
                raise PackError(
                    "TFLM's interpreter gives other outputs for the TFLM output than "
                    "for the values it encodes; please report this with the model"
                )
    return "TFLM: verified in TFLM's interpreter (outputs equal to the decoded values')"


def _fill_row(row: TensorReport, enc: _encode.Encoded) -> None:
    row.encoding = enc.encoding
    row.bits = enc.bits
    row.sparsity = enc.sparsity
    row.packed_bytes = len(enc.payload)
    row.entropy_bytes = enc.entropy_bytes
    row.weight_error = enc.weight_error


def _self_check(
    out: bytes, candidates: list[_Candidate], payloads: dict[int, bytes]
) -> bytes:
    """Expands the packed bytes as `tfedge.expand` does (the native decoder when it is
    built, which `tfedge.Interpreter` uses too; else the numpy reference), compares
    every tensor with the values that were verified, and returns the expanded
    model."""
    from tfedge.runtime import expand

    expanded_bytes = expand(out)
    expanded = read(expanded_bytes)
    for c in candidates:
        if c.buffer not in payloads:
            continue
        got = buffer_data(expanded, c.buffer)
        want = c.choice.decoded if c.densify is None else c.densify
        if not np.array_equal(got, want):
            raise PackError(
                f"tensor {c.row.name!r}: the packed payload does not expand to the "
                "values that were verified (a tfedge bug; please report it)"
            )
    return expanded_bytes


def _progress(items, desc: str, enabled: bool | None):
    from tfedge._progress import progress

    return progress(items, desc=desc, enabled=enabled)
