"""Small seeded models and data for the fixed-point tests (no real data needed)."""

from __future__ import annotations

import keras
import numpy as np
import pytest


def small_convnet(seed: int = 0) -> keras.Model:
    """conv(relu), maxpool, conv, ReLU, avgpool, flatten, dense(relu), dropout, dense"""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((10, 10, 2)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv1"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(6, 2, padding="same", name="conv2"),
            keras.layers.ReLU(),
            keras.layers.AveragePooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(12, activation="relu", name="fc1"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(3, name="fc2"),
        ],
        name="small_convnet",
    )


@pytest.fixture(scope="session")
def convnet() -> keras.Model:
    return small_convnet()


@pytest.fixture(scope="session")
def data() -> np.ndarray:
    return (
        np.random.default_rng(1).uniform(-1.0, 2.0, (48, 10, 10, 2)).astype(np.float32)
    )
