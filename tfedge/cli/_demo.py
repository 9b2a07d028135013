"""`tfedge demo`: the main job on a built-in example, end to end.

Trains LeNet-300-100 on Fashion-MNIST (the Debian package `dataset-fashion-mnist`) or,
when that is not installed, a small MLP on scikit-learn's bundled digits (or, without
scikit-learn, on numpy-generated glyphs: `tfedge.datasets.small_images`); prunes it
inside `model.fit` with tfedge's Keras 3 wrappers; strips the wrappers; packs the
.tflite with `tfedge.compress`; expands it back; runs the plain, packed-then-expanded
models in the stock TFLite interpreter on the test set and prints a size/accuracy table.
"""

from __future__ import annotations

import os
import time

import numpy as np
from absl import logging

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _data():
    from tfedge.datasets import fashion_mnist, has_fashion_mnist, small_images

    if has_fashion_mnist():
        return (
            "Fashion-MNIST (Debian dataset-fashion-mnist)",
            fashion_mnist(),
            (300, 100),
        )
    name, data = small_images()
    # Wide enough that 90% pruning leaves each class enough weights: measured on the
    # digits, (64, 32) fell from 0.96 to 0.47 pruned, (256, 128) from 0.98 to 0.97.
    return name, data, (256, 128)


def run_demo(epochs: int | None = None, sparsity: float = 0.9) -> list[dict]:
    import keras
    import tensorflow as tf

    import tfedge.keras as tk
    from tfedge._quiet import quiet_tf
    from tfedge.convert import compress
    from tfedge.pack import tflite_metric
    from tfedge.runtime import expand

    keras.utils.set_random_seed(0)
    name, ((x_tr, y_tr), (x_te, y_te)), units = _data()
    fashion = x_tr.shape[1] == 28
    epochs = epochs or (4 if fashion else 30)
    print(
        f"data: {name}: {len(x_tr)} train / {len(x_te)} test images of {x_tr.shape[1:]}"
    )

    model = keras.Sequential(
        [keras.Input(x_tr.shape[1:]), keras.layers.Flatten()]
        + [
            keras.layers.Dense(u, activation="relu", name=f"fc{i + 1}")
            for i, u in enumerate(units)
        ]
        + [keras.layers.Dense(10, name=f"fc{len(units) + 1}")]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    t0 = time.perf_counter()
    model.fit(x_tr, y_tr, batch_size=128, epochs=epochs, verbose=0)
    logging.info("trained in %.1f s", time.perf_counter() - t0)
    with quiet_tf():
        float_tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()

    steps = int(np.ceil(len(x_tr) / 128))
    frequency = max(1, steps // 4)
    # Prune over the first half of training, ending on a mask update (end_step a
    # multiple of frequency) so that the final sparsity is reached.
    updates = max(1, steps * max(1, epochs // 2) // frequency)
    schedule = tk.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=sparsity,
        begin_step=0,
        end_step=updates * frequency,
        frequency=frequency,
    )
    pruned = tk.prune(model, schedule=schedule)
    pruned.compile(
        optimizer=keras.optimizers.Adam(5e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    pruned.fit(x_tr, y_tr, batch_size=128, epochs=epochs, verbose=0)
    stripped = tk.strip(pruned)
    with quiet_tf():
        pruned_tflite = tf.lite.TFLiteConverter.from_keras_model(stripped).convert()

    calib = x_te[:64]
    rows = []

    def row(label, blob, runnable):
        rows.append(
            {
                "model": label,
                "bytes": len(blob),
                "ratio": len(float_tflite) / len(blob),
                "accuracy": tflite_metric(runnable, x_te, y_te),
            }
        )

    row("float32 .tflite (stock converter)", float_tflite, float_tflite)
    lossless = compress(float_tflite, lossless=True)
    row("float32, tfedge lossless", bytes(lossless), expand(lossless))
    shared = compress(float_tflite, representative_data=calib)
    row("float32, tfedge shared+Huffman", bytes(shared), expand(shared))
    row(
        f"pruned {sparsity:.0%} .tflite (stock converter)", pruned_tflite, pruned_tflite
    )
    # The Keras model (not its .tflite) so that the report names layers: fc1.kernel.
    packed = compress(stripped, representative_data=calib)
    row(f"pruned {sparsity:.0%}, tfedge packed", bytes(packed), expand(packed))

    from tfedge._table import Column, render

    print()
    print("The last row's report (tfedge compress prints the same):")
    print(packed.report.summary())
    print()
    print(
        render(
            [Column("model"), Column("bytes", ">"), Column("ratio", ">")]
            + [Column("accuracy", ">")],
            [
                [r["model"], r["bytes"], f"{r['ratio']:.1f}x", f"{r['accuracy']:.4f}"]
                for r in rows
            ],
            footer=[
                "Accuracy is measured in the stock TFLite interpreter on the test "
                "set; packed models are run after tfedge.expand (bytes are the packed "
                "file's)."
            ],
        )
    )
    return rows
