"""Run pruning under tf.distribute in a fresh interpreter; print one JSON result line.

Usage: python _pruning_distribute_worker.py mirrored
       TF_CONFIG=... python _pruning_distribute_worker.py multiworker
Used by tests/keras/test_pruning_distribute.py (TensorFlow fixes its devices and its
cluster when its runtime starts, so each configuration needs its own process).
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

STEPS_PER_EPOCH = 4
EPOCHS = 2
GLOBAL_BATCH = 32


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(STEPS_PER_EPOCH * GLOBAL_BATCH, 8)).astype("float32")
    y = np.abs(x[:, :3]).argmax(axis=1).astype("int32")
    return x, y


def build():
    import keras

    import tfedge.keras as tk

    keras.utils.set_random_seed(1)
    base = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(32, activation="relu", name="fc1"),
            keras.layers.Dense(3, name="out"),
        ]
    )
    schedule = tk.PolynomialDecay(0.0, 0.75, begin_step=0, end_step=6, frequency=2)
    model = tk.prune(base, schedule=schedule)
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def summary(model) -> dict:
    import tfedge.keras as tk

    out = {}
    for w in model.layers:
        if isinstance(w, tk.PruningWrapper):
            mask = np.asarray(w.masks[0].numpy())
            latent = np.asarray(w.pruned_variables[0].numpy())
            out[w.name] = {
                "step": int(w.pruning_step.numpy()),
                "sparsity": w.sparsity(),
                "latent_zero_where_masked": bool(np.all(latent[mask == 0] == 0)),
                "mask": mask.astype(int).ravel().tolist(),
                "kernel": latent.ravel().tolist(),
            }
    return out


def fit(model, x, y):
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    model.fit(ds.with_options(options), epochs=EPOCHS, verbose=0)


def custom_loop(strategy, model, x, y):
    """A `strategy.run` training loop: Keras 3's `model.fit` itself fails under
    MultiWorkerMirroredStrategy unless `reduce_by_structure` is applied
    (keras-team/keras#20585)."""
    import keras

    loss_fn = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="sum"
    )
    optimizer = model.optimizer
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    dist = strategy.experimental_distribute_dataset(ds.with_options(options))

    @tf.function
    def step(xb, yb):
        def replica(xb, yb):
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True)) / GLOBAL_BATCH
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
            return loss

        return strategy.run(replica, args=(xb, yb))

    for _ in range(EPOCHS):
        for xb, yb in dist:
            step(xb, yb)


def reduce_by_structure(strategy) -> None:
    """The README's workaround for keras-team/keras#20585: Keras 3's TensorFlow
    trainer calls `strategy.reduce` with a nested batch (its symbolic build) and with
    `axis=0` on scalar logs; MultiWorkerMirroredStrategy's collective reduce takes one
    tensor, and no axis for a scalar. Reduce each value on its own."""
    reduce = strategy.reduce

    def per_value(reduce_op, value, axis=None):
        def one(v):
            t = v.values[0] if isinstance(v, tf.distribute.DistributedValues) else v
            return reduce(reduce_op, v, axis=axis if t.shape.rank else None)

        return tf.nest.map_structure(one, value)

    strategy.reduce = per_value


def plain_model():
    import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def main(mode: str) -> None:
    x, y = data()
    if mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        single = build()
        fit(single, x, y)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            model = build()
        fit(model, x, y)
        result = {
            "replicas": strategy.num_replicas_in_sync,
            "mirrored": summary(model),
            "single": summary(single),
        }
    elif mode == "multiworker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        with strategy.scope():
            model = build()
        custom_loop(strategy, model, x, y)
        result = {"replicas": strategy.num_replicas_in_sync, "worker": summary(model)}
        # Keras 3's fit as it is, on a model without tfedge: the upstream failure.
        with strategy.scope():
            plain = plain_model()
        try:
            fit(plain, x, y)
            result["plain_fit_error"] = None
        except ValueError as e:
            result["plain_fit_error"] = str(e).splitlines()[0][:120]
        # fit with the wrappers once each value is reduced on its own.
        reduce_by_structure(strategy)
        with strategy.scope():
            fitted = build()
        fit(fitted, x, y)
        result["fit"] = summary(fitted)
    else:
        raise SystemExit(f"unknown mode {mode!r}: use mirrored or multiworker")
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
