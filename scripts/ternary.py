"""Trained ternary quantization (Zhu et al. 2016) on Fashion-MNIST: accuracy and size.

Reproduces, at small scale, the experiment of "Trained Ternary Quantization": a network
is trained in float, then fine-tuned with every layer but the first and the last
ternarized to {-Wn, 0, +Wp} (one threshold t for all layers, trained per-layer scales),
on two networks:

- LeNet-5 (Caffe's, as in Deep Compression);
- a ResNet-20-style network of the paper's CIFAR family (3 stages of basic blocks,
  16/32/64 filters). As in the paper, its batch normalisation stays in full precision
  during ternary training. The TFLite converter folds each BN scale into the kernel
  before it, so every output channel c of a ternary convolution holds
  {-Wn s_c, 0, +Wp s_c}: three values per channel, which `tfedge.compress` stores
  losslessly as a per-channel codebook (docs/FORMAT.md, version 2) at the same bits
  per weight as one codebook.

For each network, in one run: the float model, TFLite's int8 post-training quantization
of it, the ternary model, and the ternary model stripped and packed by `tfedge.compress`
(lossless; and with the default verified drift tolerance, which may also share the two
full-precision layers). Accuracy is measured on the 10,000 test images, for .tflite
files in the stock LiteRT interpreter (the packed ones after `tfedge.expand`). Sizes are
the whole .tflite file and its weight buffers, against float32.

    python scripts/ternary.py [--json ternary.json] [--models lenet5,resnet20]
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    command_line,
    compile_classifier,
    lenet5,
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
flags.DEFINE_string(
    "json", None, "Write the rows, per-layer rows and banner to this file."
)
flags.DEFINE_list("models", ["lenet5", "resnet20"], "Networks: lenet5, resnet<6n+2>.")
flags.DEFINE_float("threshold", 0.05, "The ternary threshold t (the paper's 0.05).")
flags.DEFINE_integer("epochs", 3, "Float training epochs.")
flags.DEFINE_integer("ternary_epochs", 3, "Ternary fine-tuning epochs.")
flags.DEFINE_float("lr", 1e-3, "Adam learning rate of the float training.")
flags.DEFINE_float("ternary_lr", 1e-3, "Adam learning rate of the ternary fine-tuning.")
flags.DEFINE_integer("train_images", 60000, "Training images for LeNet-5.")
flags.DEFINE_integer(
    "resnet_train_images", 20000, "Training images for the ResNet (~6 min on 2 cores)."
)
flags.DEFINE_integer("batch_size", 128, "Training batch size.")
flags.DEFINE_integer("seed", 0, "Seed of weights, shuffling and sampling.")


def resnet_depth(name: str) -> int | None:
    """20 for "resnet20"; None for a name that is not a ResNet."""
    digits = name[len("resnet") :]
    return int(digits) if name.startswith("resnet") and digits.isdigit() else None


def build(keras, name: str):
    if name == "lenet5":
        return lenet5(keras)
    if resnet_depth(name) is not None:
        return resnet(keras, resnet_depth(name))
    raise ValueError(f"Unknown model {name!r}: use lenet5 or resnet<6n+2> (resnet20).")


def packed_kernel(report, layer: str) -> dict:
    """Bits per weight and encoding of a layer's kernel in a packed report."""
    rows = [
        t
        for t in report.tensors
        if len(t.shape) >= 2 and (f"/{layer}_" in t.name or f"/{layer}/" in t.name)
    ]
    if not rows or max(rows, key=lambda t: t.original_bytes).encoding == "raw":
        return {"packed bits/weight": "", "packed encoding": "not packed"}
    row = max(rows, key=lambda t: t.original_bytes)
    return {
        "packed bits/weight": round(row.bits_per_weight, 3),
        "packed encoding": row.encoding,
    }


def compile_model(keras, model, lr: float, steps: int):
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(steps, 1))
    return compile_classifier(keras, model, schedule)


def quiet():
    """TFLite conversion prints the saved artifact's signature to stdout."""
    return contextlib.redirect_stdout(io.StringIO())


def weight_bytes(data: bytes) -> int:
    """Bytes of all constant buffers of a .tflite file (weights, or packed payloads)."""
    from tfedge.tflite import buffer_data, read

    model = read(data)
    return int(sum(buffer_data(model, i).size for i in range(len(model.buffers))))


