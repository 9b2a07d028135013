"""Deep Compression (Han, Mao and Dally 2016) on Fashion-MNIST vs tfmot and int8 PTQ.

Reproduces the LeNet rows of the paper's tables 1-3 on Fashion-MNIST (the Debian package
`dataset-fashion-mnist`) instead of MNIST: LeNet-300-100 and LeNet-5 (Caffe's), each
trained in float, then `tfedge.deep_compress`: iterative pruning with retraining to
per-layer sparsities, trained weight sharing (5 bits fc; 7 bits for the pruned convs,
the most whose values and zero fit the packed codebook; centroids fine-tuned), then
lossless packing (sparse relative index + Huffman).

The per-layer sparsities are flags (--lenet300_sparsity, --lenet5_sparsity), set by
hand as in the paper, guided by `tfedge.keras.sensitivity` on these nets: one-shot
pruning loses the least in the big fully-connected layer and the most in the small
first and last layers. Pass an empty flag to let `deep_compress` choose them from its
own sensitivity analysis (`--max_loss`): with one loss budget for every layer that
choice keeps more of fc1 than the hand-picked values do, so the files are larger.

Rows per network, all on the 10,000 test images, .tflite files in the stock LiteRT
interpreter (the packed one after `tfedge.expand`):

- float: the float32 .tflite;
- pruned, shared: the Keras model after each stage, its size in the paper's accounting
  (sparse values with a fixed-width relative index; then fixed-width codebook indices);
- tfedge: the packed file (pruned + shared + Huffman);
- tfedge-hessian, tfedge-ecsq: the same pipeline (same float model, same sparsities)
  with the k-means of weight sharing replaced by Hessian-weighted k-means or by
  entropy-constrained scalar quantization (Choi et al. 2017; `deep_compress(method=)`;
  ECSQ's lambda searched per layer to an index entropy of --ecsq_target_bits, default
  bits - 2 per kept weight); the packed file; --block_size=1,4 prunes blocks of four
  consecutive inputs instead of single weights in every row of tfedge's pipeline;
- tfmot: in the same run, from the same float weights (copied into a tf_keras model):
  90% pruning (PolynomialDecay), sparsity-preserving clustering with 16 clusters, then
  (variant "+CQAT") cluster- and sparsity-preserving quantization-aware training, int8
  conversion, then gzip -9 of the .tflite; the best variant is the JSON row "tfmot";
- tflite-int8: TFLite full-integer post-training quantization of the float model (the
  plain .tflite file; its gzip -9 size is shown too).

`--models=resnet20` adds the ResNet-20 of scripts/ternary.py (trained the same way:
batch norms, cosine-decayed learning rate, --resnet_epochs on the first
--resnet_train_images images). `deep_compress` prunes and retrains it with its batch
norms, then folds them into the convolutions (`tfedge.keras.fold_batch_norm`) before
weight sharing, so that the shared values are the .tflite's values (the converter would
fold them anyway, scaling each output channel's values apart); its per-layer
sparsities are --resnet20_sparsity (names or fnmatch patterns: 's3*=0.93', '*' for
every layer not named or matched); --resnet_float saves the trained float model, or
loads it, so that several runs compress the same one. tfmot's pipeline starts from the
folded float model.

Bytes are whole files; the ratio is the float32 weights (4 x parameters) over the bytes
(for the ResNet, the folded model's parameters: kernels and one bias per channel, the
weights of its float .tflite).
The float model's training is seeded, but TensorFlow on CPU is not bit-reproducible
across thread schedules, so accuracies move by about 0.1-0.3 points between runs.

    python scripts/deep_compression.py [--json deep_compression.json]
        [--models lenet300,lenet5,resnet20]
"""

from __future__ import annotations

