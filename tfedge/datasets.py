"""Real data that is on the machine without a download.

- `fashion_mnist()`: the 70,000 Fashion-MNIST images from the Debian package
  `dataset-fashion-mnist` (`apt-get install -y dataset-fashion-mnist`), read from the
  standard idx `.gz` files.
- `digits()`: scikit-learn's bundled 8x8 digits (1,797 images), for when Fashion-MNIST
  is not installed.
"""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np

from tfedge.errors import FormatError

__all__ = ["FASHION_MNIST_DIR", "digits", "fashion_mnist", "has_fashion_mnist"]

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def has_fashion_mnist(directory: str | None = None) -> bool:
    """True when the Fashion-MNIST idx files are present."""
    directory = directory or os.environ.get("TFEDGE_FASHION_MNIST", FASHION_MNIST_DIR)
    return all(
        os.path.exists(os.path.join(directory, name))
        for pair in _FILES.values()
        for name in pair
    )


def _read_idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise FormatError(f"{path} is not an unsigned-byte idx file")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise FormatError(f"{path} is truncated in its header", offset=len(data))
    shape = struct.unpack(">" + "I" * ndim, data[4:header])
    size = int(np.prod(shape))
    if len(data) != header + size:
        raise FormatError(
            f"{path} holds {len(data) - header} data bytes, its header says {size}"
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def fashion_mnist(
    directory: str | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Returns ((x_train, y_train), (x_test, y_test)); x as float32 in [0, 1], 28x28.

    Raises FileNotFoundError with the install command when the package is missing.
    """
    directory = directory or os.environ.get("TFEDGE_FASHION_MNIST", FASHION_MNIST_DIR)
    if not has_fashion_mnist(directory):
        raise FileNotFoundError(
            f"Fashion-MNIST is not in {directory}. Install it with "
            "`apt-get install -y dataset-fashion-mnist`, or point TFEDGE_FASHION_MNIST "
            "at a folder holding the four idx .gz files."
        )
    out = []
    for split in ("train", "test"):
        images, labels = (os.path.join(directory, n) for n in _FILES[split])
        x = _read_idx(images).astype(np.float32) / 255.0
        y = _read_idx(labels).astype(np.int64)
        if len(x) != len(y):
            raise FormatError(f"{split}: {len(x)} images but {len(y)} labels")
        out.append((x, y))
    return out[0], out[1]


def digits(
    test_fraction: float = 0.25, seed: int = 0
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's 8x8 digits as ((x_train, y_train), (x_test, y_test)),
    x in [0, 1]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    n_test = int(round(len(x) * test_fraction))
    return (x[n_test:], y[n_test:]), (x[:n_test], y[:n_test])
