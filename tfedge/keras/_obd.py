"""Optimal Brain Damage saliency (LeCun, Denker & Solla 1989): h_kk * w_k**2 / 2.

OBD needs the diagonal of the loss Hessian. `estimate_hessian` uses the empirical Fisher
diagonal, h_k = mean_n (d loss_n / d w_k)**2 over training examples: the Gauss-Newton
approximation of the Hessian diagonal near a trained minimum, always >= 0 (as OBD's
Levenberg-Marquardt approximation is), and computable from per-example gradients alone.

Per-example gradients need the backend's autodiff: `tf.GradientTape.jacobian` on
TensorFlow, `jax.vmap(jax.grad(...))` on JAX. Other backends raise a `ValueError`.
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
import numpy as np
from keras import ops

from tfedge.keras._prune import PruningWrapper, _all_layers

__all__ = ["estimate_hessian"]


def _per_example_loss(loss):
    """A function (y_true, y_pred) -> per-example losses of shape [batch]."""
    if loss is None:
        raise ValueError(
            "Expected a `loss` (a name such as 'sparse_categorical_crossentropy', a "
            "keras.losses.Loss, or a callable returning per-example losses). "
            "Received: loss=None and the model is not compiled with one."
        )
    if isinstance(loss, keras.losses.Loss):
        return loss.call
    if isinstance(loss, str):
        fn = keras.losses.get(loss)
        if isinstance(fn, keras.losses.Loss):
            return fn.call
        return fn
    if callable(loss):
        return loss
    raise ValueError(
        f"Expected `loss` to be a name or callable. Received: loss={loss!r}"
    )


def _batches(data, batch_size: int) -> Iterable:
    if isinstance(data, tuple) and len(data) == 2:
        x, y = data
        if len(x) != len(y):
            raise ValueError(
                f"Expected x and y with the same number of examples. Received: "
                f"{len(x)} and {len(y)}"
            )
        for start in range(0, len(x), batch_size):
            yield x[start : start + batch_size], y[start : start + batch_size]
        return
    for batch in data:
        if not (isinstance(batch, (tuple, list)) and len(batch) >= 2):
            raise ValueError(
                "Expected `data` to be (x, y) arrays or an iterable of (x, y) batches. "
                f"Received a batch of type {type(batch).__name__}"
            )
        yield batch[0], batch[1]


def _tf_square_grads(model, variables, loss_fn):
    import tensorflow as tf

    @tf.function(reduce_retracing=True, autograph=False)
    def step(x, y):
        with tf.GradientTape() as tape:
            pred = model(x, training=False)
            per = tf.reshape(loss_fn(y, pred), [-1])
        jac = tape.jacobian(per, variables)
        return [tf.reduce_sum(tf.square(j), axis=0) for j in jac]

    return step


def _jax_square_grads(model, variables, loss_fn):
    import jax
    import jax.numpy as jnp

    trainable = list(model.trainable_variables)
    index = [next(i for i, t in enumerate(trainable) if t is v) for v in variables]

    def one(values, non_trainable, x, y):
        pred, _ = model.stateless_call(values, non_trainable, x[None], training=False)
        return jnp.sum(loss_fn(y[None], pred))

    grad = jax.vmap(jax.grad(one), in_axes=(None, None, 0, 0))

    @jax.jit
    def sums(values, non_trainable, x, y):
        g = grad(values, non_trainable, x, y)
        return [jnp.sum(jnp.square(g[i]), axis=0) for i in index]

    def step(x, y):
        return sums(
            [v.value for v in trainable],
            [v.value for v in model.non_trainable_variables],
            jnp.asarray(x),
            jnp.asarray(y),
        )

    return step


def estimate_hessian(
    model: keras.Model,
    data,
    *,
    loss=None,
    batch_size: int = 32,
    max_batches: int | None = None,
) -> dict[str, float]:
    """Estimate the Hessian diagonal of every OBD-pruned layer; store it in the model.

    Writes each `PruningWrapper(criterion="obd")`'s `<weight>_hessian` variables (kept
    by `.keras` files) with the empirical Fisher diagonal over the examples seen.
    Call it on a trained model before pruning starts (`prune(..., criterion="obd",
    hessian_data=..., loss=...)` does), and again whenever you want fresher saliencies.

    Args:
        model: a model containing `PruningWrapper`s with criterion "obd".
        data: `(x, y)` arrays, or an iterable of `(x, y)` batches (a tf.data dataset).
        loss: the training loss; defaults to the compiled model's loss.
        batch_size: examples per gradient batch when `data` is arrays.
        max_batches: stop after this many batches (None: all of `data`).

    Returns:
        `{layer name: mean of h}` over the estimated layers, for logging.
    """
    wrappers = [
        layer
        for layer in _all_layers(model)
        if isinstance(layer, PruningWrapper) and layer.criterion == "obd"
    ]
    if not wrappers:
        raise ValueError(
            f"Model {model.name!r} has no layer pruned with criterion='obd'; prune "
            "it with `tfedge.keras.prune(model, schedule=..., criterion='obd', ...)` "
            "first."
        )
    if not model.built:
        raise ValueError(f"Model {model.name!r} is not built; call it on data first.")
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or batch_size < 1
    ):
        raise ValueError(
            f"Expected `batch_size` >= 1. Received: batch_size={batch_size}"
        )
    if loss is None:
        loss = getattr(model, "loss", None)
    loss_fn = _per_example_loss(loss)
    variables = [v for w in wrappers for v in w.pruned_variables]
    backend = keras.backend.backend()
    if backend == "tensorflow":
        step = _tf_square_grads(model, variables, loss_fn)
    elif backend == "jax":
        step = _jax_square_grads(model, variables, loss_fn)
    else:
        raise ValueError(
            f"estimate_hessian needs per-example gradients, implemented for the "
            f"tensorflow and jax backends. Received backend: {backend!r}"
        )
    sums = [np.zeros(v.shape, dtype="float64") for v in variables]
    examples = 0
    batches = 0
    for x, y in _batches(data, batch_size):
        if max_batches is not None and batches >= max_batches:
            break
        for acc, value in zip(sums, step(x, y), strict=True):
            acc += ops.convert_to_numpy(value)
        examples += int(np.shape(x)[0])
        batches += 1
    if examples == 0:
        raise ValueError("Expected at least one example in `data`. Received none.")
    out = {}
    k = 0
    for w in wrappers:
        means = []
        for h in w.hessians:
            value = (sums[k] / examples).astype(h.dtype)
            h.assign(value)
            means.append(float(value.mean()))
            k += 1
        w.hessian_batches.assign(batches)
        w._hessian_ready = True
        out[w.name] = float(np.mean(means))
    return out