import gzip
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    accuracy,
    command_line,
    compile_classifier,
    convert_quiet,
    layer_values,
    lenet5,
    lenet300,
    load_fashion_mnist,
    markdown_table,
    print_banner,
    resnet,
    tflite_accuracy,
    to_tflite,
    write_json,
)
from absl import app, flags, logging  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("json", None, "Write the rows (and per-layer rows, banner) here.")
flags.DEFINE_list(
    "models", ["lenet300", "lenet5"], "Networks: lenet300, lenet5, resnet20."
)
flags.DEFINE_integer("epochs", 6, "Float training epochs of the LeNets.")
flags.DEFINE_integer(
    "resnet_epochs",
    3,
    "Float training epochs of the ResNet (cosine-decayed learning rate, as in "
    "scripts/ternary.py).",
)
flags.DEFINE_integer(
    "resnet_train_images",
    20000,
    "Training images for the ResNet (the first ones; the validation images are the "
    "last --val_images, as for the LeNets).",
)
flags.DEFINE_string(
    "resnet_float",
    None,
    "A .keras file for the trained float ResNet: loaded when it exists, else written "
    "after training (so that several runs compress the same float model).",
)
flags.DEFINE_integer("prune_epochs", 6, "tfedge pruning + retraining epochs.")
flags.DEFINE_integer("prune_rounds", 3, "tfedge iterative pruning rounds.")
flags.DEFINE_integer("share_epochs", 2, "tfedge centroid fine-tuning epochs.")
flags.DEFINE_float(
    "prune_learning_rate", 5e-4, "tfedge pruning + retraining learning rate (Adam)."
)
flags.DEFINE_float(
    "share_learning_rate", 1e-4, "tfedge centroid fine-tuning learning rate (Adam)."
)
flags.DEFINE_float(
    "max_loss",
    0.03,
    "One-shot accuracy drop allowed per layer when "
    "choosing sparsities from the sensitivity analysis.",
)
flags.DEFINE_string(
    "lenet300_sparsity",
    "fc1=0.95,fc2=0.9,fc3=0.7",
    "Per-layer sparsity of LeNet-300-100 (layer=value,...); empty: chosen by "
    "sensitivity analysis with --max_loss.",
)
flags.DEFINE_string(
    "lenet5_sparsity",
    "conv1=0.5,conv2=0.9,fc1=0.96,fc2=0.8",
    "Per-layer sparsity of LeNet-5; empty: chosen by sensitivity analysis.",
)
flags.DEFINE_string(
    "resnet20_sparsity",
    "*=0.9,conv1=0.5,fc=0.5",
    "Per-layer sparsity of the ResNet-20 (layer or fnmatch pattern=value,...; a layer "
    "takes its own value, else the first pattern it matches, '*' last); empty: chosen "
    "by sensitivity analysis.",
)
flags.DEFINE_list(
    "methods",
    ["kmeans", "hessian", "ecsq"],
    "Weight-sharing methods of deep_compress: kmeans (rows float..tfedge), hessian "
    "(row tfedge-hessian), ecsq (row tfedge-ecsq).",
)
flags.DEFINE_float(
    "ecsq_target_bits",
    None,
    "ECSQ: index entropy per kept weight (every layer); default bits - 2 per layer.",
)
flags.DEFINE_list(
    "block_size",
    ["1", "1"],
    "tfedge pruning granularity, deep_compress(block_size=): 1,1 single weights; 1,4 "
    "blocks of four consecutive inputs of one unit (one long gap and three zero gaps "
    "per block in the relative index, so fewer index bits per kept weight).",
)
flags.DEFINE_integer("tfmot_prune_epochs", 4, "tfmot pruning epochs.")
flags.DEFINE_integer("tfmot_cluster_epochs", 1, "tfmot clustering epochs.")
flags.DEFINE_integer("tfmot_qat_epochs", 1, "tfmot CQAT epochs (0: skip the variant).")
flags.DEFINE_float("tfmot_sparsity", 0.9, "tfmot's pruning sparsity (every layer).")
flags.DEFINE_bool("tfmot", True, "Run the tfmot and int8 PTQ pipelines too.")
flags.DEFINE_integer("val_images", 5000, "Training images held out for validation.")
flags.DEFINE_integer("batch_size", 128, "Training batch size.")
flags.DEFINE_integer("seed", 0, "Seed of weights, shuffling and sampling.")


