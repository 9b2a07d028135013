"""Differential fuzzing of the four readers on forged packed .tflite files.

Reproduces the README's reliability numbers: every file of the hostile table
(tests/_hostile.py) and N forged mutants of each (scripts/fuzz_seeds.py
`forged_flatbuffers`: byte flips, boundary values over 32-bit fields, vtable entries
and sizes forged, truncation, garbage) go through the numpy expander, the native
expander, `tfedge.Interpreter` and the Java unpacker. Prints, per reader, how many files
it accepted and refused, how many raised anything but a tfedge error (a crash), how
many files the readers disagree on (by verdict), and the share of files both Python
and Java refuse with the same message; lists the disagreements.

    .venv/bin/python scripts/fuzz_readers.py [--mutants 40] [--seed 2] [--json PATH]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import _common  # noqa: E402
import fuzz_seeds  # noqa: E402  (defines --mutants: forged mutants per hostile file)
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("seed", 2, "Seed of the mutations.")
flags.DEFINE_string("json", None, "Write the results as JSON to this path.")


def _outcome(fn, data: bytes) -> tuple[str, str]:
    import tfedge

    try:
        fn(data)
    except tfedge.TfedgeError as e:
        return "error", str(e)
    except RuntimeError as e:  # the stock runtime refusing the graph (an unknown op)
        if fn is not _interpreter:
            return "crash", f"RuntimeError: {e}"
        return "runtime", " ".join(str(e).split())
    except Exception as e:  # noqa: BLE001 - a finding, reported by type
        return "crash", f"{type(e).__name__}: {e}"
    return "ok", ""


def _interpreter(data: bytes) -> None:
    import tfedge

    it = tfedge.Interpreter(model_content=data)
    it.allocate_tensors()


def main(argv):
    import tfedge
    from tests.android import _java
    from tfedge.codecs import decode_payload
    from tfedge.runtime import _native

    del argv
    files = list(
        fuzz_seeds.forged_flatbuffers(np.random.default_rng(FLAGS.seed), FLAGS.mutants)
    )
    readers = {
        "numpy": lambda d: tfedge.expand(d, decoder=decode_payload),
    }
    if _native.native_available():
        readers["native"] = lambda d: tfedge.expand(
            d, decoder=_native.decode_payload_native
        )
        readers["interpreter"] = _interpreter
    results = {name: {} for name in readers}
    for name, data in files:
        for reader, fn in readers.items():
            results[reader][name] = _outcome(fn, data)
    if _java.missing_jdk() is None:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            cp = _java.compile_unpacker(work / "classes", with_tests=False)
            jobs = []
            for i, (_, data) in enumerate(files):
                (work / f"{i}.tflite").write_bytes(data)
                jobs.append(("expand", str(work / f"{i}.tflite"), str(work / f"{i}.o")))
            answers = _java.run_batch(cp, work, jobs)
        results["java"] = {
            name: ("ok", "") if err is None else ("error", err)
            for (name, _), err in zip(files, answers, strict=True)
        }
    banner = _common.print_banner(
        "Differential fuzzing of the readers", "scripts/fuzz_readers.py"
    )
    rows = []
    for reader, res in results.items():
        verdicts = [v for v, _ in res.values()]
        rows.append(
            {
                "reader": reader,
                "files": len(verdicts),
                "accepted": verdicts.count("ok"),
                "refused": verdicts.count("error"),
                "runtime refused": verdicts.count("runtime"),
                "crashes": verdicts.count("crash"),
            }
        )
    print(_common.markdown_table(rows))
    # The interpreter also runs the graph: the stock runtime refusing it (an operator
    # it does not know, after a forged name) is not a disagreement about the file.
    disagree = [
        name
        for name, _ in files
        if len({results[r][name][0].replace("runtime", "error") for r in results}) > 1
    ]
    pairs = {}
    for other in results:
        if other != "numpy":
            pairs[f"numpy/{other}"] = sum(
                results["numpy"][n][0]
                != results[other][n][0].replace("runtime", "error")
                for n, _ in files
            )
    print(
        "\nverdict differences by pair: "
        + ", ".join(f"{k} {v}" for k, v in pairs.items())
    )
    both = same = 0
    if "java" in results:
        for name, _ in files:
            (pv, pm), (jv, jm) = results["numpy"][name], results["java"][name]
            if pv == jv == "error":
                both += 1
                same += pm == jm
    print(
        f"\n{len(files)} files; readers disagree on {len(disagree)}; "
        f"Python and Java refuse {both} alike, {same} with the same message"
    )
    for name in disagree:
        print(f"  {name}: " + ", ".join(f"{r} {results[r][name]}" for r in results))
    crashes = [
        (r, n, m) for r in results for n, (v, m) in results[r].items() if v == "crash"
    ]
    for r, n, m in crashes:
        print(f"  crash: {r} {n}: {m}")
    _common.write_json(
        FLAGS.json,
        {
            "machine": banner,
            "rows": rows,
            "disagreements": disagree,
            "pairs": pairs,
            "both_refuse": both,
            "same_message": same,
        },
    )
    return 1 if crashes else 0


if __name__ == "__main__":
    app.run(main)
