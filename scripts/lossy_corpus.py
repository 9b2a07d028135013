"""Default lossy `tfedge.compress` on the published-model corpus (issue 16 items 3-5).

Reproduces, per corpus model (tests/corpus/manifest.json, fetched by
scripts/corpus.py): the file ratio at a tolerance (default 0.02), the drift the search
measured, the drift of the file as written (equal by construction), the drift on the
held-out samples, the wall-clock and CPU seconds of the whole call and per stage, and
how the weights were coded (tensors per coding). Every tensor's own weight error is
also checked against the bound, so a kernel zeroed by a blind check would show.

Usage: .venv/bin/python scripts/lossy_corpus.py [--json PATH] [--tolerance 0.02]
           [--models ID,ID]
"""

from __future__ import annotations

import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import corpus  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("json", None, "Write the results as JSON to this path.")
flags.DEFINE_float("tolerance", 0.02, "The output drift tolerance.")
flags.DEFINE_list("models", None, "Corpus ids to run (default: every model).")


def _row(model_id: str, data: bytes, tolerance: float) -> dict:
    import tfedge
    from tfedge.pack import _lossy

    t, c = time.perf_counter(), time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        packed = tfedge.compress(data, tolerance=tolerance, progress=False)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    r = packed.report
    lossy = [x for x in r.tensors if x.weight_error > 0]
    worst = max((x.weight_error for x in r.tensors), default=0.0)
    if worst > _lossy.MAX_WEIGHT_ERROR:
        raise SystemExit(f"{model_id}: weight error {worst} passes the bound")
    return {
        "model": model_id,
        "bytes": len(data),
        "ratio": r.ratio,
        "search_drift": r.search_drift,
        "written_drift": r.drift,
        "held_out_drift": r.held_out_drift,
        "lossy_tensors": len(lossy),
        "channel_codebooks": sum("channel" in x.encoding for x in lossy),
        "bits": sorted({x.bits for x in lossy}),
        "max_weight_error": worst,
        "compress_s": wall,
        "compress_cpu_s": cpu,
        "stage_s": {k: round(v, 2) for k, v in r.stage_seconds.items()},
        "warning": "; ".join(str(w.message)[:90] for w in caught),
    }


def main(argv):
    del argv
    command = "python " + " ".join(sys.argv)
    banner = _common.print_banner(
        f"Default lossy compress on the corpus (tolerance {FLAGS.tolerance:g})",
        command,
    )
    entries = corpus.models()
    if FLAGS.models:
        entries = [e for e in entries if e["id"] in set(FLAGS.models)]
    rows = []
    for entry in entries:
        path = corpus.model_path(entry)
        if not path.exists():
            raise SystemExit(f"{path} is missing: run python scripts/corpus.py first")
        rows.append(_row(entry["id"], path.read_bytes(), FLAGS.tolerance))
        print(rows[-1], flush=True)
    columns = [
        "model",
        "bytes",
        "ratio",
        "search_drift",
        "written_drift",
        "held_out_drift",
        "bits",
        "compress_s",
        "compress_cpu_s",
    ]
    print("\n" + _common.markdown_table(rows, columns) + "\n")
    _common.write_json(FLAGS.json, {"banner": banner, "rows": rows})


if __name__ == "__main__":
    app.run(main)
