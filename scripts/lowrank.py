"""Low-rank factorization (Zhang et al. 2015) on Fashion-MNIST: accuracy, TFLite speed.

Reproduces, at small scale, the experiment of "Efficient and Accurate Approximations of
Nonlinear Convolutional Networks": a VGG-style network of 3 x 3 convolutions is trained,
then every conv (and the classifier) is replaced by its low-rank form at whole-model
multiply-add speed-up targets, with the ranks chosen by the paper's greedy selection on
the responses' PCA energy. At each target the same ranks are filled in by

- svd: truncated SVD of each kernel (weights alone),
- nonlinear: Zhang et al.'s post-ReLU reconstruction on calibration images,
- nonlinear+asym: the same, fitted to the already-factorized network's own inputs,

and each model is reported before and after a short fine-tuning: test accuracy, and the
latency of its float TFLite conversion on the stock LiteRT interpreter (XNNPack), median
of many invokes at 1 and 2 threads, all models measured interleaved in one run.

    python scripts/lowrank.py [--json lowrank.json] [--targets 2,3]
"""

from __future__ import annotations

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The nonlinear solver's matrix products are small (tens of thousands x d); on shared
# CPUs a multi-threaded BLAS only spins against the other processes.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    accuracy,
    command_line,
    compile_classifier,
    load_fashion_mnist,
    markdown_table,
    print_banner,
    to_tflite,
    write_json,
)
from absl import app, flags, logging  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("json", None, "Write the rows and the banner to this JSON file.")
flags.DEFINE_list("targets", ["2", "3"], "Whole-model multiply-add speed-up targets.")
flags.DEFINE_integer("width", 24, "Filters of the first conv (then 2x, 4x).")
flags.DEFINE_integer("train_images", 30000, "Training images for the original network.")
flags.DEFINE_integer("epochs", 2, "Training epochs of the original network.")
flags.DEFINE_integer("finetune_images", 10000, "Training images for each fine-tuning.")
flags.DEFINE_integer("finetune_epochs", 1, "Fine-tuning epochs of each factorized net.")
flags.DEFINE_float("finetune_lr", 3e-4, "Adam learning rate of the fine-tuning.")
flags.DEFINE_integer(
    "rank_multiple", 16, "Ranks are multiples of this (XNNPack's AVX-512 f32 tile)."
)
flags.DEFINE_integer("calibration", 500, "Training images used as calibration data.")
flags.DEFINE_integer("samples", 10000, "Response positions sampled per layer.")
flags.DEFINE_integer("rounds", 40, "Latency rounds (each times a block per model).")
flags.DEFINE_integer("block", 10, "Timed invokes per model per round.")
flags.DEFINE_integer("seed", 0, "Seed of weights, shuffling and sampling.")

METHODS = {
    "svd": dict(method="svd"),
    "nonlinear": dict(method="nonlinear", asymmetric=False),
    "nonlinear+asym": dict(method="nonlinear", asymmetric=True),
}


def vgg(keras, width: int):
    """Five 3x3 convs (width, 2w, 2w, 4w, 4w) around two max-pools, a classifier."""
    conv = keras.layers.Conv2D
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            conv(width, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.MaxPooling2D(name="pool1"),
            conv(2 * width, 3, padding="same", activation="relu", name="conv2"),
            conv(2 * width, 3, padding="same", activation="relu", name="conv3"),
            keras.layers.MaxPooling2D(name="pool2"),
            conv(4 * width, 3, padding="same", activation="relu", name="conv4"),
            conv(4 * width, 3, padding="same", activation="relu", name="conv5"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(10, name="fc"),
        ],
        name="vgg5",
    )


