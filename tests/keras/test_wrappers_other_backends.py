"""The ternary and weight-sharing wrappers on the JAX backend (a fresh process each).

The wrappers use only keras.ops and Layer.stateless_call, so they must train and strip
the same way on every backend. The backend is fixed when Keras is imported, hence a
child process (~10 s of imports); it runs by default, as the JAX pruning tests do.
"""

from __future__ import annotations

from tests._backends import run_on_backend

_CHECK = """
import numpy as np
import keras
import jax
from tfedge.keras import share_weights, strip, ternarize
from tfedge.keras._ternary import ternary_kernel

assert keras.backend.backend() == "jax"

# The paper's gradients through jax.grad.
rng = np.random.default_rng(0)
latent = rng.normal(size=(6, 5)).astype("float32")
up = rng.normal(size=(6, 5)).astype("float32")
g_lat, g_wp, g_wn = jax.grad(
    lambda w, p, n: (ternary_kernel(w, p, n, 0.3) * up).sum(), argnums=(0, 1, 2)
)(latent, 0.8, 0.3)
delta = 0.3 * np.abs(latent).max()
pos, neg = latent > delta, latent < -delta
np.testing.assert_allclose(
    np.asarray(g_lat), np.where(pos, 0.8, np.where(neg, 0.3, 1.0)) * up, rtol=1e-6
)
np.testing.assert_allclose(float(g_wp), up[pos].sum(), rtol=1e-5)
np.testing.assert_allclose(float(g_wn), -up[neg].sum(), rtol=1e-5)

keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((8,)),
    keras.layers.Dense(16, activation="relu", name="a"),
    keras.layers.Dense(16, activation="relu", name="b"),
    keras.layers.Dense(3, name="c"),
])
x = rng.normal(size=(32, 8)).astype("float32")
y = rng.integers(0, 3, size=32)
for wrapped, check in (
    (ternarize(model), lambda k: len(np.unique(k)) == 3),
    (share_weights(model, bits=2), lambda k: len(np.unique(k[k != 0])) <= 4),
):
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    wrapped.compile("adam", loss)
    before = [np.array(w) for w in wrapped.trainable_weights]
    wrapped.fit(x, y, epochs=2, batch_size=8, verbose=0)
    after = [np.array(w) for w in wrapped.trainable_weights]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    plain = strip(wrapped)
    assert check(np.array(plain.get_layer("b").kernel))
    np.testing.assert_allclose(
        plain.predict(x, verbose=0), wrapped.predict(x, verbose=0), atol=1e-5
    )
print("ok")
"""


def test_wrappers_train_and_strip_on_jax():
    run_on_backend("jax", _CHECK)
