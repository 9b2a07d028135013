"""Shared by the scripts in this folder (never imported by the library).

Real data loading, the paper's reference models, how they are compiled, converted and
scored, the command line and machine/version banner every table prints, markdown tables
and --json output.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

from tfedge.datasets import fashion_mnist

# Top-1 accuracy of a .tflite in the stock interpreter, in batches (int8 inputs
# quantized).
from tfedge.pack import tflite_metric as tflite_accuracy  # noqa: F401


def load_fashion_mnist(channels_last: bool = False):
    """((x_train, y_train), (x_test, y_test)) from the Debian package (28x28, or
    28x28x1 with `channels_last`)."""
    (x_tr, y_tr), (x_te, y_te) = fashion_mnist()
    if channels_last:
        x_tr, x_te = x_tr[..., None], x_te[..., None]
    return (x_tr, y_tr), (x_te, y_te)


def mlp(keras, hidden: tuple[int, ...], name: str):
    """A 28x28 -> 10 classifier: ReLU layers of the `hidden` widths (fc1, fc2, ...),
    then a linear output layer."""
    dense = [
        keras.layers.Dense(w, activation="relu", name=f"fc{i}")
        for i, w in enumerate(hidden, 1)
    ]
    out = keras.layers.Dense(10, name=f"fc{len(hidden) + 1}")
    return keras.Sequential(
        [keras.Input((28, 28)), keras.layers.Flatten(), *dense, out], name=name
    )


def lenet300(keras):
    """LeNet-300-100 (Deep Compression table 2): 784-300-100-10 fully connected."""
    return mlp(keras, (300, 100), "lenet300")


def lenet5(keras):
    """LeNet-5 as in Caffe's and Deep Compression's table 3:
    conv20-pool-conv50-pool-500-10."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(20, 5, name="conv1"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(50, 5, name="conv2"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(500, activation="relu", name="fc1"),
            keras.layers.Dense(10, name="fc2"),
        ],
        name="lenet5",
    )


def resnet(keras, depth: int, *, batch_norm: bool = True):
    """ResNet-(6n+2) for 28x28x1 (He et al.'s CIFAR family): 16/32/64 filters, batch
    normalisation after every convolution, 1x1 projection shortcuts where the shape
    changes.

    `batch_norm=False` builds the same graph with each batch normalisation folded into
    the convolution before it: no BatchNormalization layers, convolutions with a bias,
    the layers and weights of `tfedge.keras.fold_batch_norm` of the first, in the same
    order (`set_weights` copies a folded model into it). Layer names are the same in
    both.
    """
    if (depth - 2) % 6 or depth < 8:
        raise ValueError(f"Expected a depth 6n+2 >= 8 (20, 32, ...). Received: {depth}")
    n = (depth - 2) // 6
    L = keras.layers

    def conv_bn(x, filters, kernel, stride, name, relu=True):
        x = L.Conv2D(
            filters,
            kernel,
            strides=stride,
            padding="same",
            use_bias=not batch_norm,
            kernel_initializer="he_normal",
            name=name,
        )(x)
        if batch_norm:
            # momentum 0.9: moving statistics that keep up with a short training run
            x = L.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
        return L.ReLU(name=f"{name}_relu")(x) if relu else x

    inputs = keras.Input((28, 28, 1))
    x = conv_bn(inputs, 16, 3, 1, "conv1")
    for stage, filters in enumerate((16, 32, 64), start=1):
        for block in range(n):
            stride = 2 if stage > 1 and block == 0 else 1
            name = f"s{stage}b{block}"
            y = conv_bn(x, filters, 3, stride, f"{name}_c1")
            y = conv_bn(y, filters, 3, 1, f"{name}_c2", relu=False)
            if stride != 1 or x.shape[-1] != filters:
                x = conv_bn(x, filters, 1, stride, f"{name}_proj", relu=False)
            x = L.ReLU(name=f"{name}_out")(L.Add(name=f"{name}_add")([x, y]))
    x = L.GlobalAveragePooling2D(name="pool")(x)
    outputs = L.Dense(10, name="fc")(x)
    return keras.Model(inputs, outputs, name=f"resnet{depth}")


