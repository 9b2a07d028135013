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
- a MobileNet-style CNN (3x3 stem, depthwise 3x3 + 1x1 blocks, batch normalisation
  and ReLU after every convolution; 2 epochs on 8000 training images) with only its
  1x1 convolutions pruned, at 80/90%.

Rows (`--json PATH` writes {"rows", "layer_time", "cnn_profile", "break_even"}):
`model, sparsity, block, threads, batch, dense_us, sparse_us, speedup, accuracy,
dense_accuracy`: invoke latency medians (median over rounds of the median of
`--repeats` invokes), speedup = dense_us / sparse_us; accuracy = top-1 test accuracy of
the pruned model run sparse (tfedge.Interpreter), dense_accuracy = the same pruned
model run dense (its plain .tflite, XNNPACK); the script stops if the two runs'
predictions disagree on more than MAX_PREDICTION_DISAGREEMENT of the test set.

`layer_time` (LeNet-300-100, 1 thread, batch 1): the fully-connected layers' own
time, which a whole invoke of a ~20 us model hides under the interpreter's fixed
overhead. The pruned model's three FULLY_CONNECTED layers (same weights, fused ReLUs)
are rebuilt as a model of their chain alone. Sparse: `sparse_fc_us` is the sparse
operators' own timer (tfedge.runtime._native.sparse_stats), median per invoke. Dense:
XNNPACK runs the chain as one delegate node, so its FC time is the chain's invoke
minus `fixed_invoke_us`, the invoke of the smallest such model (one 784x1
FULLY_CONNECTED layer, XNNPACK, same interpreter), which leaves the interpreter's
fixed cost out and counts XNNPACK's own per-invoke work as FC time, as TFLite's op
profiler would (the delegate node's time). `invoke_speedup` is the whole model's
batch-1 invoke (its row in `rows`). (An earlier version took the slope over parallel
copies of the chain; the converter rewrote the copies, 9 copies of 3 layers became
20 FULLY_CONNECTED and 8 ADD operators, so the slope did not measure the chain.)

`cnn_profile` (the CNN, 1 thread, batch 1): how much of the dense invoke the 1x1
convolutions are, hence the most any 1x1 kernel can give end to end (Amdahl): see
pointwise_share.

`--break_even` (instead of the models): single 1024x1024 FULLY_CONNECTED layers
(batch 1 and 8) and single 1x1 convolutions of the CNN's shapes (batch 1) with random
masks at several densities, 1 thread, sparse forced on (delegate option
sparse_max_density=1): dense_us / sparse_us per density; the break-even densities in
tfedge/runtime/cc/sparse_kernels.h (kBreakEvenDensity, kConvBreakEvenDensity) come
from this table.

The machine this runs on may be shared: ratios measured in the same run are the
numbers to read; absolute microseconds move with the load.

Usage: .venv/bin/python scripts/bench_sparse.py [--json PATH] [--quick | --break_even]
       [--models NAME]
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
flags.DEFINE_string(
    "models", None, "Only the models with a word starting so (e.g. LeNet, MLP, CNN)."
)

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
    "dense_accuracy",
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
    """A 3x3 stem then MobileNet blocks (depthwise 3x3, 1x1 conv), each convolution
    followed by batch normalisation and ReLU (the converter folds both into the
    convolution: pruned zeros stay zero). Momentum 0.9: with the default 0.99 the
    moving statistics of a few hundred training steps are still far from the data's,
    and the trained model ran at chance."""

    def conv_bn(layer, name):
        return [
            layer,
            keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn"),
            keras.layers.ReLU(name=f"{name}_relu"),
        ]

    layers = [keras.Input((28, 28, 1))]
    layers += conv_bn(
        keras.layers.Conv2D(32, 3, padding="same", use_bias=False, name="stem"), "stem"
    )
    for i, (stride, width) in enumerate(
        [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256)]
    ):
        layers += conv_bn(
            keras.layers.DepthwiseConv2D(
                3, strides=stride, padding="same", use_bias=False, name=f"dw{i}"
            ),
            f"dw{i}",
        )
        layers += conv_bn(
            keras.layers.Conv2D(width, 1, use_bias=False, name=f"pw{i}"), f"pw{i}"
        )
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
        8000,
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


