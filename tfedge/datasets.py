"""Real data that is on the machine without a download.

- `fashion_mnist()`: the 70,000 Fashion-MNIST images from the Debian package
  `dataset-fashion-mnist` (`apt-get install -y dataset-fashion-mnist`), read from the
  standard idx `.gz` files.
- `digits()`: scikit-learn's bundled 8x8 digits (1,797 images), for when Fashion-MNIST
  is not installed.
- `glyphs()`: ten classes of 16x16 stroke drawings generated with numpy alone, for a
  machine with neither (a plain install has no scikit-learn).
- `small_images()`: the best of `digits()` and `glyphs()` this machine has, named.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import struct

import numpy as np

from tfedge.errors import FormatError

__all__ = [
    "FASHION_MNIST_DIR",
    "digits",
    "fashion_mnist",
    "glyphs",
    "has_fashion_mnist",
    "small_images",
]

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


# glyphs(): each class is this many random strokes on the unit square, drawn with this
# pen width (in pixels) and jittered per sample by up to this shift (pixels), rotation
# (radians) and scale, with Gaussian pixel noise of this standard deviation. Chosen so
# that the demo's MLP learns it well but not perfectly (98.4% test accuracy measured by
# `TFEDGE_FASHION_MNIST=/nonexistent scripts/demo` without scikit-learn).
_GLYPH_STROKES = 3
_GLYPH_PEN = 1.2
_GLYPH_SHIFT = 2.5
_GLYPH_ROTATION = 0.4
_GLYPH_SCALE = 0.2
_GLYPH_NOISE = 0.2


def glyphs(
    n_train: int = 6000, n_test: int = 1000, size: int = 16, seed: int = 0
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Ten classes of stroke drawings, generated with numpy alone.

    Class c is a fixed set of `_GLYPH_STROKES` line segments (drawn from `seed`); each
    image draws them shifted, rotated and scaled a little, with pixel noise. Returns
    ((x_train, y_train), (x_test, y_test)), x float32 in [0, 1] of shape (n, size,
    size), y int64 in 0..9, classes balanced.
    """
    if n_train < 10 or n_test < 10 or size < 8:
        raise ValueError(
            f"glyphs needs at least 10 train and test images of at least 8x8 pixels; "
            f"got n_train={n_train}, n_test={n_test}, size={size}"
        )
    rng = np.random.default_rng(seed)
    # Stroke end points in [-0.8, 0.8]^2, per class: (10, strokes, 2 ends, xy).
    strokes = rng.uniform(-0.8, 0.8, (10, _GLYPH_STROKES, 2, 2))
    n = n_train + n_test
    y = np.arange(n) % 10
    rng.shuffle(y)
    angle = rng.uniform(-_GLYPH_ROTATION, _GLYPH_ROTATION, n)
    scale = 1 + rng.uniform(-_GLYPH_SCALE, _GLYPH_SCALE, n)
    shift = rng.uniform(-_GLYPH_SHIFT, _GLYPH_SHIFT, (n, 2)) * (2 / size)
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    # Each image's strokes: rotate and scale about the centre, then shift.
    ends = np.einsum("nij,nsej->nsei", rot, strokes[y]) + shift[:, None, None, :]
    grid = (np.arange(size) + 0.5) / size * 2 - 1
    px = np.stack(np.meshgrid(grid, grid, indexing="xy"), -1).reshape(-1, 2)
    a, b = ends[:, :, None, 0, :], ends[:, :, None, 1, :]  # (n, strokes, 1, 2)
    ab = b - a
    t = np.clip(np.sum((px - a) * ab, -1) / np.maximum(np.sum(ab * ab, -1), 1e-9), 0, 1)
    dist = np.linalg.norm(px - (a + t[..., None] * ab), axis=-1) * (size / 2)
    ink = np.exp(-((dist.min(axis=1) / _GLYPH_PEN) ** 2))
    x = ink + rng.normal(0, _GLYPH_NOISE, ink.shape)
    x = np.clip(x, 0, 1).astype(np.float32).reshape(n, size, size)
    y = y.astype(np.int64)
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def small_images() -> tuple[str, tuple]:
    """(description, ((x_train, y_train), (x_test, y_test))) of a small image set
    that needs no download: scikit-learn's digits when scikit-learn is installed,
    else `glyphs()`."""
    if importlib.util.find_spec("sklearn") is None:
        return (
            "synthetic glyphs (numpy alone: no Fashion-MNIST, no scikit-learn)",
            glyphs(),
        )
    return "scikit-learn digits (Fashion-MNIST not installed)", digits()
