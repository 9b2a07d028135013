"""Java unpacker expansion throughput against the numpy expander (issue 11).

Expands the same packed files, in one run, with:
  * the Java unpacker (android_demo/unpacker, on this machine's JVM: the code the
    Android app ships; a phone's ART runs it slower than a desktop JIT),
  * `tfedge.expand` with the numpy reader (`decoder=tfedge.codecs.decode_payload`),
  * `tfedge.expand` with the native C++ decoder, when it is built (for reference).
Throughput is MB/s of expanded .tflite output at the median time, one thread each,
after a warm-up. Every Java output is first checked to be the model tfedge.expand gives.

Files: LeNet-300-100 trained on Fashion-MNIST (the Debian package
dataset-fashion-mnist) and packed by `tfedge.compress`: pruned to 10% (sparse codebook
payloads), unpruned (dense codebook) and lossless (raw bytes, Huffman); and a larger MLP
(random weights, pruned to 10%, --big_params weights) for steady-state throughput.

Usage:
  python scripts/bench_unpacker.py [--json PATH] [--seconds 3] [--big_params 4000000]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
from _common import (
    compile_classifier,
    lenet300,
    load_fashion_mnist,
    markdown_table,
    print_banner,
    to_tflite,
    write_json,
)
from absl import app, flags, logging

_JSON = flags.DEFINE_string("json", None, "write the results to this JSON file")
_SECONDS = flags.DEFINE_float("seconds", 3.0, "timed seconds per file and expander")
_BIG = flags.DEFINE_integer("big_params", 4_000_000, "weights of the large MLP")
_EPOCHS = flags.DEFINE_integer("epochs", 1, "training epochs of LeNet-300-100")
_SPARSITY = 0.9  # magnitude pruning before packing (Deep Compression's regime)

ROOT = Path(__file__).resolve().parents[1]
JAVA_SOURCES = ROOT / "android_demo" / "unpacker" / "src" / "main" / "java"


def _prune(model, sparsity: float) -> None:
    """Zeroes the smallest-magnitude fraction of every kernel (one-shot, per layer)."""
    for layer in model.layers:
        weights = layer.get_weights()
        if weights and weights[0].ndim >= 2:
            k = weights[0]
            threshold = np.quantile(np.abs(k), sparsity)
            weights[0] = np.where(np.abs(k) > threshold, k, 0).astype(k.dtype)
            layer.set_weights(weights)


def _lenet(x, y):
    import keras

    keras.utils.set_random_seed(0)
    model = lenet300(keras)
    compile_classifier(keras, model, metrics=())
    model.fit(x, y, epochs=_EPOCHS.value, batch_size=128, verbose=0)
    return model


def _big_mlp(params: int):
    import keras

    keras.utils.set_random_seed(0)
    # 784 W + W^2 + 10 W ~= params
    w = int((-794 + (794**2 + 4 * params) ** 0.5) / 2)
    return keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(w, activation="relu"),
            keras.layers.Dense(w, activation="relu"),
            keras.layers.Dense(10),
        ],
        name="mlp_big",
    )


def _files(work: Path) -> dict[str, Path]:
    import tfedge

    (x_tr, y_tr), _ = load_fashion_mnist()
    logging.info("training LeNet-300-100 on Fashion-MNIST")
    lenet = _lenet(x_tr, y_tr)
    dense_plain = to_tflite(lenet)
    _prune(lenet, _SPARSITY)
    pruned_plain = to_tflite(lenet)
    big = _big_mlp(_BIG.value)
    _prune(big, _SPARSITY)
    big_plain = to_tflite(big)
    calib = x_tr[:8]
    variants = {
        "lenet300-pruned10%": lambda: tfedge.compress(
            pruned_plain, representative_data=calib, progress=False
        ),
        "lenet300-dense": lambda: tfedge.compress(
            dense_plain, representative_data=calib, progress=False
        ),
        "lenet300-lossless": lambda: tfedge.compress(
            dense_plain, lossless=True, progress=False
        ),
        f"mlp{_BIG.value // 1_000_000}M-pruned10%": lambda: tfedge.compress(
            big_plain, progress=False
        ),
    }
    files = {}
    for name, pack in variants.items():
        logging.info("packing %s", name)
        path = work / f"{name}.tflite"
        path.write_bytes(bytes(pack()))
        files[name] = path
    return files


def _compile_java(work: Path) -> str:
    classes = work / "classes"
    classes.mkdir()
    sources = sorted(str(p) for p in JAVA_SOURCES.rglob("*.java"))
    subprocess.run(
        ["javac", "--release", "8", "-encoding", "UTF-8", "-d", str(classes), *sources],
        check=True,
    )
    return str(classes)


def _time_python(fn, seconds: float) -> tuple[float, int]:
    """Median seconds of fn() over `seconds` (5 runs at least), after a warm-up."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        fn()
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), len(times)


