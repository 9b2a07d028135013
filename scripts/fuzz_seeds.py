"""Writes the seed corpus of scripts/fuzz_decoder.sh: real payloads, one file each.

Seeds are payloads produced by tfedge's own packer: every codec combination of
`tfedge.codecs.encode_payload` on random tensors (per-channel codebooks, format version
2, over several channel tilings, with no, some or only shared entries, sparse ones with
filler entries), plus every payload of a small Keras model packed by `tfedge.compress`
(lossy and lossless, pruned so that the sparse index appears, with a per-channel scaled
ternary layer for per-channel codebooks). Each file is one mode byte (see
tfedge/runtime/cc/fuzz_decode.cc) then the payload: mode 0 keeps the payload's CRC, mode
1 lets the harness fix it up.

Usage: python scripts/fuzz_seeds.py OUT_DIR [--no_model]
"""

from __future__ import annotations

import contextlib
import io
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from absl import app, flags

from tfedge.codecs import encode_payload

FLAGS = flags.DEFINE_bool(
    "model", True, "also pack a small Keras model (needs TensorFlow)"
)

_ELEMENTS = {1: (9, np.uint8), 2: (1, np.uint16), 4: (0, np.uint32), 8: (4, np.uint64)}


def codec_seeds(rng: np.random.Generator):
    for layout in ("dense", "sparse"):
        for kind in ("raw", "codebook"):
            for coding in ("fixed", "huffman"):
                for es, (etype, dtype) in _ELEMENTS.items():
                    for n in (0, 1, 9, 300, 20000):
                        kw = dict(
                            element_type=etype,
                            element_size=es,
                            count=n,
                            layout=layout,
                            value_kind=kind,
                            value_coding=coding,
                            gap_coding=coding,
                        )
                        skew = rng.geometric(0.3, n) - 1
                        if kind == "raw":
                            vals = skew.astype(dtype)
                            if layout == "sparse":
                                vals[rng.random(n) < 0.8] = 0
                            kw["elements"] = vals
                        else:
                            k = int(rng.integers(1, 40))
                            kw["codebook"] = rng.integers(0, 200, k).astype(dtype)
                            idx = np.minimum(skew, k - 1)
                            if layout == "sparse":
                                idx[rng.random(n) < 0.8] = 0
                            kw["indices"] = idx
                        yield f"{layout}-{kind}-{coding}-{es}-{n}", encode_payload(**kw)


# (channels, run) per element count: one channel, runs of one element (depthwise),
# both above one, and any tiling of an empty tensor.
_TILINGS = {
    0: [(3, 5)],
    1: [(1, 1)],
    12: [(1, 12), (12, 1), (2, 3)],
    300: [(1, 300), (300, 1), (10, 3), (4, 25)],
    20000: [(16, 25), (50, 1)],
}


# How a seed's per-channel codebook shares entries (the writer stores its leading
# columns that are equal in every channel once, as the G shared entries): the fill
# first (G >= 1), the fill last with a first column that differs (G = 0 with several
# channels), every column equal (G = K).
_SHARING = ("first", "last", "all")


def _channel_book(rng, dtype, channels: int, k: int, sharing: str):
    """A (channels, k) codebook and the index of its fill (equal in every channel)."""
    book = rng.integers(0, 200, (channels, k)).astype(dtype)
    if sharing == "all":
        book[:] = book[0]
        return book, 0
    fill = 0 if sharing == "first" or k == 1 else k - 1
    if fill != 0 and channels > 1:
        book[1, 0] = book[0, 0] + 1  # the first column differs: G = 0
    book[:, fill] = 0
    return book, fill


def channel_seeds(rng: np.random.Generator):
    """Per-channel codebook payloads (value kind 2, format version 2), with no, some
    and only shared entries."""
    variant = 0
    for layout in ("dense", "sparse"):
        for coding in ("fixed", "huffman"):
            for es, (etype, dtype) in _ELEMENTS.items():
                for n, tilings in _TILINGS.items():
                    for channels, run in tilings:
                        sharing = _SHARING[variant % len(_SHARING)]
                        variant += 1
                        k = int(rng.integers(1, 20))
                        book, fill = _channel_book(rng, dtype, channels, k, sharing)
                        idx = np.minimum(rng.geometric(0.3, n) - 1, k - 1)
                        kw = dict(
                            element_type=etype,
                            element_size=es,
                            count=n,
                            layout=layout,
                            value_kind="channel_codebook",
                            codebook=book,
                            indices=idx,
                            channel_run=run,
                            value_coding=coding,
                            gap_coding=coding,
                        )
                        if layout == "sparse":
                            idx[rng.random(n) < 0.8] = fill
                            # A narrow gap stream: filler entries in every channel.
                            kw.update(fill=fill, gap_bits=int(rng.integers(1, 4)))
                        name = (
                            f"{layout}-channel-{coding}-{es}-{n}-{channels}x{run}-"
                            f"{sharing}"
                        )
                        yield name, encode_payload(**kw)


def model_seeds():
    import keras

    import tfedge
    from tfedge.pack._graph import decode_ops
    from tfedge.tflite import buffer_data, read

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(48, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    for layer in model.layers:
        w = layer.get_weights()
        if w:
            k = w[0]
            w[0] = np.where(np.abs(k) > np.quantile(np.abs(k), 0.8), k, 0)
            if isinstance(layer, keras.layers.Dense) and k.shape[-1] == 48:
                # Ternary times a per-output-channel scale: lossless packing picks
                # per-channel codebooks for it.
                scale = np.linspace(0.5, 2.0, k.shape[-1], dtype=np.float32)
                w[0] = (np.sign(w[0]) * scale).astype(np.float32)
            layer.set_weights(w)
    for options in ({}, {"lossless": True}, {"bits": 2}):
        # The converter prints its SavedModel signature; keep the log readable.
        with contextlib.redirect_stdout(io.StringIO()):
            packed = bytes(tfedge.compress(model, progress=False, **options))
        m = read(packed)
        for si, _oi, p, w in decode_ops(m):
            sg = m.subgraphs[si]
            name = sg.tensors[w].name.decode().replace("/", "_")
            yield (
                f"model-{'-'.join(options) or 'default'}-{name}",
                bytes(buffer_data(m, sg.tensors[p].buffer)),
            )


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("Usage: fuzz_seeds.py OUT_DIR")
    out = argv[1]
    os.makedirs(out, exist_ok=True)
    seeds = list(codec_seeds(np.random.default_rng(0)))
    seeds += list(channel_seeds(np.random.default_rng(1)))
    if FLAGS.value:
        seeds += list(model_seeds())
    for name, payload in seeds:
        for mode in (0, 1):
            with open(os.path.join(out, f"{name}.{mode}"), "wb") as f:
                f.write(bytes([mode]) + payload)
    print(f"{2 * len(seeds)} seeds in {out}", file=sys.stderr)


if __name__ == "__main__":
    app.run(main)
