"""The published-model corpus for tests/corpus: the manifest, the cached files, inputs
in each model's range, interpreter runs and the drift metric.

The files are fetched by scripts/corpus.py (scripts/test runs it before pytest). A file
that is missing or changed fails the test that needs it with the command to run;
nothing is skipped for want of the corpus.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import tfedge
from tests._scripts import load_script
from tfedge.tflite import ARCHIVE_ATTR, buffer_data, read, tensor_name, write

SEED = 0
# Invocations per run: the streaming wake-word models keep state in variables, so a
# few steps in a row also compare what the state does.
STEPS = 3


fetcher = load_script("corpus.py", "tfedge_corpus_fetcher")
MODELS: list[dict] = fetcher.models()
IDS = [e["id"] for e in MODELS]
_BYTES: dict[str, bytes] = {}
_LOSSLESS: dict[str, tuple[bytes, bytes]] = {}


def model_bytes(entry: dict) -> bytes:
    """The model's file from the corpus cache, verified against the manifest."""
    if entry["id"] not in _BYTES:
        path = fetcher.model_path(entry)
        if fetcher.missing({"models": [entry]}, path.parent):
            pytest.fail(
                f"corpus model {entry['id']} is missing or changed at {path}: run "
                "`python scripts/corpus.py` (scripts/test does) to fetch it"
            )
        _BYTES[entry["id"]] = path.read_bytes()
    return _BYTES[entry["id"]]


def lossless(entry: dict) -> tuple[bytes, bytes]:
    """(packed, expanded) of `tfedge.compress(..., lossless=True)`, made once."""
    if entry["id"] not in _LOSSLESS:
        packed = bytes(
            tfedge.compress(model_bytes(entry), lossless=True, progress=False)
        )
        _LOSSLESS[entry["id"]] = (packed, tfedge.expand(packed))
    return _LOSSLESS[entry["id"]]


def canonical(data: bytes) -> bytes:
    """The model re-serialised by tfedge's writer: equal for equal content."""
    return write(read(data))


def custom_ops(entry: dict) -> set[str]:
    """The custom operators the manifest says the model uses."""
    return {c.split(":", 1)[1] for c in entry["covers"] if c.startswith("custom-op:")}


def contents(data: bytes) -> dict:
    """What a model holds, part by part, for readable comparisons."""
    model = read(data)
    out = {"subgraphs": len(model.subgraphs)}
    for si, sg in enumerate(model.subgraphs):
        out[f"subgraph {si} tensors"] = [
            (tensor_name(t), int(t.type), bytes(buffer_data(model, t.buffer)))
            for t in sg.tensors or []
        ]
        out[f"subgraph {si} io"] = (
            np.asarray(sg.inputs).tolist(),
            np.asarray(sg.outputs).tolist(),
        )
    out["metadata"] = {
        tensor_name(m): bytes(buffer_data(model, m.buffer))
        for m in model.metadata or []
    }
    out["metadata_buffer"] = (
        None
        if model.metadataBuffer is None
        else [bytes(buffer_data(model, int(b))) for b in model.metadataBuffer]
    )
    out["signatures"] = [
        (
            sd.signatureKey,
            sd.subgraphIndex,
            [(tm.name, tm.tensorIndex) for tm in sd.inputs or []],
            [(tm.name, tm.tensorIndex) for tm in sd.outputs or []],
        )
        for sd in model.signatureDefs or []
    ]
    out["appended archive"] = getattr(model, ARCHIVE_ATTR, None)
    return out


class MissingCustomOp(Exception):
    """The stock interpreter has no kernel for one of the model's custom operators."""

    def __init__(self, op: str):
        super().__init__(op)
        self.op = op


_UNRESOLVED = re.compile(r"unresolved custom op: (\w+)")


def inputs_for(details: list[dict], entry: dict, rng) -> list[np.ndarray]:
    """One input set: integer inputs across their type's range (an int8 input's
    quantization range), float inputs uniform in the manifest's `input_range`."""
    lo, hi = entry.get("input_range", (-1.0, 1.0))
    out = []
    for d in details:
        dtype = np.dtype(d["dtype"])
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            x = rng.integers(info.min, info.max, size=d["shape"], endpoint=True)
            out.append(x.astype(dtype))
        else:
            out.append(rng.uniform(lo, hi, size=d["shape"]).astype(dtype))
    return out


def _as_float(y: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail.get("quantization", (0.0, 0))
    if y.dtype.kind in "iu" and scale:
        return (y.astype(np.float64) - zero) * scale
    return y


def run(interpreter_class, data: bytes, entry: dict, *, seed: int = SEED, steps=STEPS):
    """Each output of every signature (or of the main subgraph when there is none),
    dequantized, stacked over `steps` invocations in a row; inputs drawn with `seed`."""
    try:
        it = interpreter_class(model_content=data, num_threads=1)
        signatures = sorted(it.get_signature_list())
        rng = np.random.default_rng(seed)
        outs = []
        if signatures:
            for key in signatures:
                runner = it.get_signature_runner(key)
                ins, res = runner.get_input_details(), runner.get_output_details()
                names = sorted(ins)
                steps_out = []
                for _ in range(steps):
                    values = inputs_for([ins[n] for n in names], entry, rng)
                    got = runner(**dict(zip(names, values, strict=True)))
                    steps_out.append(
                        [_as_float(np.asarray(got[k]), res[k]) for k in sorted(got)]
                    )
                outs += [np.stack(o) for o in zip(*steps_out, strict=True)]
            return outs
        it.allocate_tensors()
        details = it.get_input_details()
        steps_out = []
        for _ in range(steps):
            for d, v in zip(details, inputs_for(details, entry, rng), strict=True):
                it.set_tensor(d["index"], v)
            it.invoke()
            steps_out.append(
                [
                    _as_float(it.get_tensor(d["index"]).copy(), d)
                    for d in it.get_output_details()
                ]
            )
        return [np.stack(o) for o in zip(*steps_out, strict=True)]
    except RuntimeError as e:
        missing = _UNRESOLVED.search(str(e))
        if missing:
            raise MissingCustomOp(missing.group(1)) from e
        raise


def drift(reference: list[np.ndarray], outputs: list[np.ndarray]) -> float:
    """The metric `tolerance` bounds: max over outputs of max|y - y_ref| / max|y_ref|,
    each output taken over all its invocations."""
    worst = 0.0
    for ref, got in zip(reference, outputs, strict=True):
        ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
        err = float(np.max(np.abs(ref - got))) if ref.size else 0.0
        if not np.isfinite(err):
            return float("inf")
        scale = float(np.max(np.abs(ref))) if ref.size else 0.0
        worst = max(worst, err / scale if scale > 0 else (0.0 if err == 0 else 1.0))
    return worst
