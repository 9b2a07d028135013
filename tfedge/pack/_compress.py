"""`compress`: the converter stage (Deep Compression stages 2 and 3 on a .tflite)."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import numpy as np
from absl import logging

from tfedge.errors import PackError
from tfedge.pack import _encode, _tflm, _verify
from tfedge.pack._graph import decode_ops, insert_decoders, packed_format_version
from tfedge.pack._names import name_rows
from tfedge.pack._report import Report, TensorReport
from tfedge.pack._source import to_tflite_and_keras
from tfedge.tflite import TYPES, buffer_data, read, tensor_name, write

# Default output tolerance: the largest output may move by 2% of its own range. Tight
# enough that class scores keep their order on the representative inputs in practice,
# loose enough that 4-5 bit sharing of dense layers passes, as in Deep Compression.
DEFAULT_TOLERANCE = 0.02
# In automatic bit selection, each tensor starts at the fewest bits whose k-means
# reconstruction error ||w - w'|| / ||w|| is at most this; the output check then backs
# off.
WEIGHT_ERROR_TARGET = 0.03
# A packed tensor costs a payload tensor, a decode operator and its name in the
# flatbuffer (measured: ~100 bytes plus the name); a tensor is packed only if it saves
# more than that.
GRAPH_OVERHEAD_BYTES = 112
# The tightening pass measures the model at most this many times.
_TIGHTEN_TRIALS = 24
_INITS = ("linear", "density", "random")
_TARGETS = ("tfedge", "tflm")


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
    buffer: int
    ttype: int
    values: np.ndarray  # 1-D elements
    row: TensorReport
    init: str = "linear"
    seed: int = 0
    _lossless: _encode.Encoded | None = None
    assignments: dict[int, _encode.Shared] = field(default_factory=dict)
    shared: dict[int, _encode.Encoded] = field(default_factory=dict)
    bits: int | None = None  # chosen sharing bits; None = lossless

    @property
    def lossless(self) -> _encode.Encoded:
        if self._lossless is None:
            self._lossless = _encode.encode_lossless(
                self.ttype, self.values, self.row.shape
            )
        return self._lossless

    def assignment(self, bits: int) -> _encode.Shared:
        if bits not in self.assignments:
            self.assignments[bits] = _encode.share(
                self.values, bits, init=self.init, seed=self.seed
            )
        return self.assignments[bits]

    def encoded(self, bits: int) -> _encode.Encoded:
        if bits not in self.shared:
            self.shared[bits] = _encode.encode_shared(
                self.ttype, self.values, self.assignment(bits)
            )
        return self.shared[bits]

    def shared_bytes(self) -> np.ndarray:
        """The element bytes at the chosen sharing bits, without encoding a payload
        (what the drift checks need)."""
        a = self.assignment(self.bits)
        return np.ascontiguousarray(a.codebook[a.indices]).view(np.uint8)

    @property
    def choice(self) -> _encode.Encoded:
        return self.lossless if self.bits is None else self.encoded(self.bits)

    def drop(self, reason: str) -> None:
        """Leave this buffer raw: the written model holds its original values."""
        self.bits = None
        self.row.reason = self.row.reason or reason

    def prefer_lossless_if_smaller(self) -> None:
        """Exact codebooks (ternary, trained sharing) are lossless and often smaller."""
        if self.bits is None:
            return
        exact = _encode.exactly_codable(self.values, self.row.shape)
        if exact and len(self.lossless.payload) <= len(self.encoded(self.bits).payload):
            self.bits = None


def compress(
    model,
    *,
    lossless: bool = False,
    bits: int | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    representative_data=None,
    num_samples: int = 8,
    init: str = "linear",
    seed: int = 0,
    min_bytes: int = 256,
    target: str = "tfedge",
    progress: bool | None = None,
) -> Packed:
    """Packs a model's weights with weight sharing, a sparse index and Huffman coding.

    Args:
      model: .tflite bytes or path, a SavedModel directory, a `.keras` path, or a
        Keras 3 or tf_keras model (tfedge wrappers are stripped first).
      lossless: keep every weight bit for bit (exact codebooks, sparse index, Huffman).
      bits: sharing bits per lossy tensor (1-8); None chooses per tensor.
      tolerance: the largest allowed output drift, max|y - y_ref| / max|y_ref|, measured
        in the stock interpreter on `representative_data`. A tensor whose coding pushes
        the drift past it is backed off to more bits, then to lossless.
      representative_data: model inputs to measure drift on (an array batch for one
        input, or an iterable of samples); generated from the input signature when None.
      num_samples: how many samples to measure drift on.
      init: k-means centroid initialisation, "linear" (Deep Compression), "density" or
        "random".
      min_bytes: weight buffers smaller than this stay raw.
      target: "tfedge" (TFEDGE_DECODE payloads, docs/FORMAT.md), or "tflm": look-up
        tables with 1-7 bit indices that TFLite Micro's own TFLM_DECODE kernel decodes
        (no Huffman or sparse index; verified in TFLM's interpreter when `tflite-micro`
        is installed).
      progress: show a progress bar (default: when stderr is a terminal).

    Returns:
      A `Packed` model whose `report` lists every weight buffer.
    """
    if not 0 < tolerance < 1:
        raise ValueError(
            f"Expected `tolerance` in (0, 1). Received: tolerance={tolerance}"
        )
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
    if num_samples < 1:
        raise ValueError(
            f"Expected `num_samples` >= 1. Received: num_samples={num_samples}"
        )

    data, notes, keras_model = to_tflite_and_keras(model)
    original_size = len(data)
    plain = read(data)
    if packed_format_version(plain) is not None or any(True for _ in decode_ops(plain)):
        from tfedge.runtime import expand

        data = expand(data)
        plain = read(data)
        notes.append("input was already packed by tfedge: expanded, then packed again")

    candidates, rows = _candidates(plain, min_bytes, init, seed)
    name_rows(plain, rows, keras_model)
    for cand in _progress(candidates, "encoding", progress):
        if not lossless and cand.ttype in _encode.LOSSY_TYPES:
            if not np.all(np.isfinite(cand.values)):
                cand.row.reason = "non-finite weights: packed losslessly"
            else:
                _pick_bits(cand, bits, max_bits)
        cand.choice  # noqa: B018 - encode now, inside the progress bar

    check = None
    backed_off: list[str] = []
    if any(c.bits is not None for c in candidates):
        check = _DriftCheck.create(
            data, candidates, representative_data, num_samples, seed, notes
        )
    if check is not None:
        drift = _back_off(check, candidates, tolerance, backed_off, max_bits)
        if bits is None:
            _tighten(check, candidates, tolerance, drift, notes)

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
    )
    if target == "tflm":
        return _write_tflm(job, num_samples, seed)
    return _write_tfedge(job)


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

    def report(
        self, packed_bytes: int, packed: set[int], written=None, **extra
    ) -> Report:
        """The report; `written` is the model whose outputs the packed file gives, for
        the final drift measurement."""
        drift = None
        if self.check is not None and written is not None:
            drift = self.check.final(written, self.tolerance)
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
            **extra,
        )

    def unchanged(self, note: str) -> Packed:
        self.notes.append(note)
        return Packed(self.data, self.report(len(self.data), set()))


def _write_tfedge(job: _Job) -> Packed:
    """TFEDGE_DECODE payloads (docs/FORMAT.md) for every candidate that gains."""
    payloads = {}
    for cand in job.candidates:
        enc = cand.choice
        if (
            len(enc.payload) + GRAPH_OVERHEAD_BYTES + len(cand.row.name)
            >= cand.row.original_bytes
        ):
            cand.drop(
                f"no gain: best payload {len(enc.payload)} bytes plus graph overhead "
                f"is not smaller than {cand.row.original_bytes} bytes"
            )
            continue
        payloads[cand.buffer] = enc.payload
        _fill_row(cand.row, enc)
    if not payloads:
        return job.unchanged(
            "nothing to improve: the model is written through unchanged"
        )

    from tfedge import __version__

    packed_model = read(job.data)
    version = insert_decoders(packed_model, payloads, producer=f"tfedge {__version__}")
    out = write(packed_model)
    expanded = _self_check(out, job.candidates, payloads)
    return Packed(
        out, job.report(len(out), set(payloads), expanded, format_version=version)
    )


def _candidates(
    model, min_bytes: int, init: str, seed: int
) -> tuple[list[_Candidate], list[TensorReport]]:
    """One row per weight buffer; a candidate for each buffer tfedge may pack."""
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


def _pick_bits(cand: _Candidate, bits: int | None, max_bits: int) -> None:
    """Explicit bits, or the fewest bits whose sharing error meets WEIGHT_ERROR_TARGET
    (binary search: the k-means error falls as bits grow)."""
    if bits is not None:
        cand.bits = bits
    else:
        lo, hi = 1, max_bits
        while lo < hi:
            mid = (lo + hi) // 2
            if cand.assignment(mid).weight_error <= WEIGHT_ERROR_TARGET:
                hi = mid
            else:
                lo = mid + 1
        cand.bits = lo
    cand.prefer_lossless_if_smaller()


def _simulated(plain_bytes: bytes, candidates: list[_Candidate]) -> bytes:
    """The plain model with every lossy tensor replaced by its shared values."""
    model = read(plain_bytes)
    for c in candidates:
        if c.bits is not None:
            model.buffers[c.buffer].data = c.shared_bytes()
    return write(model)


class _DriftCheck:
    """The reference model's outputs on fixed samples, and the drift of other models."""

    def __init__(self, data: bytes, samples, reference):
        self.data, self.samples, self.reference = data, samples, reference

    @classmethod
    def create(cls, data, candidates, representative_data, num_samples, seed, notes):
        """None (and every lossy tensor made lossless) when the model cannot run."""
        try:
            runner = _verify.ModelRunner(data)
        except (RuntimeError, ValueError) as e:
            for c in candidates:
                if c.bits is not None:
                    c.bits = None
                    c.row.reason = (
                        "lossy coding could not be verified: packed losslessly"
                    )
            msg = (
                f"the model does not run in the stock interpreter "
                f"({str(e).splitlines()[0]}); lossy coding cannot be verified, so "
                "every tensor was packed losslessly"
            )
            notes.append(msg)
            warnings.warn(f"tfedge.compress: {msg}", stacklevel=4)
            return None
        samples = _verify.make_samples(runner, representative_data, num_samples, seed)
        return cls(data, samples, runner.run(samples))

    def of(self, model_bytes: bytes) -> float:
        outputs = _verify.ModelRunner(model_bytes).run(self.samples)
        return _verify.drift(self.reference, outputs)

    def measure(self, candidates) -> float:
        return self.of(_simulated(self.data, candidates))

    def final(self, model_bytes: bytes, tolerance: float) -> float:
        """The drift of the model as written; past the tolerance is a failure."""
        drift = self.of(model_bytes)
        if drift > tolerance:
            raise PackError(
                f"the written model drifts {drift:.4g} from the original, past the "
                f"tolerance {tolerance:g} (a tfedge bug; please report it)"
            )
        return drift