def _fc_chain(keras, stripped) -> bytes:
    """The Dense layers of `stripped` (same weights and activations) as a model of
    their chain alone."""
    dense = [
        layer for layer in stripped.layers if isinstance(layer, keras.layers.Dense)
    ]
    inp = keras.Input((dense[0].get_weights()[0].shape[0],))
    h = inp
    for layer in dense:
        clone = keras.layers.Dense(layer.units, activation=layer.activation)
        h = clone(h)
        clone.set_weights(layer.get_weights())
    return _convert(keras.Model(inp, h))


def _fixed_model(keras, inputs: int) -> bytes:
    """The smallest FC model on the same input: its invoke is the fixed cost."""
    inp = keras.Input((inputs,))
    return _convert(keras.Model(inp, keras.layers.Dense(1)(inp)))


def fc_layer_time(keras, stripped, x) -> dict:
    """The FC layers' own time per invoke (us), dense XNNPACK and tfedge sparse, 1
    thread, batch 1 (module doc)."""
    from ai_edge_litert import interpreter as litert

    import tfedge

    x = x.reshape(len(x), -1)
    plain = _fc_chain(keras, stripped)
    packed = bytes(tfedge.compress(plain, lossless=True))
    dense = litert.Interpreter(model_content=plain, num_threads=1)
    sparse = tfedge.Interpreter(model_content=packed, num_threads=1)
    fixed = litert.Interpreter(
        model_content=_fixed_model(keras, x.shape[1]), num_threads=1
    )
    fns = {
        "dense": _timer(dense, x),
        "sparse": _timer(sparse, x),
        "fixed": _timer(fixed, x),
    }
    t = _interleaved(fns, FLAGS.repeats * 2, FLAGS.rounds)
    sparse_fc = _sparse_op_us(sparse, x, FLAGS.repeats * FLAGS.rounds)
    dense_fc = t["dense"] - t["fixed"]
    return {
        "dense_fc_us": dense_fc,
        "sparse_fc_us": sparse_fc,
        "fc_speedup": dense_fc / sparse_fc,
        "fixed_invoke_us": t["fixed"],
        "dense_chain_invoke_us": t["dense"],
        "sparse_chain_invoke_us": t["sparse"],
    }


def pointwise_share(plain, packed, x, dense_us) -> dict:
    """The Amdahl bound of the CNN: every 1x1 conv forced sparse (sparse_max_density
    =1), the invoke minus the sparse operators' own time is what sparse kernels cannot
    touch (depthwise and stem convs, pooling, the logits, the fixed overhead), the
    same ops as in the dense run; `amdahl_bound` = dense_us / that."""
    from ai_edge_litert import interpreter as litert

    from tfedge.runtime._interpreter import load_decode_delegate

    forced = litert.Interpreter(
        model_content=packed,
        num_threads=1,
        experimental_delegates=[load_decode_delegate(sparse_max_density="1")],
    )
    t = _interleaved({"forced": _timer(forced, x)}, FLAGS.repeats, FLAGS.rounds)
    op_us = _sparse_op_us(forced, x, FLAGS.repeats * FLAGS.rounds)
    other = t["forced"] - op_us
    return {
        "dense_us": dense_us,
        "forced_sparse_us": t["forced"],
        "forced_pointwise_us": op_us,
        "other_us": other,
        "pointwise_share": (dense_us - other) / dense_us,
        "amdahl_bound": dense_us / other,
    }


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
    rows, layer_time, profile = [], [], []
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
            dense_accuracy = float(np.mean(dense_pred == y_te))
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
                        "dense_accuracy": dense_accuracy,
                    }
                    rows.append(row)
                    print(_common.markdown_table([row], COLUMNS).splitlines()[-1])
                    if name == "LeNet-300-100" and threads == 1 and batch == 1:
                        fc = fc_layer_time(keras, tfedge.keras.strip(pruned), x)
                        layer_time.append(
                            {
                                "model": name,
                                "sparsity": sparsity,
                                "block": row["block"],
                                **fc,
                                "invoke_speedup": row["speedup"],
                                "accuracy": accuracy,
                            }
                        )
                    if pointwise and threads == 1 and batch == 1:
                        profile.append(
                            {
                                "model": name,
                                "sparsity": sparsity,
                                "block": row["block"],
                                **pointwise_share(plain, packed, x, t["dense"]),
                            }
                        )
    return rows, layer_time, profile


