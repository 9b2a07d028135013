"""Sparse kernels (issue 22): pruned models run faster, not only smaller.

For each pruned model the same weights run two ways, on the same machine in the same
run, interleaved round by round so that both see the same load:

- dense: the pruned model's plain .tflite in the stock interpreter (XNNPACK, dense
  kernels: what `tfedge.expand(packed)` gives);
- sparse: the lossless tfedge-packed file in `tfedge.Interpreter` (sparse_kernels=True):
  the delegate runs the sparse layers with its own CSR / blocked-CSR kernels.

Models, trained on Fashion-MNIST (`apt-get install -y dataset-fashion-mnist`) and pruned
with `tfedge.keras.prune` (magnitude, one-shot to the target then fine-tuned),
unstructured (`block_size` (1, 1)) and in blocks ((1, 4) for the MLPs, (4, 1) for the
CNN):

- LeNet-300-100 (784-300-100-10) at 90/95/98% sparsity;
- a 4.2M-parameter MLP (784-2048-1280-10) at 90%;
- a MobileNet-style CNN (3x3 stem, depthwise 3x3 + 1x1 blocks) with only its 1x1
  convolutions pruned, at 80/90%.

Rows (`--json PATH` writes {"rows": [...], "layer_time": [...], "break_even": [...]}):
`model, sparsity, block, threads, batch, dense_us, sparse_us, speedup, accuracy`:
invoke latency medians (median over rounds of the median of `--repeats` invokes),
speedup = dense_us / sparse_us, accuracy = top-1 test accuracy of the pruned model
(the sparse run's; the script checks that the dense run of the same model agrees).

`layer_time` (LeNet-300-100, 1 thread, batch 1): the fully-connected layers' own time.
Sparse: the sparse operators' own timer (tfedge.runtime._native.sparse_stats). Dense:
the dense invoke minus the sparse run's time outside its sparse operators (the same
graph's softmax and the interpreter's fixed overhead), so both sides lose the same
overhead; a whole invoke of a ~20 us model is mostly that overhead.

`--break_even` (instead of the models): single 1024x1024 FULLY_CONNECTED layers with
random masks at several densities, 1 thread, batch 1 and 8, sparse forced on
(delegate option sparse_max_density=1): dense_us / sparse_us per density; the
break-even density in tfedge/runtime/cc/sparse_kernels.h (kBreakEvenDensity) comes
from this table.

The machine this runs on may be shared: ratios measured in the same run are the
numbers to read; absolute microseconds move with the load.

Usage: .venv/bin/python scripts/bench_sparse.py [--json PATH] [--quick | --break_even]
"""

from __future__ import annotations

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("json", None, "Write the results as JSON to this path.")
flags.DEFINE_bool("quick", False, "Fewer training examples and invokes (a smoke run).")
flags.DEFINE_bool(
    "break_even", False, "Measure the break-even density table instead of the models."
)
flags.DEFINE_integer("repeats", 100, "Invokes per timing round.")
flags.DEFINE_integer("rounds", 3, "Interleaved dense/sparse timing rounds.")

COLUMNS = [
    "model",
    "sparsity",
    "block",
    "threads",
    "batch",
    "dense_us",
    "sparse_us",
    "speedup",
    "accuracy",
]
THREADS = (1, 2)
BATCHES = (1, 8)
# Predictions of the dense and the sparse run of one model may differ only where two
# logits tie within float rounding (the sums' order differs): a handful of test images.
MAX_PREDICTION_DISAGREEMENT = 0.001


def _keras():
    import keras

    keras.utils.set_random_seed(0)
    return keras


def lenet300(keras):
    return _common.lenet300(keras)


def mlp4m(keras):
    """784-2048-1280-10: 4.2M weights."""
    return _common.mlp(keras, (2048, 1280), "mlp4m")


def mobilenet_style(keras):
    """A 3x3 stem then MobileNet blocks (depthwise 3x3 + ReLU, 1x1 conv + ReLU)."""
    layers = [
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="stem"),
    ]
    for i, (stride, width) in enumerate(
        [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256)]
    ):
        layers += [
            keras.layers.DepthwiseConv2D(
                3, strides=stride, padding="same", activation="relu", name=f"dw{i}"
            ),
            keras.layers.Conv2D(width, 1, activation="relu", name=f"pw{i}"),
        ]
    layers += [
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, name="logits"),
    ]
    return keras.Sequential(layers, name="mobilenet_style")


