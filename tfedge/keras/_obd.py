"""Optimal Brain Damage saliency (LeCun, Denker & Solla 1989): h_kk * w_k**2 / 2.

OBD needs the diagonal of the loss Hessian; LeCun et al. use its Levenberg-Marquardt
(Gauss-Newton) approximation, which is >= 0. `estimate_hessian` computes it from
per-example gradients, h_k = mean_n (d loss(t_n, f(x_n)) / d w_k)**2, with one of:

- method "gauss_newton" (default): t_n is drawn from the model's own predictive
  distribution (a class from the softmax or sigmoid for cross-entropy losses, f + noise
  of variance 1/2 for mean squared error). The expectation of g g^T is then exactly the
  Gauss-Newton matrix (the true Fisher), so the mean of g**2 is an unbiased Monte-Carlo
  estimate of its diagonal.
- method "empirical_fisher": t_n is the true label. Works with any loss, but near a good
  fit the residuals, and so the estimate, shrink towards zero on confidently correct
  examples: it measures gradient noise rather than curvature.

Per-example gradients need the backend's autodiff: `tf.GradientTape.jacobian` on
TensorFlow, `jax.vmap(jax.grad(...))` on JAX. Other backends raise a `ValueError`.
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
import numpy as np
from keras import ops

from tfedge._layers import walk_layers

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


METHODS = ("gauss_newton", "empirical_fisher")

# Losses whose predictive distribution `gauss_newton` samples targets from.
_SAMPLED = {
    "SparseCategoricalCrossentropy": "sparse_categorical",
    "sparse_categorical_crossentropy": "sparse_categorical",
    "CategoricalCrossentropy": "categorical",
    "categorical_crossentropy": "categorical",
    "BinaryCrossentropy": "binary",
    "binary_crossentropy": "binary",
    "MeanSquaredError": "squared",
    "mean_squared_error": "squared",
    "mse": "squared",
}


def _sampling(loss) -> tuple[str, bool]:
    """(kind, from_logits) of a loss that `gauss_newton` can sample targets for."""
    if isinstance(loss, keras.losses.Loss):
        name = type(loss).__name__
        from_logits = bool(loss.get_config().get("from_logits", False))
    else:
        name = loss if isinstance(loss, str) else getattr(loss, "__name__", repr(loss))
        from_logits = False
    if name not in _SAMPLED:
        raise ValueError(
            f"method='gauss_newton' samples targets from the model's predictive "
            f"distribution and knows the losses {sorted(set(_SAMPLED))}. Received: "
            f"loss={name!r}. Use method='empirical_fisher' for other losses."
        )
    return _SAMPLED[name], from_logits


def _noise(kind: str, shape, rng: np.random.Generator) -> np.ndarray:
    if kind in ("sparse_categorical", "categorical"):
        u = rng.uniform(np.finfo("float32").tiny, 1.0, size=shape)
        return (-np.log(-np.log(u))).astype("float32")  # Gumbel, for Gumbel-max
    if kind == "binary":
        return rng.uniform(size=shape).astype("float32")
    return (np.sqrt(0.5) * rng.normal(size=shape)).astype("float32")


def _target(kind: str | None, from_logits: bool, y, pred, noise):
    """The target the per-example gradient is taken against (see module docstring)."""
    if kind is None:
        return y
    pred = ops.stop_gradient(pred)
    if kind in ("sparse_categorical", "categorical"):
        logp = pred if from_logits else ops.log(ops.maximum(pred, 1e-12))
        label = ops.argmax(logp + noise, axis=-1)
        if kind == "sparse_categorical":
            return label
        return ops.one_hot(label, ops.shape(pred)[-1], dtype=pred.dtype)
    if kind == "binary":
        p = ops.sigmoid(pred) if from_logits else pred
        return ops.cast(ops.less(noise, p), pred.dtype)
    return pred + noise


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


def _tf_square_grads(model, variables, loss_fn, kind, from_logits):
    import tensorflow as tf

    @tf.function(reduce_retracing=True, autograph=False)
    def step(x, y, noise):
        with tf.GradientTape() as tape:
            pred = model(x, training=False)
            target = _target(kind, from_logits, y, pred, noise)
            per = tf.reshape(loss_fn(target, pred), [-1])
        jac = tape.jacobian(per, variables)
        return [tf.reduce_sum(tf.square(j), axis=0) for j in jac]

    return step


def _jax_square_grads(model, variables, loss_fn, kind, from_logits):
    import jax
    import jax.numpy as jnp

    trainable = list(model.trainable_variables)
    index = [next(i for i, t in enumerate(trainable) if t is v) for v in variables]

    def one(values, non_trainable, x, y, noise):
        pred, _ = model.stateless_call(values, non_trainable, x[None], training=False)
        target = _target(kind, from_logits, y[None], pred, noise[None])
        return jnp.sum(loss_fn(target, pred))

    grad = jax.vmap(jax.grad(one), in_axes=(None, None, 0, 0, 0))

    @jax.jit
    def sums(values, non_trainable, x, y, noise):
        g = grad(values, non_trainable, x, y, noise)
        return [jnp.sum(jnp.square(g[i]), axis=0) for i in index]

    def step(x, y, noise):
        return sums(
            [v.value for v in trainable],
            [v.value for v in model.non_trainable_variables],
            jnp.asarray(x),
            jnp.asarray(y),
            jnp.asarray(noise),
        )

    return step


def estimate_hessian(
    model: keras.Model,
    data,
    *,
    loss=None,
    method: str = "gauss_newton",
    batch_size: int = 32,
    max_batches: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Estimate the Hessian diagonal of every OBD-pruned layer; store it in the model.

    Writes each `PruningWrapper(criterion="obd")`'s `<weight>_hessian` variables (kept
    by `.keras` files) with the mean over the examples seen of squared per-example
    gradients (see the module docstring for the two methods).
    Call it on a trained model before pruning starts (`prune(..., criterion="obd",
    hessian_data=..., loss=...)` does), and again whenever you want fresher saliencies.

    Args:
        model: a model containing `PruningWrapper`s with criterion "obd".
        data: `(x, y)` arrays, or an iterable of `(x, y)` batches (a tf.data dataset).
        loss: the training loss; defaults to the compiled model's loss.
        method: "gauss_newton" (targets sampled from the model; cross-entropy and
            squared-error losses) or "empirical_fisher" (true labels; any loss).
        batch_size: examples per gradient batch when `data` is arrays.
        max_batches: stop after this many batches (None: all of `data`).
        seed: seed of the sampled targets ("gauss_newton").

    Returns:
        `{layer name: mean of h}` over the estimated layers, for logging.
    """
    wrappers = [layer for layer in walk_layers(model) if _obd_wrapper(layer)]
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
    if method not in METHODS:
        raise ValueError(f"Expected `method` in {METHODS}. Received: method={method!r}")
    kind, from_logits = _sampling(loss) if method == "gauss_newton" else (None, False)
    rng = np.random.default_rng(seed)
    variables = [v for w in wrappers for v in w.pruned_variables]
    backend = keras.backend.backend()
    if backend == "tensorflow":
        step = _tf_square_grads(model, variables, loss_fn, kind, from_logits)
    elif backend == "jax":
        step = _jax_square_grads(model, variables, loss_fn, kind, from_logits)
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
        if kind is None:
            noise = np.zeros((int(np.shape(x)[0]),), dtype="float32")
        else:
            out_shape = ops.shape(model(x[:1], training=False))[1:]
            noise = _noise(kind, (int(np.shape(x)[0]), *out_shape), rng)
        for acc, value in zip(sums, step(x, y, noise), strict=True):
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


def _obd_wrapper(layer) -> bool:
    """A `PruningWrapper` with criterion "obd": it holds the `hessians` this module
    writes. (Recognised by those attributes: `_prune` imports this module, so this
    module does not import `_prune`.)"""
    return getattr(layer, "criterion", None) == "obd" and hasattr(layer, "hessians")
