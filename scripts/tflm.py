"""tfedge's TFLite Micro output against TFLM's own compression tool, on the LeNets.

Reproduces issue 12's comparison on Fashion-MNIST: LeNet-300-100 and LeNet-5, float32
and int8 (post-training quantized). TFLM's tool (tflite-micro's `compress`) only
re-encodes weights that already hold at most 2^b values, so both tools get the same
clustered model (every weight tensor snapped to 2^b k-means centroids, per tensor for
float, per output channel for int8 as TFLM's decoder requires), at the same bit width b.
tfedge is also run on the unclustered model in its default mode (bits chosen per tensor,
output drift verified against a tolerance on the logits). Every file is run in TFLM's
own interpreter on the test set.

    .venv/bin/python scripts/tflm.py [--json PATH] [--bits 4] [--epochs 3] [--test 2000]
"""

from __future__ import annotations

import importlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("json", None, "Write the rows as JSON to this path.")
flags.DEFINE_integer("bits", 4, "Index bits for the clustered comparison (1-7).")
flags.DEFINE_integer("epochs", 3, "Training epochs of each LeNet.")
flags.DEFINE_integer("test", 2000, "Test images run through TFLM's interpreter.")

MIN_ELEMENTS = 256  # both tools: weight tensors at least this large


def _train(name, build, channels):
    import keras

    keras.utils.set_random_seed(0)
    (x, y), (xt, yt) = _common.load_fashion_mnist(channels_last=channels)
    model = build(keras)
    _common.compile_classifier(keras, model)
    model.fit(x, y, batch_size=128, epochs=FLAGS.epochs, verbose=0)
    return model, x, xt[: FLAGS.test], yt[: FLAGS.test]


def _convert(model, x_calib, int8: bool) -> bytes:
    import tensorflow as tf

    c = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        c.optimizations = [tf.lite.Optimize.DEFAULT]

        def rep():
            for i in range(100):
                yield [x_calib[i : i + 1].astype(np.float32)]

        c.representative_dataset = rep
    return c.convert()


def _weights(m):
    """(tensor index, tensor) of the weight tensors both tools compress."""
    from tfedge.tflite import tensor_array

    for ti, t in enumerate(m.subgraphs[0].tensors):
        a = tensor_array(m, t)
        if a.size >= MIN_ELEMENTS and a.dtype in (np.float32, np.int8) and a.ndim >= 2:
            yield ti, t, a


def _cluster(model_bytes: bytes, bits: int) -> bytes:
    """Every weight snapped to 2^bits k-means centroids (per channel for int8)."""
    from tfedge.codecs import kmeans_1d
    from tfedge.pack._tflm import channel_axis
    from tfedge.tflite import read, write

    m = read(model_bytes)
    for _, t, a in _weights(m):
        axis = channel_axis(t)
        slices = (
            [a] if axis is None else [np.take(a, i, axis) for i in range(a.shape[axis])]
        )
        out = []
        for s in slices:
            cb, labels = kmeans_1d(s.reshape(-1).astype(np.float64), 2**bits)
            if a.dtype == np.int8:
                cb = np.clip(np.round(cb), -128, 127)
            out.append(cb[labels].reshape(s.shape).astype(a.dtype))
        q = out[0] if axis is None else np.stack(out, axis)
        m.buffers[t.buffer].data = np.ascontiguousarray(q).view(np.uint8).reshape(-1)
    return write(m)


def _tflm_tool(model_bytes: bytes, bits: int) -> bytes:
    """TFLM's own compression tool on every weight tensor, at `bits`."""
    from tflite_micro.tensorflow.lite.micro.compression import spec, spec_builder

    from tfedge.pack._tflm import channel_axis
    from tfedge.tflite import read

    compress = importlib.import_module(
        "tflite_micro.tensorflow.lite.micro.compression.compress"
    )
    m = read(model_bytes)
    sb = spec_builder.SpecBuilder()
    for ti, t, _ in _weights(m):
        axis = channel_axis(t)
        mode = spec.PerTensor() if axis is None else spec.PerChannel(axis=axis)
        sb.add_tensor(0, ti).with_lut(bits, mode)
    return bytes(compress.compress(model_bytes, sb.build()))


def _tflm_accuracy(model_bytes: bytes, x: np.ndarray, y: np.ndarray) -> float:
    from tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(model_bytes)
    detail = it.get_input_details(0)
    dtype = detail["dtype"]
    scale, zero = detail.get("quantization_parameters", {}).get("scales", [0]), 0
    correct = 0
    for i in range(len(x)):
        xi = x[i : i + 1].astype(np.float32)
        if np.dtype(dtype).kind == "i" and scale:
            xi = np.clip(np.round(xi / scale[0] + zero), -128, 127)
        it.set_input(xi.astype(dtype), 0)
        it.invoke()
        correct += int(np.argmax(it.get_output(0)) == y[i])
    return correct / len(x)


def main(argv):
    del argv
    import tfedge

    banner = _common.print_banner(
        "TFLite Micro: tfedge target='tflm' vs TFLM's own tool",
        _common.command_line(),
    )
    rows = []
    for name, build, channels in (
        ("lenet300", _common.lenet300, False),
        ("lenet5", _common.lenet5, True),
    ):
        model, x_tr, x_te, y_te = _train(name, build, channels)
        for kind in ("float32", "int8"):
            plain = _convert(model, x_tr, kind == "int8")
            clustered = _cluster(plain, FLAGS.bits)
            calib = x_te[:32]
            files = {
                "plain (no compression)": plain,
                f"clustered {FLAGS.bits}b, TFLM tool": _tflm_tool(
                    clustered, FLAGS.bits
                ),
                f"clustered {FLAGS.bits}b, tfedge tflm": bytes(
                    tfedge.compress(clustered, target="tflm", lossless=True)
                ),
                "tfedge tflm, auto bits, tolerance 0.02": bytes(
                    tfedge.compress(plain, target="tflm", representative_data=calib)
                ),
                "tfedge tflm, auto bits, tolerance 0.1": bytes(
                    tfedge.compress(
                        plain, target="tflm", representative_data=calib, tolerance=0.1
                    )
                ),
            }
            for method, blob in files.items():
                rows.append(
                    {
                        "model": name,
                        "weights": kind,
                        "method": method,
                        "bytes": len(blob),
                        "ratio": len(plain) / len(blob),
                        "tflm_accuracy": _tflm_accuracy(blob, x_te, y_te),
                    }
                )
                print(rows[-1], flush=True)
    print()
    print(
        f"Accuracy: TFLM's interpreter on the first {FLAGS.test} Fashion-MNIST test "
        "images. Ratio: against the plain .tflite of the same weights type.\n"
    )
    print(_common.markdown_table(rows))
    _common.write_json(FLAGS.json, {"banner": banner, "rows": rows})


if __name__ == "__main__":
    app.run(main)