def _back_off(check: _DriftCheck, candidates, tolerance, backed_off, max_bits) -> float:
    """Raise the bits of the tensor that alone drifts most until the whole model
    fits."""
    drift = check.measure(candidates)
    solo: dict[int, float] = {}
    rounds = 0
    while drift > tolerance:
        lossy = [c for c in candidates if c.bits is not None]
        if not lossy:
            break
        for c in lossy:
            if c.buffer not in solo:
                solo[c.buffer] = check.measure([c])
        worst = max(lossy, key=lambda c: (solo[c.buffer], c.row.original_bytes))
        before = worst.bits
        if worst.bits < max_bits:
            worst.bits += 1
            worst.prefer_lossless_if_smaller()
        else:
            worst.bits = None
        after = "lossless" if worst.bits is None else f"{worst.bits} bits"
        backed_off.append(
            f"{worst.row.name}: {before} bits -> {after} "
            f"(its own drift {solo[worst.buffer]:.3g})"
        )
        solo.pop(worst.buffer, None)
        drift = check.measure(candidates)
        rounds += 1
        logging.info("tfedge.compress: back-off round %d, drift %.4g", rounds, drift)
    if drift > tolerance:
        raise PackError(
            f"output drift {drift:.4g} exceeds tolerance {tolerance:g} even with "
            "every tensor packed losslessly: the interpreter's outputs are not "
            "reproducible on these inputs"
        )
    return drift