def resnet20(keras):
    """The ResNet-20 of scripts/ternary.py without batch norms (each folded into the
    convolution before it, `tfedge.keras.fold_batch_norm`): tfmot's copy of the folded
    float model."""
    return resnet(keras, 20, batch_norm=False)


NETS = {
    "lenet300": (lenet300, False),
    "lenet5": (lenet5, True),
    "resnet20": (resnet20, True),
}
METHODS = ("kmeans", "hessian", "ecsq")
# The JSON row of the tfmot pipeline is its smallest variant whose accuracy is within
# this of the float model (the "no accuracy loss" budget); else its most
# accurate one.
ACCURACY_BUDGET = 0.005


def parse_sparsity(text: str, layers: list[str]) -> dict[str, float] | None:
    """The per-layer sparsity flag as a dict (`_common.layer_values`); '' -> None
    (sensitivity analysis)."""
    try:
        return layer_values(text, layers)
    except ValueError as e:
        raise app.UsageError(str(e)) from e


def prunable(model) -> list[str]:
    """Names of the model's Dense and convolution layers."""
    import keras

    kinds = (keras.layers.Dense, keras.layers.Conv2D)
    return [layer.name for layer in model.layers if isinstance(layer, kinds)]


def train_float(keras, name: str, builder, x_tr, y_tr):
    """The trained float model: the LeNets at a constant learning rate for --epochs;
    the ResNet as in scripts/ternary.py (batch norms, cosine decay, --resnet_epochs on
    --resnet_train_images)."""
    keras.utils.set_random_seed(FLAGS.seed)
    if name != "resnet20":
        model = builder(keras)
        compile_classifier(keras, model)
        model.fit(
            x_tr, y_tr, batch_size=FLAGS.batch_size, epochs=FLAGS.epochs, verbose=0
        )
        return model
    path = FLAGS.resnet_float
    if path and os.path.exists(path):
        logging.info("%s: float model loaded from %s", name, path)
        return keras.models.load_model(path)
    steps = -(-len(x_tr) // FLAGS.batch_size) * FLAGS.resnet_epochs
    trained = resnet(keras, 20)
    compile_classifier(
        keras, trained, keras.optimizers.schedules.CosineDecay(1e-3, steps)
    )
    trained.fit(
        x_tr, y_tr, batch_size=FLAGS.batch_size, epochs=FLAGS.resnet_epochs, verbose=0
    )
    if path:
        trained.save(path)
    return trained


def gzip9(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def int8_ptq(model, x_train) -> bytes:
    rng = np.random.default_rng(FLAGS.seed)
    return to_tflite(
        model, int8_from=x_train[rng.choice(len(x_train), 200, replace=False)]
    )


def tf_keras_copy(model, builder):
    """The same network in tf_keras (tfmot's Keras), with the float model's weights."""
    import tf_keras

    clone = builder(tf_keras)
    clone.set_weights(model.get_weights())
    return clone


def tfmot_pipelines(model, builder, data, steps_per_epoch: int) -> list[dict]:
    """tfmot prune -> sparsity-preserving cluster (-> CQAT) -> int8 -> gzip -9."""
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras

    (x_tr, y_tr), (x_te, y_te) = data
    loss = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    base = tf_keras_copy(model, builder)
    end = FLAGS.tfmot_prune_epochs * steps_per_epoch
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=FLAGS.tfmot_sparsity,
        begin_step=0,
        end_step=int(end * 0.75) // 100 * 100 or 100,
        frequency=100,
    )
    pruned = tfmot.sparsity.keras.prune_low_magnitude(base, pruning_schedule=schedule)
    pruned.compile(tf_keras.optimizers.Adam(5e-4), loss=loss, metrics=["accuracy"])
    pruned.fit(
        x_tr,
        y_tr,
        batch_size=FLAGS.batch_size,
        epochs=FLAGS.tfmot_prune_epochs,
        verbose=0,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
    )
    pruned = tfmot.sparsity.keras.strip_pruning(pruned)

    cluster = tfmot.clustering.keras
    clustered = cluster.cluster_weights(
        pruned,
        number_of_clusters=16,
        cluster_centroids_init=cluster.CentroidInitialization.KMEANS_PLUS_PLUS,
        preserve_sparsity=True,
    )
    clustered.compile(tf_keras.optimizers.Adam(1e-4), loss=loss, metrics=["accuracy"])
    clustered.fit(
        x_tr,
        y_tr,
        batch_size=FLAGS.batch_size,
        epochs=FLAGS.tfmot_cluster_epochs,
        verbose=0,
    )
    clustered = cluster.strip_clustering(clustered)

    rows = []

    def add(name, keras_model):
        conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        blob = convert_quiet(conv)
        rows.append(
            {
                "variant": name,
                "accuracy": tflite_accuracy(blob, x_te, y_te),
                "tflite_bytes": len(blob),
                "bytes": gzip9(blob),
            }
        )

    add("prune 90% + cluster 16 (sparsity-preserving) + int8 + gzip -9", clustered)
    if FLAGS.tfmot_qat_epochs:
        from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.cluster_preserve import (  # noqa: E501
            default_8bit_cluster_preserve_quantize_scheme as cqat,
        )

        annotated = tfmot.quantization.keras.quantize_annotate_model(clustered)
        qat = tfmot.quantization.keras.quantize_apply(
            annotated,
            cqat.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True),
        )
        qat.compile(tf_keras.optimizers.Adam(1e-4), loss=loss, metrics=["accuracy"])
        qat.fit(
            x_tr,
            y_tr,
            batch_size=FLAGS.batch_size,
            epochs=FLAGS.tfmot_qat_epochs,
            verbose=0,
        )
        add("prune 90% + cluster 16 + CQAT (sparsity-preserving) + int8 + gzip -9", qat)
    return rows


