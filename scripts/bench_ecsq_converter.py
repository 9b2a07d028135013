"""ECSQ candidates in the converter's lossy search, against k-means alone (issue 21
item 2).

For each model of the pinned corpus (tests/corpus/manifest.json, fetched by
scripts/corpus.py; `--only` picks some), `tfedge.compress` runs with
`method="kmeans"` (k-means codebooks per tensor and per channel, 1-8 bits) and with
`method="ecsq"` (those plus the ECSQ rate ladder, `tfedge.pack._lossy.ECSQ_ERRORS`),
at each `--tolerances` value, on the same inputs (the ones scripts/bench_corpus.py
measures every tool on: float inputs uniform in the manifest's range, half of them
held out by `compress`). Per run: the file ratio (original bytes / packed bytes), the
drift of the file as expanded on all those inputs, the seconds `compress` took, and
how many tensors the search coded with an ECSQ codebook.

    .venv/bin/python scripts/bench_ecsq_converter.py [--json PATH] [--only NAME,...]
        [--tolerances 0.02] [--num_samples 16]
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import bench_corpus  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
METHODS = ("kmeans", "ecsq")


def define_flags() -> None:
    """The command line (defined when run, not on import)."""
    flags.DEFINE_string("json", None, "Write the results as JSON to this path.")
    flags.DEFINE_list(
        "only", [], "Benchmark only these models, in this order (names, no .tflite)."
    )
    flags.DEFINE_list("tolerances", ["0.02"], "compress tolerances to run at.")
    flags.DEFINE_integer(
        "num_samples", 16, "compress's search samples; as many again are held out."
    )
    flags.DEFINE_integer("seed", 0, "Seed of the generated inputs.")


def bench_model(name: str, path: str, input_range, tolerances) -> list[dict]:
    with open(path, "rb") as f:
        data = f.read()
    ref = bench_corpus.Reference(
        data, num_samples=FLAGS.num_samples, seed=FLAGS.seed, input_range=input_range
    )
    rows = []
    for tolerance in tolerances:
        for method in METHODS:
            out, drift, seconds, report = bench_corpus.tfedge_compress(
                data, ref, tolerance=tolerance, method=method
            )
            ecsq = sum(1 for t in report.tensors if t.quantizer.startswith("ecsq"))
            rows.append(
                {
                    "model": name,
                    "tolerance": tolerance,
                    "method": method,
                    "original_bytes": len(data),
                    "packed_bytes": len(out),
                    "ratio": round(len(data) / len(out), 3),
                    "drift": round(drift, 5),
                    "ecsq_tensors": ecsq,
                    "lossy_tensors": sum(
                        1 for t in report.tensors if t.weight_error > 0
                    ),
                    "seconds": round(seconds, 1),
                }
            )
            print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main(argv):
    del argv
    command = "python scripts/bench_ecsq_converter.py " + " ".join(sys.argv[1:])
    banner = _common.print_banner("ECSQ candidates in the converter", command)
    tolerances = [float(t) for t in FLAGS.tolerances]
    models = {m[0]: m for m in bench_corpus.corpus_models(None)}
    names = FLAGS.only or list(models)
    rows = []
    for name in names:
        _, _, path, input_range = models[name]
        rows += bench_model(name, path, input_range, tolerances)
    print(_common.markdown_table(rows))
    _common.write_json(FLAGS.json, {"banner": banner, "rows": rows})


if __name__ == "__main__":
    define_flags()
    app.run(main)
