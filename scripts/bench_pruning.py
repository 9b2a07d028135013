"""Pruning in model.fit on Fashion-MNIST (issue 5; Han et al. 2015, LeCun et al. 1989).

Reproduces, in one run on real data:

1. `model.fit` time per epoch of LeNet-300-100: the plain Keras 3 model, the same model
   wrapped by `tfedge.keras.prune`, and tfmot's `prune_low_magnitude` on the tf_keras
   twin (same architecture, batch, data and schedule); median over epochs after the
   first (which includes tracing). Target: ours <= 1.15x plain and below tfmot.
2. LeNet-300-100 test accuracy at 90/95/98% sparsity: magnitude against OBD saliency,
   each with one uniform sparsity for every layer and with per-layer sparsities chosen
   from a sensitivity analysis (same total number of weights kept). Each pruned model
   starts from the same trained dense model, prunes over one epoch
   (PolynomialDecay) and retrains for the rest; "one-shot" is the accuracy right after
   pruning the dense model to the final masks, before any retraining.

Usage: .venv/bin/python scripts/bench_pruning.py [--json PATH] [--quick]
"""

from __future__ import annotations

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("json", None, "Write the results as JSON to this path.")
flags.DEFINE_integer("batch", 128, "Training batch size.")
flags.DEFINE_integer("timing_epochs", 3, "Epochs per fit-time measurement.")
flags.DEFINE_integer("dense_epochs", 4, "Epochs of dense training before pruning.")
flags.DEFINE_integer("prune_epochs", 3, "Epochs of pruning (first) plus retraining.")
flags.DEFINE_integer("hessian_examples", 2048, "Training examples for the OBD Hessian.")
flags.DEFINE_enum(
    "hessian_method",
    "gauss_newton",
    ["gauss_newton", "empirical_fisher"],
    "How OBD estimates the Hessian diagonal.",
)
flags.DEFINE_integer(
    "steps_per_execution",
    1,
    "Training steps per compiled call in the timing runs (Keras and tf_keras alike); "
    "values above 1 take the per-step Python overhead of the fit loops out.",
)
flags.DEFINE_string(
    "plot", None, "Save the sensitivity curves (both criteria) as an image here."
)
flags.DEFINE_boolean("timing_only", False, "Measure fit time only.")
flags.DEFINE_boolean("quick", False, "Tiny subset and one epoch each: a smoke run.")

SPARSITIES = (0.9, 0.95, 0.98)
# Sensitivity grid: per-layer sparsities tried one layer at a time.
GRID = (0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.96, 0.97, 0.98, 0.985, 0.99, 0.995)
MAX_FREQUENCY = 50


