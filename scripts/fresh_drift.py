"""How far the lossy search's drift grows on inputs it never saw, and how well its
estimate (`tfedge/pack/_compress.py` `_fresh_drift`) bounds that: the measurement
behind FRESH_SAMPLES, FRESH_CONFIDENCE and TAIL_FRACTION.

For each corpus model (tests/corpus/manifest.json) and tolerance, `tfedge.compress`
runs as the corpus test runs it (`corpus_lossy`: representative data in the
manifest's input range for float models without TFLite Support metadata, generated
inputs otherwise); every combination the search verifies on its search and held-out
samples is then also run on `--sets` fresh sets of 8 inputs drawn as the corpus test
draws its own (seeds 1234, 1235, ...: the first is the test's). With `--noreserve`
the search holds only the drift it measured to the tolerance (no estimate), which
shows how far fresh inputs drift past it. Printed per combination: the drift measured
(largest of search and held-out), the estimate, and the fresh sets' drifts; then per
model how often a fresh set passed the estimate, and the written file's worst fresh
drift against the tolerance.

    PYTHONPATH=. .venv/bin/python scripts/fresh_drift.py --only MODEL,... \\
        [--tolerances 0.02,0.01] [--sets 8] [--noreserve] [--json PATH]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
# The corpus test's fresh inputs: its seed, and as many steps per set.
FRESH_SEED = 1234
FRESH_STEPS = 8


def define_flags() -> None:
    flags.DEFINE_list("only", [], "Corpus model ids (default: every model).")
    flags.DEFINE_list("tolerances", ["0.02", "0.01"], "Tolerances to compress at.")
    flags.DEFINE_integer("sets", 8, "Fresh sets of 8 inputs per combination.")
    flags.DEFINE_bool(
        "reserve", True, "Keep the search's estimate (--noreserve: measured drift)."
    )
    flags.DEFINE_string("json", None, "Write every combination's numbers here.")
    flags.DEFINE_bool(
        "bench_inputs",
        False,
        "Search on scripts/bench_corpus.py's inputs (its 16 + 16 samples, uniform in "
        "the manifest's input range) instead of the corpus test's.",
    )
    flags.DEFINE_string(
        "reestimate",
        None,
        "Instead of compressing: the estimate again, from the per-sample errors an "
        "earlier --json run recorded, for each --confidence and --tail_fraction.",
    )
    flags.DEFINE_list("confidence", ["0.9", "0.95"], "FRESH_CONFIDENCE values.")
    flags.DEFINE_list("tail_fraction", ["0.125", "0.25", "0.375"], "TAIL_FRACTION.")


def _fresh_sets(runner, entry, sets: int):
    from tests.corpus import _models

    out = []
    for g in range(sets):
        rng = np.random.default_rng(FRESH_SEED + g)
        out.append(
            [
                [
                    _models.inputs_for(
                        [dict(d, shape=list(d["shape"])) for d in e.inputs], entry, rng
                    )
                    for _ in range(FRESH_STEPS)
                ]
                for e in runner.entries
            ]
        )
    return out


def measure(
    entry: dict,
    original: bytes,
    tolerance: float,
    sets: int,
    reserve: bool,
    bench_inputs: bool = False,
) -> dict:
    """Every combination the search verified at `tolerance` on one model (`entry`, its
    manifest entry; `original`, its bytes), with its fresh sets' drifts, and the
    written file's."""
    # Private library functions, used on purpose: the numbers are the search's own.
    import tfedge
    from tests.corpus.test_corpus import _representative_npz
    from tfedge.cli._commands import load_representative
    from tfedge.pack import _compress, _verify

    with tempfile.TemporaryDirectory() as tmp:
        args = _representative_npz(entry, original, os.path.join(tmp, "d.npz"))
        data = load_representative(args[1]) if args else None
    if bench_inputs:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import bench_corpus

        data = bench_corpus.Reference(
            original,
            num_samples=16,
            seed=0,
            input_range=tuple(entry.get("input_range") or (-1.0, 1.0)),
        ).representative_data()
    runner = _verify.ModelRunner(original)
    fresh = _fresh_sets(runner, entry, sets)
    fresh_ref = [runner.run(s) for s in fresh]
    combos: list[dict] = []
    measure_fn, judged_fn = _compress._DriftCheck.measure, _compress._judged

    def recorded(self, candidates, tol):
        m = measure_fn(self, candidates, tol)
        if m.held is not None:
            replaced = {c.buffer: c.option.decoded for c in candidates if c.option}
            drifts = [
                _verify.drift(ref, self._outputs(replaced, s))
                for s, ref in zip(fresh, fresh_ref, strict=True)
            ]
            combos.append(
                {
                    "measured": max(m.search, m.held),
                    "estimate": judged_fn(m),
                    "fresh": drifts,
                    "errors": [[e.tolist(), sc.tolist()] for e, sc in m.errors],
                }
            )
        return m

    def measured_only(m):
        return judged_fn(m) if m.held is None else max(m.search, m.held)

    _compress._DriftCheck.measure = recorded
    if not reserve:
        _compress._judged = measured_only
    try:
        packed = tfedge.compress(
            original, tolerance=tolerance, representative_data=data, progress=False
        )
    finally:
        _compress._DriftCheck.measure, _compress._judged = measure_fn, judged_fn
    written = _verify.ModelRunner(tfedge.expand(bytes(packed)))
    final = [
        _verify.drift(ref, written.run(s))
        for s, ref in zip(fresh, fresh_ref, strict=True)
    ]
    return {
        "model": entry["id"],
        "tolerance": tolerance,
        "ratio": len(original) / len(packed),
        "notes": [n for n in packed.report.notes if "reserve" in n],
        "combinations": combos,
        "written_fresh": final,
    }