def _tighten(check: _DriftCheck, candidates, tolerance, drift, notes) -> None:
    """Spend the tolerance left over: largest tensors first, one bit fewer at a time
    while the whole model's drift stays within it (the error target only picks a
    start)."""
    start = {c.buffer: c.bits for c in candidates}
    lossy = sorted(
        (c for c in candidates if c.bits is not None and c.bits > 1),
        key=lambda c: -c.row.original_bytes,
    )
    trials = 0
    for c in lossy:
        while c.bits > 1 and trials < _TIGHTEN_TRIALS:
            before = c.bits
            c.bits -= 1
            trials += 1
            trial = check.measure(candidates)
            if trial > tolerance:
                c.bits = before
                break
            drift = trial
    lowered = [
        f"{c.row.name} {start[c.buffer]}->{c.bits}"
        for c in candidates
        if c.bits is not None and start[c.buffer] != c.bits
    ]
    if lowered:
        notes.append(
            f"tolerance left over spent on fewer bits ({', '.join(lowered)}); "
            f"drift {drift:.3g}"
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
    decoded_model = _simulated(job.data, job.candidates)
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
    """Expands the packed bytes with the numpy reference, compares every tensor with the
    values that were verified, and returns the expanded model."""
    from tfedge.codecs import decode_payload
    from tfedge.runtime import expand

    expanded_bytes = expand(out, decoder=decode_payload)
    expanded = read(expanded_bytes)
    for c in candidates:
        if c.buffer not in payloads:
            continue
        got = buffer_data(expanded, c.buffer)
        if not np.array_equal(got, c.choice.decoded):
            raise PackError(
                f"tensor {c.row.name!r}: the packed payload does not expand to the "
                "values that were verified (a tfedge bug; please report it)"
            )
    return expanded_bytes


def _progress(items, desc: str, enabled: bool | None):
    from tfedge._progress import progress

    return progress(items, desc=desc, enabled=enabled)
