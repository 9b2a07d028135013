"""Expansion ratios of real codings: what the readers' resource bound must allow.

Reproduces the numbers behind the decoded-size bound of docs/FORMAT.md ("Resource
bound"): every payload tfedge writes decodes to at most max(R x its coded bytes, F).
For each published model given, every weight payload of three packings is measured:
`tfedge.compress(lossless=True)`; the default lossy packing; and the densest realistic
case, every float32 weight pruned to 95% by magnitude and shared on 16 values before a
lossless packing (Deep Compression's pruning plus sharing, without retraining). Prints,
per model and packing, the largest decoded/coded ratio and the largest decoded size of
a payload whose ratio passes R, with the versions and the machine.

    .venv/bin/python scripts/bench_expansion.py MODEL.tflite... [--json PATH]
        [--packings lossless,lossy,pruned95]
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("json", None, "Write the results as JSON to this path.")
flags.DEFINE_list("packings", ["lossless", "lossy", "pruned95"], "Packings to measure.")

# The pruned packing: the share of each float32 weight set to zero, and the number of
# shared values the rest is rounded to (Deep Compression's conv/fc settings).
PRUNE_FRACTION = 0.95
SHARED_VALUES = 16


def _pruned(data: bytes) -> bytes:
    from tfedge.tflite import TYPES, buffer_data, read, write

    model = read(data)
    done = set()
    for sg in model.subgraphs:
        for t in sg.tensors or []:
            raw = buffer_data(model, t.buffer)
            if t.buffer in done or t.type != 0 or raw.size < 1024:
                continue
            if raw.size % TYPES[0].itemsize:
                continue
            w = raw.view(np.float32).copy()
            mag = np.abs(w)
            w[mag < np.quantile(mag, PRUNE_FRACTION)] = 0.0
            kept = w != 0
            if kept.any():
                levels = np.linspace(w[kept].min(), w[kept].max(), SHARED_VALUES)
                near = np.abs(w[kept, None] - levels[None, :]).argmin(axis=1)
                w[kept] = levels[near].astype(np.float32)
            model.buffers[t.buffer].data = np.frombuffer(w.tobytes(), np.uint8)
            done.add(t.buffer)
    return write(model)


def _ratios(packed: bytes) -> list[tuple[str, int, int]]:
    """(tensor, coded bytes, decoded bytes) of every payload."""
    from tfedge.codecs import read_header
    from tfedge.tflite import buffer_data, decode_ops, read, tensor_name

    model = read(packed)
    out = []
    for si, _oi, p, w in decode_ops(model):
        sg = model.subgraphs[si]
        payload = bytes(buffer_data(model, sg.tensors[p].buffer))
        h = read_header(payload)
        out.append((tensor_name(sg.tensors[w]), len(payload), int(h.decoded_size)))
    return out


def measure(path: str, packing: str) -> dict:
    import tfedge
    from tfedge.codecs import EXPANSION_FLOOR, EXPANSION_RATIO

    with open(path, "rb") as f:
        data = f.read()
    if packing == "pruned95":
        data = _pruned(data)
    packed = bytes(tfedge.compress(data, lossless=packing != "lossy", progress=False))
    rows = _ratios(packed)
    ratios = [d / c for _, c, d in rows] or [0.0]
    over = [d for _, c, d in rows if d > EXPANSION_RATIO * c]
    return {
        "model": os.path.basename(path),
        "packing": packing,
        "payloads": len(rows),
        "max_ratio": round(max(ratios), 1),
        "max_decoded_over_R": max(over, default=0),
        "within_bound": all(
            d <= max(EXPANSION_RATIO * c, EXPANSION_FLOOR) for _, c, d in rows
        ),
    }


def main(argv):
    from tfedge.codecs import EXPANSION_FLOOR, EXPANSION_RATIO

    paths = argv[1:]
    if not paths:
        raise app.UsageError("give .tflite files")
    rows = []
    from tfedge.errors import TfedgeError

    for path in paths:
        for packing in FLAGS.packings:
            try:
                rows.append(measure(path, packing))
            except TfedgeError as e:  # a model this tfedge cannot pack: say so
                rows.append(
                    {
                        "model": os.path.basename(path),
                        "packing": packing,
                        "error": str(e),
                    }
                )
    banner = _common.print_banner(
        "Expansion ratios of real codings", "scripts/bench_expansion.py"
    )
    print(f"R = {EXPANSION_RATIO}, F = {EXPANSION_FLOOR} bytes\n")
    print(_common.markdown_table(rows))
    top = max(rows, key=lambda r: r.get("max_ratio", 0))
    print(f"\ndensest payload: {top['max_ratio']}x ({top['model']}, {top['packing']})")
    _common.write_json(FLAGS.json, {"machine": banner, "rows": rows})


if __name__ == "__main__":
    app.run(main)