def _pointwise_only(layer):
    """Prune only the 1x1 convolutions."""
    import keras

    from tfedge.keras import ConstantSparsity

    if isinstance(layer, keras.layers.Conv2D) and tuple(layer.kernel_size) == (1, 1):
        return ConstantSparsity(_pointwise_only.sparsity, begin_step=0, frequency=10**9)
    return None


# name, builder, sparsities, block sizes, 1x1-only, channels-last input, dense epochs,
# fine-tune epochs, training examples. Blocks: (1, 4) for the MLPs (batch-1 products
# load four consecutive inputs at once), (4, 1) for the CNN (each input pixel's value
# feeds four output channels: four independent multiply-adds per load).
MODELS = [
    (
        "LeNet-300-100",
        lenet300,
        (0.90, 0.95, 0.98),
        ((1, 1), (1, 4)),
        False,
        False,
        3,
        1,
        None,
    ),
    ("MLP-4M", mlp4m, (0.90,), ((1, 1), (1, 4)), False, False, 1, 1, 30000),
    (
        "MobileNet-style CNN",
        mobilenet_style,
        (0.80, 0.90),
        ((1, 1), (4, 1)),
        True,
        True,
        2,
        1,
        20000,
    ),
]


def _convert(model) -> bytes:
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def _predict(interp, x, batch=500) -> np.ndarray:
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    preds = []
    for start in range(0, len(x), batch):
        xb = x[start : start + batch]
        interp.resize_tensor_input(inp["index"], [len(xb), *x.shape[1:]])
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], xb.astype(np.float32))
        interp.invoke()
        preds.append(np.array(interp.get_tensor(out["index"])))
    return np.concatenate(preds).argmax(-1)


def _timer(interp, x):
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x)
    interp.invoke()

    def once():
        interp.invoke()

    return once


def _interleaved(fns: dict, repeats: int, rounds: int) -> dict:
    """Median over rounds of each function's median time (us); rounds alternate."""
    per = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            per[k].append(_common.median_time(fn, repeats, warmup=5) * 1e6)
    return {k: statistics.median(v) for k, v in per.items()}


def _sparse_op_us(interp, x, repeats: int) -> float:
    """The sparse operators' own time per invoke (us), from their timer."""
    from tfedge.runtime import _native

    fn = _timer(interp, x)
    per = []
    for _ in range(repeats):
        before = _native.sparse_stats()["nanos"]
        fn()
        per.append((_native.sparse_stats()["nanos"] - before) / 1e3)
    return statistics.median(per)


def bench_model(
    name, build, sparsities, blocks, pointwise, channels_last, epochs, ft, n_train, data
):
    from ai_edge_litert import interpreter as litert

    import tfedge
    from tfedge.keras import ConstantSparsity

    keras = _keras()
    (x_tr, y_tr), (x_te, y_te) = data
    if n_train:
        x_tr, y_tr = x_tr[:n_train], y_tr[:n_train]
    if channels_last:
        x_tr, x_te = x_tr[..., None], x_te[..., None]
    model = build(keras)
    _common.compile_classifier(keras, model)
    model.fit(x_tr, y_tr, epochs=epochs, batch_size=128, verbose=0)
    rows, layer_time = [], []
    for sparsity in sparsities:
        for block in blocks:
            if pointwise:
                _pointwise_only.sparsity = sparsity
                schedule = _pointwise_only
            else:
                schedule = ConstantSparsity(sparsity, begin_step=0, frequency=10**9)
            pruned = tfedge.keras.prune(model, schedule=schedule, block_size=block)
            _common.compile_classifier(keras, pruned)
            pruned.fit(x_tr, y_tr, epochs=ft, batch_size=128, verbose=0)
            plain = _convert(tfedge.keras.strip(pruned))
            packed = bytes(tfedge.compress(plain, lossless=True))
            sparse_pred = _predict(tfedge.Interpreter(model_content=packed), x_te)
            dense_pred = _predict(litert.Interpreter(model_content=plain), x_te)
            disagree = float(np.mean(sparse_pred != dense_pred))
            if disagree > MAX_PREDICTION_DISAGREEMENT:
                raise RuntimeError(
                    f"{name} at {sparsity}: sparse and dense predictions disagree on "
                    f"{disagree:.2%} of the test set"
                )
            accuracy = float(np.mean(sparse_pred == y_te))
            for threads in THREADS:
                for batch in BATCHES:
                    x = x_te[:batch].astype(np.float32)
                    dense = litert.Interpreter(model_content=plain, num_threads=threads)
                    sparse = tfedge.Interpreter(
                        model_content=packed, num_threads=threads
                    )
                    t = _interleaved(
                        {"dense": _timer(dense, x), "sparse": _timer(sparse, x)},
                        FLAGS.repeats,
                        FLAGS.rounds,
                    )
                    row = {
                        "model": name,
                        "sparsity": sparsity,
                        "block": f"{block[0]}x{block[1]}",
                        "threads": threads,
                        "batch": batch,
                        "dense_us": t["dense"],
                        "sparse_us": t["sparse"],
                        "speedup": t["dense"] / t["sparse"],
                        "accuracy": accuracy,
                    }
                    rows.append(row)
                    print(_common.markdown_table([row], COLUMNS).splitlines()[-1])
                    if name == "LeNet-300-100" and threads == 1 and batch == 1:
                        op_us = _sparse_op_us(sparse, x, FLAGS.repeats * FLAGS.rounds)
                        outside = t["sparse"] - op_us
                        dense_fc = t["dense"] - outside
                        layer_time.append(
                            {
                                "model": name,
                                "sparsity": sparsity,
                                "block": row["block"],
                                "dense_fc_us": dense_fc,
                                "sparse_fc_us": op_us,
                                "fc_speedup": dense_fc / op_us,
                                "invoke_speedup": row["speedup"],
                            }
                        )
    return rows, layer_time