def _schedule(steps_per_epoch: int) -> tuple[int, int]:
    """(frequency, end_step): mask updates over the first epoch, end a multiple."""
    frequency = max(1, min(MAX_FREQUENCY, steps_per_epoch // 4))
    return frequency, ((steps_per_epoch - 1) // frequency) * frequency


def time_fit(keras, tk, data, steps_per_epoch):
    """Seconds per epoch, median and fastest; one epoch of each model in turn (round
    robin), so that load from other processes on the machine hits the three alike. The
    first epoch of each (tracing) is not counted. On a loaded machine the fastest epoch
    is the better estimate of the cost itself."""
    (x, y), _ = data
    frequency, end = _schedule(steps_per_epoch)
    keras.utils.set_random_seed(0)
    plain = _common.lenet300(keras)
    spe = FLAGS.steps_per_execution
    _common.compile_classifier(keras, plain, metrics=(), steps_per_execution=spe)

    keras.utils.set_random_seed(0)
    ours = tk.prune(
        _common.lenet300(keras),
        schedule=tk.PolynomialDecay(0.0, 0.9, 0, end, frequency=frequency),
    )
    _common.compile_classifier(keras, ours, metrics=(), steps_per_execution=spe)

    import tensorflow_model_optimization as tfmot
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    twin = tf_keras.Sequential(
        [
            tf_keras.Input((28, 28)),
            tf_keras.layers.Flatten(),
            tf_keras.layers.Dense(300, activation="relu", name="fc1"),
            tf_keras.layers.Dense(100, activation="relu", name="fc2"),
            tf_keras.layers.Dense(10, name="fc3"),
        ]
    )
    sparsity = tfmot.sparsity.keras
    twin = sparsity.prune_low_magnitude(
        twin,
        pruning_schedule=sparsity.PolynomialDecay(
            0.0, 0.9, 0, end, frequency=frequency
        ),
    )
    twin.compile(
        "adam",
        tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=spe,
    )

    runs = {
        "plain Keras 3": (plain, []),
        "tfedge.keras.prune": (ours, []),
        "tfmot prune_low_magnitude (tf_keras)": (twin, [sparsity.UpdatePruningStep()]),
    }
    times = {name: [] for name in runs}
    for _ in range(FLAGS.timing_epochs + 1):
        for name, (model, callbacks) in runs.items():
            t0 = time.perf_counter()
            model.fit(
                x, y, batch_size=FLAGS.batch, epochs=1, verbose=0, callbacks=callbacks
            )
            times[name].append(time.perf_counter() - t0)
    medians = {name: statistics.median(t[1:]) for name, t in times.items()}
    fastest = {name: min(t[1:]) for name, t in times.items()}
    base, base_min = medians["plain Keras 3"], fastest["plain Keras 3"]
    return [
        {
            "model": name,
            "median s/epoch": medians[name],
            "x plain": medians[name] / base,
            "fastest s/epoch": fastest[name],
            "x plain (fastest)": fastest[name] / base_min,
            "epochs timed": len(times[name]) - 1,
            "all s/epoch": [round(t, 3) for t in times[name][1:]],
        }
        for name in runs
    ]


def allocate(tk, table, counts: dict, target: float) -> dict:
    """Per-layer sparsities from `table` whose weighted total is exactly `target`.

    The smallest accuracy-loss budget whose `choose_sparsity` reaches `target` overall
    fixes the small layers; the largest layer then takes up the exact remainder.
    """
    total = sum(counts.values())
    largest = max(counts, key=counts.get)

    def overall(chosen):
        return sum(chosen[n] * counts[n] for n in counts) / total

    lo, hi = 0.0, 1.0
    for _ in range(30):
        mid = (lo + hi) / 2
        if overall(tk.choose_sparsity(table, max_loss=mid)) >= target:
            hi = mid
        else:
            lo = mid
    chosen = tk.choose_sparsity(table, max_loss=hi)
    rest = sum(chosen[n] * counts[n] for n in counts if n != largest)
    chosen[largest] = float(
        np.clip((target * total - rest) / counts[largest], 0.0, 0.999)
    )
    return chosen


def accuracy_runs(keras, tk, data, steps_per_epoch):
    (x, y), (x_test, y_test) = data
    n_val = min(5000, len(x) // 6)
    x_tr, y_tr, x_val, y_val = x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    keras.utils.set_random_seed(0)
    dense = _common.lenet300(keras)
    dense.compile(keras.optimizers.Adam(1e-3), loss)
    dense.fit(x_tr, y_tr, batch_size=FLAGS.batch, epochs=FLAGS.dense_epochs, verbose=0)
    dense_acc = _common.accuracy(dense, x_test, y_test, 1024)
    counts = {
        name: dense.get_layer(name).kernel.shape[0]
        * dense.get_layer(name).kernel.shape[1]
        for name in ("fc1", "fc2", "fc3")
    }
    hessian = (x_tr[: FLAGS.hessian_examples], y_tr[: FLAGS.hessian_examples])
    obd_args = {
        "hessian_data": hessian,
        "loss": loss,
        "hessian_method": FLAGS.hessian_method,
    }

    tables = {}
    for criterion in ("magnitude", "obd"):
        extra = obd_args if criterion == "obd" else {}
        tables[criterion] = tk.sensitivity(
            dense, (x_val, y_val), sparsities=GRID, criterion=criterion, **extra
        )
    frequency, end = _schedule(steps_per_epoch)
    rows = []
    for target in SPARSITIES:
        for criterion in ("magnitude", "obd"):
            extra = obd_args if criterion == "obd" else {}
            for targets in ("uniform", "sensitivity"):
                if targets == "uniform":
                    per_layer = dict.fromkeys(counts, target)
                else:
                    per_layer = allocate(tk, tables[criterion], counts, target)
                schedule = {
                    n: tk.PolynomialDecay(0.0, s, 0, end, frequency=frequency)
                    for n, s in per_layer.items()
                    if s > 0
                }
                one_shot = tk.prune(
                    dense, schedule=schedule, criterion=criterion, **extra
                )
                for w in one_shot.layers:
                    if isinstance(w, tk.PruningWrapper):
                        w.prune_now(per_layer[w.name])
                shot_acc = _common.accuracy(one_shot, x_test, y_test, 1024)
                keras.utils.set_random_seed(0)
                model = tk.prune(dense, schedule=schedule, criterion=criterion, **extra)
                model.compile(keras.optimizers.Adam(5e-4), loss)
                model.fit(
                    x_tr,
                    y_tr,
                    batch_size=FLAGS.batch,
                    epochs=FLAGS.prune_epochs,
                    verbose=0,
                )
                plain = tk.strip(model)
                kernels = [plain.get_layer(n).kernel for n in counts]
                zeros = sum(
                    int(np.sum(keras.ops.convert_to_numpy(k) == 0)) for k in kernels
                )
                rows.append(
                    {
                        "sparsity": target,
                        "criterion": criterion,
                        "per-layer": targets,
                        "fc1/fc2/fc3": "/".join(f"{per_layer[n]:.3f}" for n in counts),
                        "weights kept": sum(counts.values()) - zeros,
                        "one-shot acc": shot_acc,
                        "retrained acc": _common.accuracy(plain, x_test, y_test, 1024),
                    }
                )
    return dense_acc, rows, tables


def main(argv):
    del argv
    import keras

    import tfedge.keras as tk

    banner = _common.print_banner(
        "Pruning in model.fit: fit time and LeNet-300-100 accuracy (Fashion-MNIST)",
        _common.command_line(),
    )
    (x, y), (x_test, y_test) = _common.load_fashion_mnist()
    if FLAGS.quick:
        x, y, x_test, y_test = x[:6000], y[:6000], x_test[:2000], y_test[:2000]
        FLAGS.timing_epochs, FLAGS.dense_epochs, FLAGS.prune_epochs = 2, 1, 1
        FLAGS.hessian_examples = 256
    data = ((x, y), (x_test, y_test))
    steps = -(-len(x) // FLAGS.batch)

    timing = time_fit(keras, tk, data, steps)
    print(
        f"### model.fit time per epoch (LeNet-300-100, batch {FLAGS.batch}, "
        f"{len(x)} examples, steps_per_execution {FLAGS.steps_per_execution}, median "
        f"of {FLAGS.timing_epochs} epochs after a first, round robin)\n"
    )
    columns = [c for c in timing[0] if c != "all s/epoch"]
    print(_common.markdown_table(timing, columns) + "\n")
    if FLAGS.timing_only:
        _common.write_json(FLAGS.json, {"banner": banner, "timing": timing})
        return

    steps_train = -(-(len(x) - min(5000, len(x) // 6)) // FLAGS.batch)
    dense_acc, rows, tables = accuracy_runs(keras, tk, data, steps_train)
    print(
        f"### LeNet-300-100 test accuracy (dense: {dense_acc:.4f} after "
        f"{FLAGS.dense_epochs} epochs; pruning over 1 epoch + retraining, "
        f"{FLAGS.prune_epochs} epochs in all)\n"
    )
    print(_common.markdown_table(rows) + "\n")
    for criterion, table in tables.items():
        print(
            f"### Sensitivity ({criterion}, validation accuracy, one layer pruned; "
            f"baseline {table.baseline:.4f})\n"
        )
        print(_common.markdown_table(table.rows()) + "\n")
    if FLAGS.plot:
        import matplotlib.figure

        fig = matplotlib.figure.Figure(figsize=(11, 4))
        for ax, table in zip(
            fig.subplots(1, len(tables)), tables.values(), strict=True
        ):
            tk.plot_sensitivity(table, ax=ax)
        fig.tight_layout()
        fig.savefig(FLAGS.plot, dpi=120)
        print(f"Sensitivity plot: {FLAGS.plot}\n")
    _common.write_json(
        FLAGS.json,
        {
            "banner": banner,
            "timing": timing,
            "dense_accuracy": dense_acc,
            "accuracy": rows,
            "sensitivity": {
                c: {
                    "baseline": t.baseline,
                    "sparsities": t.sparsities,
                    "scores": t.scores,
                }
                for c, t in tables.items()
            },
        },
    )


if __name__ == "__main__":
    app.run(main)
