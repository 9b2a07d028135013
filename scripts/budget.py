"""Size budgets on Fashion-MNIST: LeNet-5 and LeNet-300-100 at 10, 20, 50 and 100 KB.

Reproduces issue 10's table: each network is trained briefly in float (a few epochs,
seeded), then `tfedge.budget.analyze` measures every kernel's options (magnitude pruning
to 0-99%, then float, k-means sharing with 2-8 bits, or ternary) one layer at a time on
2,000 held-out training images, and `Analysis.plan` picks, per budget, the assignment
with the best measured accuracy whose packed file fits. There is NO fine-tuning after
pruning or sharing: these are one-shot numbers, a lower bound on what the Deep
Compression pipeline (`scripts/deep_compression.py`, with retraining) reaches.

Each row's accuracy is the packed file's, expanded by `tfedge.expand` and run in the
stock LiteRT interpreter on the 10,000 test images; "packed" is the file size in bytes,
equal to the planner's prediction (checked). A budget below a network's floor is
reported as such.

    python scripts/budget.py [--json budget.json] [--plot_dir DIR]
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    compile_classifier,
    lenet5,
    lenet300,
    load_fashion_mnist,
    markdown_table,
    print_banner,
    tflite_accuracy,
    write_json,
)
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("json", None, "Write the rows, the plans and the banner here.")
flags.DEFINE_string(
    "plot_dir", None, "Write the bytes-per-layer and trade-off PNGs here."
)
flags.DEFINE_list("models", ["lenet300", "lenet5"], "Networks: lenet300, lenet5.")
flags.DEFINE_list("budgets", ["10KB", "20KB", "50KB", "100KB"], "Budgets.")
flags.DEFINE_integer("epochs", 3, "Float training epochs.")
flags.DEFINE_integer("val_images", 2000, "Training images held out to plan on.")
flags.DEFINE_integer("batch_size", 128, "Training batch size.")
flags.DEFINE_integer("seed", 0, "Seed of weights, shuffling and k-means.")

NETS = {"lenet300": (lenet300, False), "lenet5": (lenet5, True)}
# Sparsities for these budgets: 10 KB of LeNet-5 needs about 99% of fc1 pruned.
SPARSITIES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99)


def summary(p) -> str:
    parts = []
    for c in p.choices:
        if c.coding == "lossless":
            continue
        parts.append(f"{c.layer} {c.coding}@{c.sparsity:.0%}")
    return ", ".join(parts)


def main(argv):
    del argv
    import keras

    import tfedge
    from tfedge.budget import analyze, parse_size, plot_breakdown, plot_tradeoff

    banner = print_banner(
        "tfedge.budget: Fashion-MNIST accuracy under a size budget "
        "(one-shot, no fine-tuning)",
        "python scripts/budget.py"
        + (f" --json {FLAGS.json}" if FLAGS.json else "")
        + (f" --plot_dir {FLAGS.plot_dir}" if FLAGS.plot_dir else ""),
    )
    budgets = [parse_size(b, name="--budgets") for b in FLAGS.budgets]
    rows, plans, curves = [], {}, {}
    for name in FLAGS.models:
        build, channels_last = NETS[name]
        (x_tr, y_tr), (x_te, y_te) = load_fashion_mnist(channels_last)
        rng = np.random.default_rng(FLAGS.seed)
        order = rng.permutation(len(x_tr))
        val, train = order[: FLAGS.val_images], order[FLAGS.val_images :]
        keras.utils.set_random_seed(FLAGS.seed)
        model = build(keras)
        compile_classifier(keras, model)
        t0 = time.time()
        model.fit(
            x_tr[train],
            y_tr[train],
            epochs=FLAGS.epochs,
            batch_size=FLAGS.batch_size,
            verbose=0,
        )
        train_s = time.time() - t0
        t0 = time.time()
        analysis = analyze(
            model, (x_tr[val], y_tr[val]), sparsities=SPARSITIES, seed=FLAGS.seed
        )
        # An unbounded budget keeps every float weight; it runs the sensitivity sweep.
        float_tflite = analysis.plan(10**9, curve_points=0).tflite
        analyze_s = time.time() - t0
        rows.append(
            dict(
                model=name,
                budget="float",
                packed=len(float_tflite),
                test_acc=tflite_accuracy(float_tflite, x_te, y_te),
                val_acc_planned=analysis.baseline,
                choices="float32 .tflite",
                seconds=round(train_s + analyze_s, 1),
            )
        )
        for budget in budgets:
            label = f"{budget / 1000:g} KB"
            t1 = time.time()
            try:
                p = analysis.plan(budget, curve_points=0)
            except ValueError as e:
                if "floor" not in str(e):
                    raise
                rows.append(
                    dict(
                        model=name,
                        budget=label,
                        packed=analysis.floor_bytes,
                        test_acc=float("nan"),
                        val_acc_planned=float("nan"),
                        choices=f"below the floor of {analysis.floor_bytes} bytes",
                        seconds=round(time.time() - t1, 1),
                    )
                )
                continue
            packed = p.apply()
            if len(packed) > p.predicted_bytes:
                raise AssertionError(
                    f"{name} {label}: packed {len(packed)} > predicted"
                )
            acc = tflite_accuracy(tfedge.expand(bytes(packed)), x_te, y_te)
            plans[f"{name}@{budget}"] = p.to_dict()
            rows.append(
                dict(
                    model=name,
                    budget=label,
                    packed=len(packed),
                    test_acc=acc,
                    val_acc_planned=p.measured,
                    choices=summary(p),
                    seconds=round(time.time() - t1, 1),
                )
            )
            if FLAGS.plot_dir and budget == budgets[len(budgets) // 2]:
                os.makedirs(FLAGS.plot_dir, exist_ok=True)
                plot_breakdown(p.breakdown(packed)).savefig(
                    os.path.join(FLAGS.plot_dir, f"budget_{name}_bytes.png"), dpi=120
                )
        curves[name] = analysis.tradeoff(8)
    if FLAGS.plot_dir and curves:
        fig = None
        for name, points in curves.items():
            fig = plot_tradeoff(
                points,
                ax=fig.axes[0] if fig else None,
                label=name,
                title="Fashion-MNIST: validation accuracy vs packed size",
            )
        fig.savefig(os.path.join(FLAGS.plot_dir, "budget_tradeoff.png"), dpi=120)
    print(
        markdown_table(
            rows,
            [
                "model",
                "budget",
                "packed",
                "test_acc",
                "val_acc_planned",
                "choices",
                "seconds",
            ],
        )
    )
    print(
        "\nfloat rows: `seconds` is training plus the analysis (sizes and sensitivity "
        "of "
        "every option); budget rows: planning, packing and testing that budget. "
        "val_acc_planned: the planner's measured accuracy on the held-out images."
    )
    write_json(
        FLAGS.json, {"banner": banner, "rows": rows, "plans": plans, "tradeoff": curves}
    )


if __name__ == "__main__":
    app.run(main)