def break_even_table():
    from ai_edge_litert import interpreter as litert

    import tfedge
    from tfedge.runtime._interpreter import load_decode_delegate

    keras = _keras()
    rng = np.random.default_rng(0)
    out = []
    for block in ((1, 1), (1, 4)):
        for density in (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5):
            model = keras.Sequential([keras.Input((1024,)), keras.layers.Dense(1024)])
            k, b = model.layers[0].get_weights()
            keep = (
                rng.random((k.shape[0] // block[1], k.shape[1] // block[0])) < density
            )
            keep = np.repeat(np.repeat(keep, block[1], 0), block[0], 1)
            model.layers[0].set_weights(
                [np.where(keep, k, 0).astype(np.float32), b + 1]
            )
            plain = _convert(model)
            packed = bytes(tfedge.compress(plain, lossless=True))
            dense = litert.Interpreter(model_content=plain, num_threads=1)
            # Sparse at any density: the delegate's break-even bound lifted.
            forced = load_decode_delegate(sparse_max_density="1")
            sparse = litert.Interpreter(
                model_content=packed, experimental_delegates=[forced], num_threads=1
            )
            for batch in BATCHES:
                x = rng.standard_normal((batch, 1024)).astype(np.float32)
                t = _interleaved(
                    {"dense": _timer(dense, x), "sparse": _timer(sparse, x)},
                    FLAGS.repeats,
                    FLAGS.rounds,
                )
                row = {
                    "block": f"{block[0]}x{block[1]}",
                    "density": density,
                    "batch": batch,
                    "dense_us": t["dense"],
                    "sparse_us": t["sparse"],
                    "speedup": t["dense"] / t["sparse"],
                }
                out.append(row)
                print(_common.markdown_table([row]).splitlines()[-1])
    return out


def main(argv):
    del argv
    banner = _common.print_banner(
        "Sparse kernels: dense XNNPACK vs tfedge sparse (issue 22)",
        "scripts/bench_sparse.py"
        + (" --quick" if FLAGS.quick else "")
        + (" --break_even" if FLAGS.break_even else ""),
    )
    if FLAGS.quick:
        FLAGS.repeats, FLAGS.rounds = 20, 2
    payload = {"machine": banner, "rows": [], "layer_time": [], "break_even": []}
    if FLAGS.break_even:
        payload["break_even"] = break_even_table()
        _common.write_json(FLAGS.json, payload)
        return
    (x_tr, y_tr), test = _common.load_fashion_mnist()
    if FLAGS.quick:
        x_tr, y_tr = x_tr[:4000], y_tr[:4000]
    for name, build, sparsities, blocks, pointwise, last, epochs, ft, n in MODELS:
        start = time.time()
        rows, layer_time = bench_model(
            name,
            build,
            sparsities[:1] if FLAGS.quick else sparsities,
            blocks,
            pointwise,
            last,
            1 if FLAGS.quick else epochs,
            1 if FLAGS.quick else ft,
            n,
            ((x_tr, y_tr), test),
        )
        payload["rows"] += rows
        payload["layer_time"] += layer_time
        print(f"({name}: {time.time() - start:.0f} s)")
    print()
    print(_common.markdown_table(payload["rows"], COLUMNS))
    if payload["layer_time"]:
        print()
        print(_common.markdown_table(payload["layer_time"]))
    _common.write_json(FLAGS.json, payload)


if __name__ == "__main__":
    app.run(main)