def deep_compress(*args, **kwargs):
    """`tfedge.deep_compress` (its private module until the public name is listed)."""
    import tfedge

    try:
        fn = tfedge.deep_compress
    except AttributeError:
        from tfedge._deep_compress import deep_compress as fn
    return fn(*args, **kwargs)


def run_net(name: str, data_all):
    import keras

    import tfedge
    import tfedge.keras as tk

    builder, channels_last = NETS[name]
    (x_all, y_all), (x_te, y_te) = data_all
    if channels_last:
        x_all, x_te = x_all[..., None], x_te[..., None]
    n_val = FLAGS.val_images
    x_tr, y_tr = x_all[:-n_val], y_all[:-n_val]
    x_val, y_val = x_all[-n_val:], y_all[-n_val:]
    if name == "resnet20":
        x_tr, y_tr = (
            x_tr[: FLAGS.resnet_train_images],
            y_tr[: FLAGS.resnet_train_images],
        )
    steps = int(np.ceil(len(x_tr) / FLAGS.batch_size))

    t0 = time.perf_counter()
    model = train_float(keras, name, builder, x_tr, y_tr)
    logging.info("%s: float trained in %.0f s", name, time.perf_counter() - t0)
    # The float model as converted: batch norms folded into the convolutions (the
    # ratio's float32 weights, tfmot's starting point); deep_compress gets `model`.
    plain = tk.fold_batch_norm(model) if tk.foldable_batch_norms(model) else model
    weight_bytes = 4 * sum(int(np.prod(w.shape)) for w in plain.weights)

    float_tflite = to_tflite(plain)

    def keras_acc(m) -> float:
        return accuracy(m, x_te, y_te, batch_size=1000)

    rows = []
    extra = []
    layers = []
    results = {}
    for method in FLAGS.methods:
        t0 = time.perf_counter()
        result = deep_compress(
            model,
            (x_tr, y_tr),
            (x_val, y_val),
            sparsity=parse_sparsity(
                getattr(FLAGS, f"{name}_sparsity"), prunable(plain)
            ),
            max_loss=FLAGS.max_loss,
            prune_rounds=FLAGS.prune_rounds,
            prune_epochs=FLAGS.prune_epochs,
            share_epochs=FLAGS.share_epochs,
            prune_learning_rate=FLAGS.prune_learning_rate,
            share_learning_rate=FLAGS.share_learning_rate,
            batch_size=FLAGS.batch_size,
            seed=FLAGS.seed,
            method=method,
            target_bits=FLAGS.ecsq_target_bits if method == "ecsq" else None,
            block_size=tuple(int(b) for b in FLAGS.block_size),
        )
        logging.info(
            "%s: deep_compress(method=%r) in %.0f s",
            name,
            method,
            time.perf_counter() - t0,
        )
        results[method] = result
        layers += _layer_rows(name, method, result)
        final = tflite_accuracy(tfedge.expand(bytes(result)), x_te, y_te)
        # Each method's result as soon as it is known: a long run cut short still
        # leaves its finished rows in the log.
        logging.info(
            "%s %s: test accuracy %.4f, %d bytes, %.1fx\n%s",
            name,
            method,
            final,
            len(result),
            weight_bytes / len(result),
            result.table(),
        )
        if method != "kmeans":
            rows.append(
                {
                    "model": name,
                    "method": f"tfedge-{method}",
                    "accuracy": final,
                    "bytes": len(result),
                    "ratio": weight_bytes / len(result),
                }
            )
            continue
        stage_accuracy = {
            "float": tflite_accuracy(float_tflite, x_te, y_te),
            "pruned": keras_acc(result.stage_models["pruned"]),
            "shared": keras_acc(result.stage_models["shared"]),
            "tfedge": final,
        }
        for stage in result.stages:
            rows.append(
                {
                    "model": name,
                    "method": stage.name,
                    "accuracy": stage_accuracy[stage.name],
                    "bytes": stage.bytes,
                    "ratio": weight_bytes / stage.bytes,
                }
            )
    if "kmeans" not in FLAGS.methods:
        rows.insert(
            0,
            {
                "model": name,
                "method": "float",
                "accuracy": tflite_accuracy(float_tflite, x_te, y_te),
                "bytes": len(float_tflite),
                "ratio": weight_bytes / len(float_tflite),
            },
        )
    float_accuracy = next(r["accuracy"] for r in rows if r["method"] == "float")

    if not FLAGS.tfmot:
        return rows, extra, layers, results
    t0 = time.perf_counter()
    variants = tfmot_pipelines(plain, builder, ((x_tr, y_tr), (x_te, y_te)), steps)
    logging.info("%s: tfmot in %.0f s", name, time.perf_counter() - t0)
    within = [v for v in variants if v["accuracy"] >= float_accuracy - ACCURACY_BUDGET]
    best = (
        min(within, key=lambda v: v["bytes"])
        if within
        else max(variants, key=lambda v: v["accuracy"])
    )
    for v in variants:
        extra.append(
            {
                "model": name,
                "method": "tfmot" + (" (best)" if v is best else ""),
                "pipeline": v["variant"],
                "accuracy": v["accuracy"],
                "bytes": v["bytes"],
                "ratio": weight_bytes / v["bytes"],
                ".tflite bytes": v["tflite_bytes"],
            }
        )
    rows.append(
        {
            "model": name,
            "method": "tfmot",
            "accuracy": best["accuracy"],
            "bytes": best["bytes"],
            "ratio": weight_bytes / best["bytes"],
        }
    )

    ptq = int8_ptq(plain, x_tr)
    ptq_acc = tflite_accuracy(ptq, x_te, y_te)
    rows.append(
        {
            "model": name,
            "method": "tflite-int8",
            "accuracy": ptq_acc,
            "bytes": len(ptq),
            "ratio": weight_bytes / len(ptq),
        }
    )
    extra.append(
        {
            "model": name,
            "method": "tflite-int8 + gzip -9",
            "pipeline": "full-integer PTQ (200 calibration images), gzip -9",
            "accuracy": ptq_acc,
            "bytes": gzip9(ptq),
            "ratio": weight_bytes / gzip9(ptq),
            ".tflite bytes": len(ptq),
        }
    )

    return rows, extra, layers, results


