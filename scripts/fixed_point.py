"""Dynamic fixed point (Qiu et al. 2016) on Fashion-MNIST: accuracy and size.

Reproduces, at small scale, the comparison of section 6 of "Going Deeper with Embedded
FPGA Platform for Convolutional Neural Network": a network is trained in float, then

- static fixed point: one fractional length for all kernels and one for all feature
  maps,
- dynamic fixed point: Qiu's weight phase (a length per kernel) and greedy data phase
  (a length per feature map, chosen layer by layer against the float model),

at 8/8 (conv/fc kernel bits, feature maps 8 bits), 8/4 and 6/4, next to TFLite's own
int8 post-training quantization (affine, per-channel). Every fixed-point model is
exported by `tfedge.fixed_point` (int8 tensors with scales 2**-fl and zero point 0) and
its accuracy measured in the stock LiteRT interpreter; "packed" is that file after
`tfedge.compress(lossless=True)`, which codes the 4- and 6-bit kernels at their width.
LeNet-5 (Caffe's, as in Deep Compression) and the VGG-style net of scripts/lowrank.py.

    python scripts/fixed_point.py [--json fixed_point.json] [--models lenet5,vgg6]
"""

from __future__ import annotations

import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    accuracy,
    command_line,
    compile_classifier,
    lenet5,
    load_fashion_mnist,
    markdown_table,
    print_banner,
    tflite_accuracy,
    to_tflite,
    write_json,
)
from absl import app, flags, logging  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("json", None, "Write the rows and the banner to this JSON file.")
flags.DEFINE_list("models", ["lenet5", "vgg6"], "Networks to run: lenet5, vgg6.")
flags.DEFINE_integer("epochs", 3, "Training epochs of LeNet-5.")
flags.DEFINE_integer("vgg_epochs", 1, "Training epochs of the VGG-style net.")
flags.DEFINE_integer("vgg_train_images", 30000, "Training images of the VGG-style net.")
flags.DEFINE_integer("calibration", 500, "Training images used as representative data.")
flags.DEFINE_integer("seed", 0, "Seed of weights, shuffling and sampling.")

# (name, mode, conv kernel bits, fc kernel bits, feature-map bits)
CONFIGS = [
    ("static", "static", 8, 8, 8),
    ("dynamic", "dynamic", 8, 8, 8),
    ("static", "static", 8, 4, 8),
    ("dynamic", "dynamic", 8, 4, 8),
    ("static", "static", 6, 4, 8),
    ("dynamic", "dynamic", 6, 4, 8),
]