def _break_even_rows(label, build, shape, densities, blocks, batches):
    """dense_us / sparse_us of one-layer models `build(mask)` at each density."""
    from ai_edge_litert import interpreter as litert

    import tfedge
    from tfedge.runtime._interpreter import load_decode_delegate

    rng = np.random.default_rng(0)
    out = []
    for block in blocks:
        for density in densities:
            plain = _convert(build(rng, density, block))
            packed = bytes(tfedge.compress(plain, lossless=True))
            dense = litert.Interpreter(model_content=plain, num_threads=1)
            # Sparse at any density: the delegate's break-even bound lifted.
            forced = load_decode_delegate(sparse_max_density="1")
            sparse = litert.Interpreter(
                model_content=packed, experimental_delegates=[forced], num_threads=1
            )
            for batch in batches:
                x = rng.standard_normal((batch, *shape)).astype(np.float32)
                t = _interleaved(
                    {"dense": _timer(dense, x), "sparse": _timer(sparse, x)},
                    FLAGS.repeats,
                    FLAGS.rounds,
                )
                row = {
                    "layer": label,
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


def _masked(keras, layer, inputs, rng, density, block):
    """A one-layer model whose kernel keeps `density` of its blocks at random; block
    (a, b) is a outputs x b inputs of TFLite's [out, in] weights."""
    model = keras.Sequential([keras.Input(inputs), layer])
    k, b = model.layers[0].get_weights()
    k2 = k.reshape(-1, k.shape[-1])  # [in, out]
    keep = rng.random((k2.shape[0] // block[1], k2.shape[1] // block[0])) < density
    keep = np.repeat(np.repeat(keep, block[1], 0), block[0], 1)
    model.layers[0].set_weights([np.where(keep, k2, 0).reshape(k.shape), b + 1])
    return model


def break_even_table():
    keras = _keras()
    out = _break_even_rows(
        "FC 1024x1024",
        lambda rng, d, blk: _masked(
            keras, keras.layers.Dense(1024), (1024,), rng, d, blk
        ),
        (1024,),
        (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5),
        ((1, 1), (1, 4)),
        BATCHES,
    )
    # 1x1 convolutions over many pixels (sparse_kernels.h kConvBreakEvenDensity): the
    # CNN's shapes, batch 1.
    for side, cin, cout in ((7, 256, 256), (14, 128, 128), (28, 32, 64)):
        out += _break_even_rows(
            f"1x1 conv {side}x{side}x{cin}->{cout}",
            lambda rng, d, blk, cin=cin, cout=cout, side=side: _masked(
                keras, keras.layers.Conv2D(cout, 1), (side, side, cin), rng, d, blk
            ),
            (side, side, cin),
            (0.05, 0.1, 0.15, 0.2, 0.3),
            ((1, 1), (4, 1)),
            (1,),
        )
    return out


def main(argv):
    del argv
    banner = _common.print_banner(
        "Sparse kernels: dense XNNPACK vs tfedge sparse (issue 22)",
        "scripts/bench_sparse.py"
        + (" --quick" if FLAGS.quick else "")
        + (" --break_even" if FLAGS.break_even else "")
        + (f" --models {FLAGS.models}" if FLAGS.models else ""),
    )
    if FLAGS.quick:
        FLAGS.repeats, FLAGS.rounds = 20, 2
    payload = {
        "machine": banner,
        "rows": [],
        "layer_time": [],
        "cnn_profile": [],
        "break_even": [],
    }
    if FLAGS.break_even:
        payload["break_even"] = break_even_table()
        _common.write_json(FLAGS.json, payload)
        return
    (x_tr, y_tr), test = _common.load_fashion_mnist()
    if FLAGS.quick:
        x_tr, y_tr = x_tr[:4000], y_tr[:4000]
    for name, build, sparsities, blocks, pointwise, last, epochs, ft, n in MODELS:
        words = name.lower().split()
        if FLAGS.models and not any(w.startswith(FLAGS.models.lower()) for w in words):
            continue
        start = time.time()
        rows, layer_time, profile = bench_model(
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
        payload["cnn_profile"] += profile
        print(f"({name}: {time.time() - start:.0f} s)")
    print()
    print(_common.markdown_table(payload["rows"], COLUMNS))
    for key in ("layer_time", "cnn_profile"):
        if payload[key]:
            print()
            print(_common.markdown_table(payload[key]))
    _common.write_json(FLAGS.json, payload)


if __name__ == "__main__":
    app.run(main)