def reestimate(rows: list[dict], confidence: float, tail_fraction: float) -> dict:
    """The share of fresh sets past the estimate with these constants, the
    combinations whose corpus-test set passed it (and by how much), and the median
    estimate / measured drift per model."""
    from tfedge.pack import _compress

    saved = _compress.FRESH_CONFIDENCE, _compress.TAIL_FRACTION
    _compress.FRESH_CONFIDENCE, _compress.TAIL_FRACTION = confidence, tail_fraction
    try:
        past, total, first, reserve = 0, 0, [], {}
        for r in rows:
            for c in r["combinations"]:
                errors = [(np.asarray(e), np.asarray(sc)) for e, sc in c["errors"]]
                m = _compress._Measured(c["measured"], c["measured"], errors)
                estimate = _compress._judged(m)
                past += sum(x > estimate for x in c["fresh"])
                total += len(c["fresh"])
                if c["fresh"][0] > estimate:
                    first.append((r["model"], c["fresh"][0] / estimate))
                if c["measured"] > 0:
                    reserve.setdefault(r["model"], []).append(estimate / c["measured"])
    finally:
        _compress.FRESH_CONFIDENCE, _compress.TAIL_FRACTION = saved
    return {
        "past": past / max(total, 1),
        "test_set_past": first,
        "median_reserve": {k: float(np.median(v)) for k, v in reserve.items()},
    }


def main(argv):
    del argv
    from tests.corpus import _models

    if FLAGS.reestimate:
        with open(FLAGS.reestimate) as f:
            rows = json.load(f)
        for q in (float(x) for x in FLAGS.confidence):
            for t in (float(x) for x in FLAGS.tail_fraction):
                got = reestimate(rows, q, t)
                print(
                    f"confidence {q:g}, tail fraction {t:g}: {got['past']:.1%} of "
                    f"fresh sets past the estimate; the test's set past it on "
                    f"{[(m, round(x, 3)) for m, x in got['test_set_past']]}; median "
                    "reserve "
                    + ", ".join(
                        f"{m}: {x:.3g}" for m, x in got["median_reserve"].items()
                    )
                )
        return

    rows = []
    for entry in _models.MODELS:
        if FLAGS.only and entry["id"] not in FLAGS.only:
            continue
        for tol in (float(t) for t in FLAGS.tolerances):
            original = _models.model_bytes(entry)
            row = measure(
                entry, original, tol, FLAGS.sets, FLAGS.reserve, FLAGS.bench_inputs
            )
            rows.append(row)
            print(f"{row['model']} at {tol:g}: {row['ratio']:.3f}x; {row['notes']}")
            for c in row["combinations"]:
                f = c["fresh"]
                print(
                    f"  measured {c['measured']:.4g} estimate {c['estimate']:.4g} "
                    f"fresh max {max(f):.4g} ({max(f) / max(c['measured'], 1e-30):.3g}"
                    f"x measured), sets past the estimate "
                    f"{sum(x > c['estimate'] for x in f)}/{len(f)}"
                )
            w = row["written_fresh"]
            over = sum(x > tol for x in w)
            print(
                f"  written file: fresh drift max {max(w):.4g}, the test's set "
                f"{w[0]:.4g}, sets past the tolerance {over}/{len(w)}"
            )
    combos = [c for r in rows for c in r["combinations"]]
    fresh = [(x, c["estimate"]) for c in combos for x in c["fresh"]]
    if fresh:
        past = sum(x > e for x, e in fresh)
        first = sum(c["fresh"][0] > c["estimate"] for c in combos)
        print(
            f"{len(combos)} combinations, {len(fresh)} fresh sets: {past} "
            f"({past / len(fresh):.1%}) past the estimate; the test's own set past "
            f"it on {first}"
        )
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    define_flags()
    app.run(main)