def vgg6(keras, width: int = 16):
    """A VGG-style net in the spirit of scripts/lowrank.py's (which has five convs): six
    3x3 convs in three pairs, a classifier."""
    conv = keras.layers.Conv2D
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            conv(width, 3, padding="same", activation="relu", name="conv1"),
            conv(width, 3, padding="same", activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(name="pool1"),
            conv(2 * width, 3, padding="same", activation="relu", name="conv3"),
            conv(2 * width, 3, padding="same", activation="relu", name="conv4"),
            keras.layers.MaxPooling2D(name="pool2"),
            conv(4 * width, 3, padding="same", activation="relu", name="conv5"),
            conv(4 * width, 3, padding="same", activation="relu", name="conv6"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(10, name="fc"),
        ],
        name="vgg6",
    )


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def convert(model, representative=None) -> bytes:
    """`_common.to_tflite`; the converter also warns about Keras 3 captures."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return to_tflite(model, int8_from=representative)


def packed_size(content: bytes) -> int:
    import tfedge

    return len(tfedge.compress(content, lossless=True, progress=False))


def run_model(name, keras, data, rng) -> list[dict]:
    import tfedge.fixed_point as fp

    (x_tr, y_tr), (x_te, y_te) = data
    keras.utils.set_random_seed(FLAGS.seed)
    if name == "lenet5":
        model, epochs, n_train = lenet5(keras), FLAGS.epochs, len(x_tr)
    else:
        model, epochs, n_train = vgg6(keras), FLAGS.vgg_epochs, FLAGS.vgg_train_images
    compile_classifier(keras, model, metrics=())
    t0 = time.perf_counter()
    model.fit(x_tr[:n_train], y_tr[:n_train], batch_size=128, epochs=epochs, verbose=0)
    progress(f"{name}: trained {epochs} epochs in {time.perf_counter() - t0:.0f} s")
    calib = x_tr[rng.choice(len(x_tr), FLAGS.calibration, replace=False)]

    float_acc = accuracy(model, x_te, y_te)
    float_tfl = convert(model)
    rows = [
        dict(
            model=name,
            method="float",
            bits="32/32, 32",
            keras_acc=float_acc,
            tflite_acc=tflite_accuracy(float_tfl, x_te, y_te),
            delta_points=0.0,
            tflite_bytes=len(float_tfl),
            packed_bytes=packed_size(float_tfl),
            drift_lsb="",
        )
    ]
    fc = [la.name for la in model.layers if isinstance(la, keras.layers.Dense)]
    conv = [la.name for la in model.layers if isinstance(la, keras.layers.Conv2D)]
    for label, mode, wc, wf, act in CONFIGS:
        t0 = time.perf_counter()
        result = fp.quantize(
            model,
            calib,
            weight_bits=8,
            activation_bits=act,
            bits_per_layer={**dict.fromkeys(conv, wc), **dict.fromkeys(fc, wf)},
            mode=mode,
        )
        content = bytes(result)
        sim_acc = accuracy(result.model, x_te, y_te)
        tfl_acc = tflite_accuracy(content, x_te, y_te)
        progress(
            f"{name} {mode} {wc}/{wf}: {time.perf_counter() - t0:.1f} s\n"
            + result.summary()
        )
        rows.append(
            dict(
                model=name,
                method=f"{label} fixed point",
                bits=f"{wc}/{wf}, {act}",
                keras_acc=sim_acc,
                tflite_acc=tfl_acc,
                delta_points=100 * (tfl_acc - float_acc),
                tflite_bytes=len(content),
                packed_bytes=packed_size(content),
                drift_lsb=result.export_drift_lsb,
                lengths=dict(
                    input=result.input_fractional_length,
                    weights=result.weight_fractional_lengths,
                    maps=result.activation_fractional_lengths,
                ),
            )
        )
    ptq = convert(model, calib[:200])
    ptq_acc = tflite_accuracy(ptq, x_te, y_te)
    rows.append(
        dict(
            model=name,
            method="TFLite int8 PTQ (affine)",
            bits="8/8, 8",
            keras_acc="",
            tflite_acc=ptq_acc,
            delta_points=100 * (ptq_acc - float_acc),
            tflite_bytes=len(ptq),
            packed_bytes=packed_size(ptq),
            drift_lsb="",
        )
    )
    return rows


def main(argv):
    del argv
    for name in FLAGS.models:
        if name not in ("lenet5", "vgg6"):
            raise app.UsageError(f"--models: unknown model {name!r} (lenet5, vgg6)")
    # TensorFlow's converter logs every SavedModel step at INFO through absl.
    logging.set_verbosity(logging.WARNING)
    import keras

    command = command_line()
    banner = print_banner(
        "Dynamic fixed point (Qiu et al. 2016) on Fashion-MNIST", command
    )
    (x_tr, y_tr), (x_te, y_te) = load_fashion_mnist(channels_last=True)
    rng = np.random.default_rng(FLAGS.seed)
    rows = []
    t0 = time.perf_counter()
    for name in FLAGS.models:
        rows += run_model(name, keras, ((x_tr, y_tr), (x_te, y_te)), rng)
    columns = [
        "model",
        "method",
        "bits",
        "keras_acc",
        "tflite_acc",
        "delta_points",
        "tflite_bytes",
        "packed_bytes",
        "drift_lsb",
    ]
    print(markdown_table(rows, columns))
    print(
        "\nbits: conv/fc kernel bits, feature-map bits. keras_acc: the Keras "
        "simulation (fake quantization); tflite_acc: the exported file in the stock "
        "interpreter, "
        "10,000 test images; delta_points: tflite_acc minus float, in points. "
        "packed_bytes: after tfedge.compress(lossless=True). drift_lsb: largest "
        "difference between file and simulation on 64 calibration images, in output "
        f"steps. Total {time.perf_counter() - t0:.0f} s."
    )
    write_json(FLAGS.json, dict(banner=banner, rows=rows))


if __name__ == "__main__":
    app.run(main)
