"""`tfedge.budget.plan` on the TensorFlow and JAX Keras backends: where the time goes.

Reproduces issue 17's planning-time comparison (195 s on JAX against 32 s on
TensorFlow) on LeNet-5 and Fashion-MNIST: each backend runs in its own process (the
backend is fixed when Keras is imported), trains the network one epoch (not timed),
then times the conversion to .tflite, `analyze` (options and exact sizes) and
`Analysis.plan` (the sensitivity runs in the interpreter, then the search). It also
counts the tensors the planner tunes and the interpreter runs it makes, since a
backend whose export splits a layer into more weight tensors costs more runs.

Where JAX's extra time came from (issue 17): the JAX export of a model with an unknown
batch size is a different graph (LeNet-5: 41 operators against 10: shape arithmetic,
each bias added by BROADCAST_TO + ADD instead of inside the weight op), and its [1, n]
bias tensors were tuned as if they were kernels, one more sensitivity sweep per bias
(fixed: `weight_matrix_buffers`). The columns show what is left per phase.

    python scripts/bench_budget_backends.py [--json bench_budget_backends.json]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# This checkout's tfedge, before any installed one.
sys.path[:0] = [os.path.join(_ROOT, "scripts"), _ROOT]

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("json", None, "Write the rows and the banner here.")
flags.DEFINE_list("backends", ["tensorflow", "jax"], "Keras backends to compare.")
flags.DEFINE_string("budget", "100KB", "The budget planned for.")
flags.DEFINE_integer("val_images", 2000, "Held-out training images to plan on.")
flags.DEFINE_integer("train_images", 10000, "Images for the one training epoch.")
flags.DEFINE_string("child", None, "Internal: run one backend, print its JSON row.")


def _child(backend: str) -> dict:
    """One backend's row (runs in a process whose KERAS_BACKEND is `backend`)."""
    import keras
    import numpy as np
    from _common import compile_classifier, lenet5, load_fashion_mnist

    from tfedge.budget import analyze
    from tfedge.convert import to_plain_tflite

    if keras.backend.backend() != backend:
        raise RuntimeError(f"expected backend {backend}, got {keras.backend.backend()}")
    (x, y), _ = load_fashion_mnist(channels_last=True)
    order = np.random.default_rng(0).permutation(len(x))
    val = order[: FLAGS.val_images]
    train = order[FLAGS.val_images : FLAGS.val_images + FLAGS.train_images]
    keras.utils.set_random_seed(0)
    model = lenet5(keras)
    compile_classifier(keras, model, metrics=())
    model.fit(x[train], y[train], epochs=1, batch_size=128, verbose=0)

    t0 = time.perf_counter()
    tflite, _, _ = to_plain_tflite(model)
    convert_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    analysis = analyze(model, (x[val], y[val]))
    analyze_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    plan = analysis.plan(FLAGS.budget)
    plan_s = time.perf_counter() - t0
    evaluator = analysis._evaluator
    t0 = time.perf_counter()
    evaluator.outputs(tflite)
    run_s = time.perf_counter() - t0
    tuned = [t for t in analysis._tensors if t.tunable]
    return dict(
        backend=backend,
        tflite_bytes=len(tflite),
        tuned_tensors=len(tuned),
        tuned=", ".join(f"{t.layer}{list(t.shape)}" for t in tuned),
        convert_s=round(convert_s, 1),
        analyze_s=round(analyze_s, 1),
        plan_s=round(plan_s, 1),
        total_s=round(analyze_s + plan_s, 1),
        interpreter_runs=evaluator.runs,
        seconds_per_run=round(run_s, 3),
        packed_bytes=plan.predicted_bytes,
        planned_accuracy=round(plan.measured, 4),
    )


def main(argv):
    del argv
    if FLAGS.child:
        print("ROW " + json.dumps(_child(FLAGS.child)))
        return
    from _common import markdown_table, print_banner, write_json

    banner = print_banner(
        "tfedge.budget.plan on each Keras backend (LeNet-5, Fashion-MNIST)",
        "python scripts/bench_budget_backends.py"
        + (f" --json {FLAGS.json}" if FLAGS.json else ""),
    )
    rows = []
    for backend in FLAGS.backends:
        env = dict(os.environ, KERAS_BACKEND=backend)
        env["PYTHONPATH"] = _ROOT + os.pathsep + env.get("PYTHONPATH", "")
        cmd = [sys.executable, os.path.abspath(__file__), f"--child={backend}"]
        cmd += [f"--budget={FLAGS.budget}", f"--val_images={FLAGS.val_images}"]
        cmd += [f"--train_images={FLAGS.train_images}"]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("ROW ")]
        if out.returncode or not lines:
            raise RuntimeError(f"{backend} run failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(lines[-1][4:]))
    columns = [
        "backend",
        "tflite_bytes",
        "tuned_tensors",
        "convert_s",
        "analyze_s",
        "plan_s",
        "total_s",
        "interpreter_runs",
        "seconds_per_run",
        "packed_bytes",
        "planned_accuracy",
    ]
    print(markdown_table(rows, columns))
    for r in rows:
        print(f"{r['backend']}: tuned {r['tuned']}")
    write_json(FLAGS.json, {"banner": banner, "rows": rows})


if __name__ == "__main__":
    app.run(main)