def run_model(name, data, keras, tfedge):
    (x_tr, y_tr), (x_te, y_te) = data
    limit = FLAGS.train_images if name == "lenet5" else FLAGS.resnet_train_images
    x_tr, y_tr = x_tr[:limit], y_tr[:limit]
    steps = -(-len(x_tr) // FLAGS.batch_size)
    keras.utils.set_random_seed(FLAGS.seed)

    t0 = time.perf_counter()
    model = compile_model(keras, build(keras, name), FLAGS.lr, steps * FLAGS.epochs)
    model.fit(x_tr, y_tr, batch_size=FLAGS.batch_size, epochs=FLAGS.epochs, verbose=0)
    float_acc = model.evaluate(x_te, y_te, verbose=0)[1]
    logging.info("%s float: %.4f (%.0f s)", name, float_acc, time.perf_counter() - t0)
    params = model.count_params()
    float32_weight_bytes = 4 * sum(
        int(np.prod(w.shape)) for w in model.weights if "moving" not in w.path
    )

    float_tflite = to_tflite(model)
    int8_tflite = to_tflite(model, int8_from=x_tr[:200])

    t0 = time.perf_counter()
    tern = tfedge.keras.ternarize(model, threshold=FLAGS.threshold)
    compile_model(keras, tern, FLAGS.ternary_lr, steps * FLAGS.ternary_epochs)
    tern_acc0 = tern.evaluate(x_te, y_te, verbose=0)[1]
    tern.fit(
        x_tr, y_tr, batch_size=FLAGS.batch_size, epochs=FLAGS.ternary_epochs, verbose=0
    )
    tern_acc = tern.evaluate(x_te, y_te, verbose=0)[1]
    logging.info(
        "%s ternary: %.4f before fine-tuning, %.4f after (%.0f s)",
        name,
        tern_acc0,
        tern_acc,
        time.perf_counter() - t0,
    )

    plain = tfedge.keras.strip(tern)
    with quiet():
        lossless = tfedge.compress(plain, lossless=True, progress=False)
        lossy = tfedge.compress(
            plain, representative_data=x_tr[:64], num_samples=64, progress=False
        )
    layers, zeros, total = [], 0, 0
    for wrapper in tern.layers:
        if isinstance(wrapper, tfedge.keras.TernaryWrapper):
            k = plain.get_layer(wrapper.name).kernel.numpy()
            zeros += int(np.sum(k == 0))
            total += k.size
            layers.append(
                {
                    "model": name,
                    "layer": wrapper.name,
                    "weights": int(k.size),
                    "Wp": float(wrapper.wp.numpy()),
                    "Wn": float(wrapper.wn.numpy()),
                    "sparsity": float(np.mean(k == 0)),
                    "distinct values": int(len(np.unique(k))),
                    **packed_kernel(lossless.report, wrapper.name),
                }
            )
    sparsity = zeros / max(total, 1)
    rows = []

    def row(variant, acc, data_bytes, wbytes, sparse=None):
        rows.append(
            {
                "model": name,
                "variant": variant,
                "accuracy": round(float(acc), 4),
                "ternary sparsity": "" if sparse is None else round(sparse, 3),
                "file bytes": data_bytes,
                "x vs float .tflite": round(len(float_tflite) / data_bytes, 2),
                "weight bytes": wbytes,
                "x vs float32 weights": round(float32_weight_bytes / wbytes, 2),
            }
        )

    row("float (Keras)", float_acc, len(float_tflite), weight_bytes(float_tflite))
    row(
        "float .tflite",
        tflite_accuracy(float_tflite, x_te, y_te),
        len(float_tflite),
        weight_bytes(float_tflite),
    )
    row(
        "int8 .tflite (PTQ)",
        tflite_accuracy(int8_tflite, x_te, y_te),
        len(int8_tflite),
        weight_bytes(int8_tflite),
    )
    plain_tflite = to_tflite(plain)
    row(
        f"ternary t={FLAGS.threshold:g} .tflite",
        tflite_accuracy(plain_tflite, x_te, y_te),
        len(plain_tflite),
        weight_bytes(plain_tflite),
        sparsity,
    )
    for variant, packed in (
        ("ternary + tfedge lossless", lossless),
        ("ternary + tfedge default", lossy),
    ):
        data_bytes = bytes(packed)
        row(
            variant,
            tflite_accuracy(tfedge.expand(data_bytes), x_te, y_te),
            len(data_bytes),
            weight_bytes(data_bytes),
            sparsity,
        )
    extra = {
        "model": name,
        "params": params,
        "float32 weight bytes": float32_weight_bytes,
        "ternary accuracy before fine-tuning": round(float(tern_acc0), 4),
        "ternary accuracy (Keras)": round(float(tern_acc), 4),
        "train images": len(x_tr),
        "packed report (lossless)": lossless.report.to_dict(),
    }
    return rows, layers, extra


def main(argv):
    del argv
    import keras

    import tfedge
    import tfedge.keras  # noqa: F401

    command = command_line()
    banner = print_banner("Trained ternary quantization on Fashion-MNIST", command)
    data = load_fashion_mnist(channels_last=True)
    rows, layers, extras = [], [], []
    t0 = time.perf_counter()
    for name in FLAGS.models:
        r, lay, extra = run_model(name, data, keras, tfedge)
        rows += r
        layers += lay
        extras.append(extra)
    elapsed = time.perf_counter() - t0

    print(markdown_table(rows))
    print()
    print(markdown_table(layers))
    print()
    for e in extras:
        print(
            f"- {e['model']}: {e['params']} parameters "
            f"({e['float32 weight bytes']} bytes "
            f"float32), {e['train images']} training images, {FLAGS.epochs} float + "
            f"{FLAGS.ternary_epochs} ternary epochs; ternary accuracy before "
            "fine-tuning "
            f"{e['ternary accuracy before fine-tuning']}, after "
            f"{e['ternary accuracy (Keras)']} (Keras)."
        )
    print(f"\nTotal time {elapsed:.0f} s.")
    write_json(
        FLAGS.json,
        {
            "banner": banner,
            "command": command,
            "rows": rows,
            "layers": layers,
            "models": extras,
            "seconds": elapsed,
        },
    )


if __name__ == "__main__":
    app.run(main)