def main(argv):
    del argv
    if shutil.which("javac") is None or shutil.which("java") is None:
        print("bench_unpacker: no JDK (javac/java) on this machine: nothing to measure")
        return 1
    import tfedge
    from tfedge.codecs import decode_payload
    from tfedge.runtime import _expand
    from tfedge.tflite import read, write

    banner = print_banner(
        "Java unpacker vs numpy expander: expansion throughput",
        "python scripts/bench_unpacker.py"
        + (f" --seconds {_SECONDS.value:g}" if _SECONDS.value != 3.0 else ""),
    )
    java_version = subprocess.run(
        ["java", "-version"], capture_output=True, text=True
    ).stderr.splitlines()[0]
    print(f"JVM: {java_version}\n")
    native = _expand._decoder()
    has_native = native is not decode_payload

    with tempfile.TemporaryDirectory(prefix="bench_unpacker_") as tmp:
        work = Path(tmp)
        files = _files(work)
        cp = _compile_java(work)
        # Correctness first: Java's output is the model tfedge.expand gives.
        for name, path in files.items():
            out = work / f"{name}.java"
            subprocess.run(
                [
                    "java",
                    "-cp",
                    cp,
                    "org.tfedge.unpacker.Main",
                    "expand",
                    str(path),
                    str(out),
                ],
                check=True,
            )
            python = tfedge.expand(path.read_bytes(), decoder=decode_payload)
            if write(read(out.read_bytes())) != write(read(python)):
                raise SystemExit(
                    f"{name}: the Java-expanded model differs from tfedge.expand"
                )
        logging.info("timing Java")
        r = subprocess.run(
            [
                "java",
                "-cp",
                cp,
                "org.tfedge.unpacker.Main",
                "bench",
                str(_SECONDS.value),
                *map(str, files.values()),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        java = {}
        for line in r.stdout.splitlines():
            fname, packed, expanded, runs, median, best, mbs = line.split("\t")
            java[fname] = dict(
                median=float(median), runs=int(runs), expanded=int(expanded)
            )
        rows = []
        for name, path in files.items():
            data = path.read_bytes()
            expanded = len(tfedge.expand(data, decoder=decode_payload))
            logging.info("timing numpy on %s", name)
            t_np, n_np = _time_python(
                lambda d=data: tfedge.expand(d, decoder=decode_payload), _SECONDS.value
            )
            row = {
                "file": name,
                "packed bytes": len(data),
                "expanded bytes": java[path.name]["expanded"],
                "payloads": _count_payloads(data),
                "numpy MB/s": expanded / t_np / 1e6,
                "Java MB/s": java[path.name]["expanded"]
                / java[path.name]["median"]
                / 1e6,
            }
            row["Java / numpy"] = row["Java MB/s"] / row["numpy MB/s"]
            if has_native:
                t_nat, _ = _time_python(lambda d=data: tfedge.expand(d), _SECONDS.value)
                row["native C++ MB/s"] = expanded / t_nat / 1e6
            row["runs (numpy, Java)"] = f"{n_np}, {java[path.name]['runs']}"
            rows.append(row)
    print(markdown_table(rows))
    jvm = " ".join(java_version.split()[:3:2])
    print(
        "\nMB/s = expanded .tflite bytes / median wall time of one whole expansion "
        "(parse, decode every payload, write the plain model), single thread, after a "
        f"warm-up of {_SECONDS.value:g} s; Java on {jvm}."
    )
    write_json(_JSON.value, {"banner": banner, "jvm": java_version, "rows": rows})
    return 0


def _count_payloads(data: bytes) -> int:
    from tfedge.tflite import decode_ops, read

    return sum(1 for _ in decode_ops(read(data)))


if __name__ == "__main__":
    app.run(main)