def _layer_rows(name: str, method: str, result) -> list[dict]:
    def num(x):
        return "-" if x is None else round(x, 2)

    layers = []
    for r in result.layers:
        layers.append(
            {
                "model": name,
                "method": method,
                "layer": r.layer or r.tensor,
                "shape": "x".join(map(str, r.shape)),
                "weights": r.weights,
                "kept %": round(100 * r.kept, 2),
                "shared bits": r.shared_bits if r.shared_bits is not None else "-",
                "index width": r.bits if r.bits is not None else "raw",
                "bits per kept weight": num(r.nonzero_bits),
                "coded value bits": round(r.value_bits, 2),
                "value entropy": num(r.value_entropy),
                "index bits": r.index_bits if r.index_bits is not None else "-",
                "coded index bits": num(r.coded_index_bits),
                "index entropy": num(r.index_entropy),
                "bytes": r.packed_bytes,
            }
        )
    return layers


def main(argv):
    del argv
    for m in FLAGS.models:
        if m not in NETS:
            raise app.UsageError(f"Unknown model {m!r}; choose from {sorted(NETS)}")
    for m in FLAGS.methods:
        if m not in METHODS:
            raise app.UsageError(f"Unknown method {m!r}; choose from {list(METHODS)}")
    banner = print_banner(
        "Deep Compression on Fashion-MNIST: tfedge vs tfmot vs int8 PTQ",
        command_line(),
    )
    (x_tr, y_tr), (x_te, y_te) = load_fashion_mnist()
    rows, extra, layers, choices = [], [], [], {}
    start = time.perf_counter()
    for name in FLAGS.models:
        r, e, lay, results = run_net(name, ((x_tr, y_tr), (x_te, y_te)))
        rows += r
        extra += e
        layers += lay
        for method, result in results.items():
            choices[f"{name} {method}"] = {
                "sparsity": result.sparsity,
                "bits": result.bits,
            }
    elapsed = time.perf_counter() - start

    print("### Deep Compression stages and the alternatives (test accuracy)\n")
    print(markdown_table(rows, ["model", "method", "accuracy", "bytes", "ratio"]))
    print(
        "\nbytes: whole files (tfmot: the gzip -9 of its int8 .tflite; pruned/shared: "
        "the paper's accounting with fixed-width streams); ratio: float32 weights / "
        "bytes.\n"
    )
    print("### tfmot and int8 variants\n")
    print(markdown_table(extra))
    print(
        "\n### tfedge per layer (final packed file; coded bits per stream symbol "
        "against the symbols' entropy)\n"
    )
    print(markdown_table(layers))
    print("\nPer-layer choices (sparsity, sharing bits):")
    for name, c in choices.items():
        sp = ", ".join(f"{k} {v:.3g}" for k, v in c["sparsity"].items())
        bits = ", ".join(f"{k} {v}" for k, v in c["bits"].items())
        print(f"- {name}: sparsity {sp}; bits {bits}")
    print(f"\nTotal time {elapsed / 60:.1f} min.")
    del banner
    write_json(FLAGS.json, rows)


if __name__ == "__main__":
    app.run(main)