def layer_values(text: str, layers: list[str]) -> dict[str, float] | None:
    """A per-layer flag 'name=value,...' as a dict; '' -> None.

    A name with a wildcard is a pattern over `layers` (fnmatch: 's3*=0.93'): a layer not
    named takes the value of the first pattern it matches, in the order given, '*'
    last. 'fc1=0.95,fc2=0.9' -> {'fc1': 0.95, 'fc2': 0.9}; '*=0.9,fc=0.5' gives every
    one of `layers` but fc 0.9.
    """
    if not text.strip():
        return None
    named, patterns = {}, []
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"Expected layer=value, got {item!r}")
        name = name.strip()
        if any(c in name for c in "*?["):
            patterns.append((name, float(value)))
        else:
            named[name] = float(value)
    patterns.sort(key=lambda p: p[0] == "*")  # '*' last, wherever it was given
    out = {}
    for layer in layers:
        if layer in named:
            continue
        for pattern, value in patterns:
            if fnmatch.fnmatchcase(layer, pattern):
                out[layer] = value
                break
    return out | named


def compile_classifier(keras, model, lr=1e-3, *, metrics=("accuracy",), **kwargs):
    """Compiles a logits classifier as every script trains one: Adam at `lr` (a float
    or a schedule), sparse categorical cross-entropy from logits, `metrics`; further
    keyword arguments go to `compile` (`steps_per_execution`). Returns the model."""
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=list(metrics) or None,
        **kwargs,
    )
    return model


def accuracy(model, x, y, batch_size: int = 500) -> float:
    """Top-1 accuracy of a Keras logits classifier on (x, y)."""
    logits = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    return float(np.mean(np.argmax(logits, axis=1) == y))


def convert_quiet(converter) -> bytes:
    """converter.convert(), whose SavedModel signature printout is kept off the
    tables."""
    with contextlib.redirect_stdout(io.StringIO()):
        return converter.convert()


def to_tflite(model, int8_from=None) -> bytes:
    """The .tflite of a Keras model by the stock converter, quietly: float, or with
    `int8_from` (float inputs, one representative sample per row) full-integer int8
    post-training quantization."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8_from is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [np.asarray(int8_from[i : i + 1], np.float32)]
            for i in range(len(int8_from))
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return convert_quiet(converter)


def command_line() -> str:
    """How this script was run, for the banner: `python scripts/NAME.py ARGS`."""
    name = os.path.basename(sys.argv[0])
    return " ".join(["python", f"scripts/{name}", *sys.argv[1:]])


def machine_banner() -> dict:
    """Versions and machine facts that every script prints with its table."""
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "processor": _cpu_model(),
    }
    for mod in ("numpy", "tensorflow", "keras", "ai_edge_litert", "tfedge"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing optional package is reported as such
            info[mod] = "not installed"
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_revision() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=os.path.dirname(__file__),
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A GitHub markdown table of `rows` (dicts), floats with 4 significant digits."""
    if not rows:
        return "(no rows)"
    columns = columns or list(rows[0])

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def print_banner(title: str, command: str) -> dict:
    banner = machine_banner()
    print(f"## {title}\n")
    print(f"Command: `{command}` (tfedge @ {git_revision()})")
    print(
        "Machine: "
        + ", ".join(f"{k} {v}" for k, v in banner.items() if k != "date")
        + f"; run {banner['date']}\n"
    )
    return banner


def write_json(path: str | None, payload) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(payload, f, indent=2, default=_json_default)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def median_time(fn, repeats: int, warmup: int = 3) -> float:
    """Median wall time of fn() in seconds over `repeats` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