def latencies(contents: dict[str, bytes], threads: int, x, rounds: int, block: int):
    """Median seconds of one invoke of each model, measured in shuffled turns.

    The CPUs are shared, so each timed invoke follows a 1 ms sleep (the scheduler then
    runs this process on a fresh time slice) and the model order is shuffled every
    round, so preemption hits no model systematically.
    """
    runners = {}
    for name, content in contents.items():
        interpreter = Interpreter(model_content=content, num_threads=threads)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        for _ in range(5):
            interpreter.invoke()
        runners[name] = interpreter
    times = {name: [] for name in contents}
    order = list(runners)
    rng = np.random.default_rng(0)
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            interpreter = runners[name]
            for _ in range(block):
                time.sleep(0.001)
                t0 = time.perf_counter()
                interpreter.invoke()
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv):
    del argv
    import keras

    from tfedge.keras import factorize, multiply_adds, select_ranks

    command = command_line()
    banner = print_banner(
        "Low-rank factorization (Zhang et al. 2015) on Fashion-MNIST", command
    )
    targets = [float(t) for t in FLAGS.targets]
    keras.utils.set_random_seed(FLAGS.seed)
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(channels_last=True)
    rng = np.random.default_rng(FLAGS.seed)
    x_tune = x_train[FLAGS.train_images : FLAGS.train_images + FLAGS.finetune_images]
    y_tune = y_train[FLAGS.train_images : FLAGS.train_images + FLAGS.finetune_images]
    x_train, y_train = x_train[: FLAGS.train_images], y_train[: FLAGS.train_images]
    calib = x_train[rng.choice(len(x_train), FLAGS.calibration, replace=False)]

    started = time.time()
    original = compile_classifier(keras, vgg(keras, FLAGS.width), 1e-3)
    original.fit(x_train, y_train, epochs=FLAGS.epochs, batch_size=128, verbose=0)
    base_macs = sum(multiply_adds(original).values())
    base_acc = accuracy(original, x_test, y_test)
    logging.info(
        "original: accuracy %.4f, %d MACs (%.0fs)",
        base_acc,
        base_macs,
        time.time() - started,
    )

    # The baseline gets the same extra training as every factorized model, so that
    # acc_loss_pts measures the factorization, not the fine-tuning.
    baseline = keras.models.clone_model(original)
    baseline.set_weights(original.get_weights())
    compile_classifier(keras, baseline, FLAGS.finetune_lr)
    baseline.fit(
        x_tune, y_tune, epochs=FLAGS.finetune_epochs, batch_size=128, verbose=0
    )
    base_acc_ft = accuracy(baseline, x_test, y_test)
    rows = [
        dict(
            model="original",
            target="-",
            ranks="-",
            macs=base_macs,
            mac_speedup=1.0,
            acc=base_acc,
            acc_ft=base_acc_ft,
        )
    ]
    models = {"original": original}
    for target in targets:
        ranks = select_ranks(
            original,
            speedup=target,
            data=calib,
            rank_multiple=FLAGS.rank_multiple,
            samples=FLAGS.samples,
            seed=FLAGS.seed,
        )
        for label, kwargs in METHODS.items():
            t0 = time.time()
            model = factorize(
                original,
                ranks=ranks,
                data=calib,
                samples=FLAGS.samples,
                seed=FLAGS.seed,
                **kwargs,
            )
            solve_s = time.time() - t0
            macs = sum(multiply_adds(model).values())
            acc = accuracy(model, x_test, y_test)
            compile_classifier(keras, model, FLAGS.finetune_lr)
            model.fit(
                x_tune, y_tune, epochs=FLAGS.finetune_epochs, batch_size=128, verbose=0
            )
            acc_ft = accuracy(model, x_test, y_test)
            name = f"{label} @{target:g}x"
            models[name] = model
            rows.append(
                dict(
                    model=label,
                    target=f"{target:g}x",
                    ranks=" ".join(f"{k}:{v}" for k, v in ranks.items()),
                    macs=macs,
                    mac_speedup=base_macs / macs,
                    acc=acc,
                    acc_ft=acc_ft,
                    factorize_s=solve_s,
                )
            )
            logging.info(
                "%s: accuracy %.4f -> %.4f after fine-tuning (%.0fs total)",
                name,
                acc,
                acc_ft,
                time.time() - started,
            )

    contents = {name: to_tflite(m) for name, m in models.items()}
    sample = x_test[:1]
    for name, content in contents.items():
        interpreter = Interpreter(model_content=content)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], sample)
        interpreter.invoke()
        got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        drift = float(np.max(np.abs(got - models[name].predict(sample, verbose=0))))
        if drift > 1e-3:
            raise RuntimeError(f"TFLite output of {name!r} drifts by {drift:g}")
    load = {"before": os.getloadavg()[0]}
    for threads in (1, 2):
        timing = latencies(contents, threads, sample, FLAGS.rounds, FLAGS.block)
        for row, name in zip(rows, contents, strict=True):
            row[f"ms_{threads}t"] = timing[name] * 1e3
            row[f"speedup_{threads}t"] = timing["original"] / timing[name]
    load["after"] = os.getloadavg()[0]
    for row, name in zip(rows, contents, strict=True):
        row["tflite_kb"] = len(contents[name]) / 1024
        row["acc_loss_pts"] = 100 * (base_acc_ft - row["acc_ft"])

    columns = [
        "model",
        "target",
        "mac_speedup",
        "acc",
        "acc_ft",
        "acc_loss_pts",
        "ms_1t",
        "speedup_1t",
        "ms_2t",
        "speedup_2t",
        "tflite_kb",
        "ranks",
    ]
    print(markdown_table(rows, columns))
    print(
        f"\nacc: test accuracy (10,000 images) right after factorizing; acc_ft: after "
        f"{FLAGS.finetune_epochs} epoch(s) of fine-tuning on {FLAGS.finetune_images} "
        f"other training images (Adam {FLAGS.finetune_lr:g}), the original included "
        f"(it trained {FLAGS.epochs} epochs on {FLAGS.train_images} images first); "
        f"acc_loss_pts: points below the fine-tuned original. ms: median per-invoke "
        f"latency of the float .tflite (LiteRT, XNNPack), {FLAGS.rounds} rounds x "
        f"{FLAGS.block} single timed invokes per model, shuffled turns; 1-minute load "
        f"average "
        f"{load['before']:.1f} before, {load['after']:.1f} after on "
        f"{os.cpu_count()} CPUs. Ranks (multiples of {FLAGS.rank_multiple}) chosen "
        f"once "
        f"per target by the greedy PCA-energy selection on the original's responses "
        f"and shared by the three methods; calibration: {FLAGS.calibration} training "
        f"images. Total {time.time() - started:.0f}s."
    )
    write_json(
        FLAGS.json,
        {"banner": banner, "command": command, "load": load, "rows": rows},
    )


if __name__ == "__main__":
    app.run(main)
