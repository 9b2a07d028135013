"""Writes the seed corpus of scripts/fuzz_decoder.sh: real payloads, one file each.

Seeds are payloads produced by tfedge's own packer: every codec combination of
`tfedge.codecs.encode_payload` on random tensors (the generator of tests/_payloads.py
that tests/runtime/test_native.py uses; fixed-width, Huffman and rANS streams,
rANS being format version 3; byte planes and codebooks past 256 entries, version 3;
per-channel codebooks, format version 2, over several
channel tilings, with no, some or only shared entries, sparse ones with filler entries),
plus every payload of a small Keras model packed by `tfedge.compress` (lossy and
lossless, pruned so that the sparse index appears, with a per-channel scaled ternary
layer for per-channel codebooks). Each file is one mode byte (see
tfedge/runtime/cc/fuzz_decode.cc) then the payload: mode 0 keeps the payload's CRC, mode
1 lets the harness fix it up.

With --flatbuffers DIR it also writes forged packed .tflite files there: every file of
the hostile table (tests/_hostile.py) and mutants of each, made by
`forged_flatbuffers`: byte flips, boundary values written over 32-bit fields (offsets,
vtable entries, vector lengths, indices), vtable entries pointed outside their table,
truncations and appended garbage. scripts/fuzz_readers.py runs them through every
reader; the payloads inside the hostile files become payload seeds as well (the
Huffman-block ones, for instance).

Usage: python scripts/fuzz_seeds.py OUT_DIR [--no_model] [--flatbuffers DIR]
    [--mutants N]
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# This checkout's tfedge and tests (for the hostile table), whatever is installed.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
from absl import app, flags

from tests._payloads import ELEMENTS, SHARED_MODES, payload_spans, random_payload

FLAGS = flags.FLAGS
flags.DEFINE_bool("model", True, "also pack a small Keras model (needs TensorFlow)")
flags.DEFINE_string("flatbuffers", None, "also write forged .tflite files here")
flags.DEFINE_integer("mutants", 40, "mutants of each hostile file (--flatbuffers)")

# 32-bit values that sit on the boundaries flatbuffer readers get wrong: zero, one,
# small negative offsets, the sign bit, all ones, and sizes just past 2 GiB and 4 GiB.
_BOUNDARY_U32 = (
    0,
    1,
    2,
    3,
    4,
    0x7FFF,
    0xFFFF,
    0x10000,
    0x7FFFFFFF,
    0x80000000,
    0x80000001,
    0xFFFFFFFC,
    0xFFFFFFFF,
)


def codec_seeds(rng: np.random.Generator):
    """Every layout, value kind (raw, codebook), coding and element size, over a few
    tensor sizes."""
    for layout in ("dense", "sparse"):
        for kind in ("raw", "codebook"):
            for coding in ("fixed", "huffman", "rans"):
                for es in ELEMENTS:
                    for n in (0, 1, 9, 300, 20000):
                        yield (
                            f"{layout}-{kind}-{coding}-{es}-{n}",
                            random_payload(
                                rng,
                                layout,
                                kind,
                                coding,
                                coding,
                                element_size=es,
                                count=n,
                            ),
                        )


# (channels, run) per element count: one channel, runs of one element (depthwise),
# both above one, and any tiling of an empty tensor.
_TILINGS = {
    0: [(3, 5)],
    1: [(1, 1)],
    12: [(1, 12), (12, 1), (2, 3)],
    300: [(1, 300), (300, 1), (10, 3), (4, 25)],
    20000: [(16, 25), (50, 1)],
}


def channel_seeds(rng: np.random.Generator):
    """Per-channel codebook payloads (value kind 2, format version 2; rANS, version
    3) over the tilings above, taking the numbers of shared entries in turn (one
    channel shares them all)."""
    variant = 0
    for layout in ("dense", "sparse"):
        for coding in ("fixed", "huffman", "rans"):
            for es in ELEMENTS:
                for n, tilings in _TILINGS.items():
                    for channels, run in tilings:
                        shared = SHARED_MODES[variant % len(SHARED_MODES)]
                        variant += 1
                        if channels == 1:
                            shared = "all"
                        tiling = (channels, run, n // (channels * run))
                        name = (
                            f"{layout}-channel-{coding}-{es}-{n}-{channels}x{run}-"
                            f"{shared}"
                        )
                        yield (
                            name,
                            random_payload(
                                rng,
                                layout,
                                "channel_codebook",
                                coding,
                                coding,
                                shared,
                                element_size=es,
                                tiling=tiling,
                            ),
                        )


def model_seeds():
    import keras

    import tfedge

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
        for name, start, end in payload_spans(packed):
            name = name.replace("/", "_")
            yield f"model-{'-'.join(options) or 'default'}-{name}", packed[start:end]


def _root_tables(data: bytes) -> list[int]:
    """Positions of the model table and of its first subgraph, operator and tensor
    tables (where a forged vtable does the most harm)."""
    from tfedge.tflite import schema

    s = schema()
    out = []
    try:
        model = s.Model.GetRootAs(data, 0)
        out.append(model._tab.Pos)
        if model.SubgraphsLength():
            g = model.Subgraphs(0)
            out.append(g._tab.Pos)
            if g.OperatorsLength():
                out.append(g.Operators(0)._tab.Pos)
            if g.TensorsLength():
                out.append(g.Tensors(0)._tab.Pos)
    except (IndexError, struct.error):  # already forged past the schema's reach
        pass
    return out


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One forged variant of a .tflite file."""
    b = bytearray(data)
    kind = int(rng.integers(0, 6))
    if kind == 0:  # a few byte flips anywhere
        for pos in rng.integers(0, len(b), int(rng.integers(1, 4))):
            b[pos] ^= int(rng.integers(1, 256))
    elif kind == 1:  # a boundary value over an aligned 32-bit field
        pos = int(rng.integers(0, max(1, len(b) // 4))) * 4
        if pos + 4 <= len(b):
            value = _BOUNDARY_U32[int(rng.integers(0, len(_BOUNDARY_U32)))]
            struct.pack_into("<I", b, pos, value)
    elif kind == 2:  # a vtable entry of a root table pointed outside its table
        tables = _root_tables(data)
        if tables:
            table = tables[int(rng.integers(0, len(tables)))]
            (soff,) = struct.unpack_from("<i", b, table)
            vt = table - soff
            if 0 <= vt and vt + 4 <= len(b):
                (vt_size,) = struct.unpack_from("<H", b, vt)
                slots = max(0, (vt_size - 4) // 2)
                if slots and vt + 4 + 2 * slots <= len(b):
                    slot = vt + 4 + 2 * int(rng.integers(0, slots))
                    struct.pack_into("<H", b, slot, int(rng.integers(0, 0x10000)))
    elif kind == 3:  # the vtable size or table size of a root table
        tables = _root_tables(data)
        if tables:
            table = tables[int(rng.integers(0, len(tables)))]
            (soff,) = struct.unpack_from("<i", b, table)
            vt = table - soff + 2 * int(rng.integers(0, 2))
            if 0 <= vt and vt + 2 <= len(b):
                struct.pack_into("<H", b, vt, int(rng.integers(0, 0x10000)))
    elif kind == 4:  # truncated
        b = b[: int(rng.integers(0, len(b)))]
    else:  # garbage appended, then a flip
        b += bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8))
        b[int(rng.integers(0, len(b)))] ^= 0xFF
    return bytes(b)


def forged_flatbuffers(rng: np.random.Generator, mutants: int):
    """(name, .tflite bytes): each hostile file of tests/_hostile.py and `mutants`
    forged variants of it."""
    from tests import _hostile

    for case in _hostile.CASES:
        if case.name == "shared_inputs_vector":
            continue  # 200 KB and slow to read: once in the table is enough
        data = case.build()
        yield f"{case.name}", data
        for i in range(mutants):
            yield f"{case.name}-m{i}", _mutate(data, rng)


def _hostile_payloads():
    """The payloads inside the hostile files, as payload seeds."""
    from tfedge.errors import FormatError
    from tfedge.tflite import buffer_data, decode_ops, read

    for name, data in forged_flatbuffers(np.random.default_rng(0), 0):
        try:
            m = read(data)
            ops = list(decode_ops(m))
        except FormatError:
            continue
        for si, oi, p, _w in ops:
            buf = m.subgraphs[si].tensors[p].buffer
            if buf < len(m.buffers):
                yield f"hostile-{name}-{oi}", bytes(buffer_data(m, buf))


def v3_seeds(rng: np.random.Generator):
    """Format version 3 value kinds: byte planes (every rotation class) and codebooks
    past 256 entries (9- to 16-bit rANS indices)."""
    for layout in ("dense", "sparse"):
        for es in list(ELEMENTS)[1:]:
            for n in (0, 1, 9, 300, 3000):
                for rotation in (0, 1, 8 * es - 1):
                    yield (
                        f"{layout}-planes-r{rotation}-{es}-{n}",
                        random_payload(
                            rng,
                            layout,
                            "planes",
                            element_size=es,
                            count=n,
                            plane_rotation=rotation,
                        ),
                    )
                yield (
                    f"{layout}-large_codebook-{es}-{n}",
                    random_payload(
                        rng, layout, "large_codebook", element_size=es, count=n
                    ),
                )


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("Usage: fuzz_seeds.py OUT_DIR")
    out = argv[1]
    os.makedirs(out, exist_ok=True)
    seeds = list(codec_seeds(np.random.default_rng(0)))
    seeds += list(channel_seeds(np.random.default_rng(1)))
    seeds += list(_hostile_payloads())
    seeds += list(v3_seeds(np.random.default_rng(2)))
    if FLAGS.model:
        seeds += list(model_seeds())
    for name, payload in seeds:
        for mode in (0, 1):
            with open(os.path.join(out, f"{name}.{mode}"), "wb") as f:
                f.write(bytes([mode]) + payload)
    print(f"{2 * len(seeds)} seeds in {out}", file=sys.stderr)
    if FLAGS.flatbuffers:
        os.makedirs(FLAGS.flatbuffers, exist_ok=True)
        n = 0
        for name, data in forged_flatbuffers(np.random.default_rng(2), FLAGS.mutants):
            with open(os.path.join(FLAGS.flatbuffers, f"{name}.tflite"), "wb") as f:
                f.write(data)
            n += 1
        print(f"{n} forged .tflite files in {FLAGS.flatbuffers}", file=sys.stderr)


if __name__ == "__main__":
    app.run(main)
