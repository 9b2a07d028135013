"""Benchmarks the decoder side (issue 4, "Must show"), in one run.

1. Decode throughput, MB/s of decoded output on one core: the native C++ decoder
   against the numpy reader and against memcpy of the same bytes, on the real payloads
   of (a) LeNet-300-100 trained on Fashion-MNIST and packed by `tfedge.compress`:
   pruned to 10% (sparse codebook), unpruned (dense codebook) and lossless (raw bytes),
   and (b) the 25M-parameter model of part 3 (random weights, pruned to 10%).
2. Invoke latency (batch 1, one thread, Fashion-MNIST test images): the original plain
   model in the stock interpreter, the expanded model (`tfedge.expand`) in the stock
   interpreter, and the packed model through `tfedge.Interpreter` (decoder op).
3. Load time of a 25M-parameter model: plain load, `tfedge.expand` (native and numpy)
   plus load, and `tfedge.Interpreter` on the packed file.

4. rANS streams (format version 3): native and numpy throughput of rANS payloads
   decoding to 8 MB (a skewed ternary index stream, skewed bytes, uniform bytes,
   float32 weights as byte planes, 16-bit indices of a 4,000-entry float32 codebook)
   beside the same symbols Huffman coded where Huffman can code them, and a memcpy of
   the decoded bytes in the same run; the load average is printed beside them.
   `--rans_only` runs just these rows (no training).

Usage: python scripts/bench_decoder.py [--json PATH] [--big_params 25000000]
       python scripts/bench_decoder.py --rans_only [--rans_symbols 8000000]
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
from _common import (
    compile_classifier,
    lenet5,
    lenet300,
    load_fashion_mnist,
    markdown_table,
    median_time,
    print_banner,
    to_tflite,
    write_json,
)
from absl import app, flags, logging

_JSON = flags.DEFINE_string("json", None, "write the results to this JSON file")
_BIG = flags.DEFINE_integer("big_params", 25_000_000, "parameters of the large model")
_INVOKES = flags.DEFINE_integer("invokes", 300, "invokes per latency measurement")
_EPOCHS = flags.DEFINE_integer(
    "epochs", 1, "training epochs of the Fashion-MNIST models"
)
_RANS_ONLY = flags.DEFINE_bool("rans_only", False, "only the rANS throughput rows")
_RANS_SYMBOLS = flags.DEFINE_integer(
    "rans_symbols", 8_000_000, "symbols of each rANS throughput payload"
)
_SPARSITY = 0.9  # magnitude pruning before packing (Deep Compression's regime)


def _prune(model, sparsity: float) -> None:
    """Zeroes the smallest-magnitude fraction of every kernel (one-shot, per layer)."""
    for layer in model.layers:
        weights = layer.get_weights()
        if weights and weights[0].ndim >= 2:
            k = weights[0]
            threshold = np.quantile(np.abs(k), sparsity)
            weights[0] = np.where(np.abs(k) > threshold, k, 0).astype(k.dtype)
            layer.set_weights(weights)


def _trained(build, x, y, channels_last=False):
    import keras

    keras.utils.set_random_seed(0)
    model = build(keras)
    compile_classifier(keras, model)
    model.fit(x, y, epochs=_EPOCHS.value, batch_size=128, verbose=0)
    return model


def _big_model(params: int):
    """An MLP 784-W-W-W/4-10 with W chosen so that it has about `params` weights."""
    import keras

    keras.utils.set_random_seed(0)
    # params ~= 784 W + W^2 + W^2/4 + 10 W/4  ->  solve 1.25 W^2 + 786.5 W = params
    w = int((-786.5 + (786.5**2 + 5 * params) ** 0.5) / 2.5)
    return keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(w, activation="relu"),
            keras.layers.Dense(w, activation="relu"),
            keras.layers.Dense(w // 4, activation="relu"),
            keras.layers.Dense(10),
        ],
        name="mlp25m",
    )


def _payloads(packed: bytes):
    from tfedge.tflite import buffer_data, decode_ops, read

    model = read(packed)
    for si, _oi, p, w in decode_ops(model):
        sg = model.subgraphs[si]
        yield (
            sg.tensors[w].name.decode(),
            bytes(buffer_data(model, sg.tensors[p].buffer)),
        )


def _describe(payload: bytes) -> str:
    from tfedge.codecs import inspect_payload

    info = inspect_payload(payload)
    kind = f"codebook K={info.k}" if info.k else info.header.value_kind
    streams = ([("G", info.gaps)] if info.gaps is not None else []) + [
        ("V", info.values)
    ]
    codings = ", ".join(f"{n} {s.coding}{s.bits}" for n, s in streams)
    return f"{info.header.layout} {kind}; {codings}"


def _median_cpu_time(fn, repeats: int) -> float:
    """Median CPU time of this process per call: one core's share, even on a busy
    machine (the decoders are single-threaded)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return float(np.median(times))


def throughput_rows(model_name: str, packed: bytes, min_bytes: int = 100_000):
    from tfedge.codecs import decode_payload
    from tfedge.runtime._native import decode_payload_native

    rows = []
    for name, payload in _payloads(packed):
        out = decode_payload_native(payload)
        if out.size < min_bytes:
            continue
        assert np.array_equal(out, decode_payload(payload))
        mb = out.size / 1e6
        repeats = max(3, min(30, int(200 / mb)))
        t_native = _median_cpu_time(lambda p=payload: decode_payload_native(p), repeats)
        t_wall = median_time(lambda p=payload: decode_payload_native(p), repeats, 1)
        t_numpy = _median_cpu_time(
            lambda p=payload: decode_payload(p), max(3, repeats // 4)
        )
        dst = np.empty_like(out)
        t_copy = _median_cpu_time(lambda d=dst, o=out: np.copyto(d, o), repeats)
        rows.append(
            {
                "model": model_name,
                "tensor": name.split("/")[-2] if "/" in name else name,
                "codec": _describe(payload),
                "decoded MB": mb,
                "ratio": out.size / len(payload),
                "native MB/s": mb / t_native,
                "native MB/s (wall)": mb / t_wall,
                "numpy MB/s": mb / t_numpy,
                "memcpy MB/s": mb / t_copy,
            }
        )
    return rows


def _rans_cases(n: int, seed: int = 0) -> dict:
    """Payload arguments of the rANS rows, each decoding to about `n` bytes, and the
    codings each is measured with (Huffman cannot code 16-bit symbols)."""
    rng = np.random.default_rng(seed)
    both = ("rans", "huffman")
    k = 4000  # distinct float32 values, past the 256-entry limit of 8-bit indices
    return {
        "skewed ternary indices (1.18 bits)": (
            both,
            dict(
                count=n,
                value_kind="codebook",
                codebook=np.array([-1, 0, 1], np.int8),
                indices=rng.choice(3, n, p=[0.15, 0.7, 0.15]),
                element_type=9,
                element_size=1,
            ),
        ),
        "skewed bytes (6.5 bits)": (
            both,
            dict(
                count=n,
                value_kind="raw",
                elements=np.minimum(rng.geometric(0.03, n), 255).astype(np.uint8),
                element_type=3,
                element_size=1,
            ),
        ),
        "uniform bytes (8 bits)": (
            both,
            dict(
                count=n,
                value_kind="raw",
                elements=rng.integers(0, 256, n).astype(np.uint8),
                element_type=3,
                element_size=1,
            ),
        ),
        "float32 byte planes (N(0, 0.05) weights)": (
            both,
            dict(
                count=n // 4,
                value_kind="planes",
                elements=rng.normal(0, 0.05, n // 4).astype(np.float32),
                plane_rotation=1,
                element_type=0,
                element_size=4,
            ),
        ),
        f"16-bit codebook indices (K={k} float32)": (
            ("rans",),
            dict(
                count=n // 4,
                value_kind="codebook",
                codebook=np.sort(rng.normal(0, 1, k)).astype(np.float32),
                indices=np.clip(
                    np.round(rng.normal(k / 2, k / 8, n // 4)), 0, k - 1
                ).astype(np.int64),
                element_type=0,
                element_size=4,
            ),
        ),
    }


def rans_rows(n: int, repeats: int = 11):
    """Decode throughput of rANS payloads (and the same symbols Huffman coded), MB/s
    of decoded output per core from CPU time (median of `repeats` calls), beside a
    memcpy of the decoded bytes measured in the same run."""
    from tfedge.codecs import decode_payload, encode_payload, inspect_payload
    from tfedge.runtime._native import decode_payload_native

    rows = []
    for name, (codings, kw) in _rans_cases(n).items():
        for coding in codings:
            payload = encode_payload(layout="dense", value_coding=coding, **kw)
            out = decode_payload_native(payload)
            assert np.array_equal(out, decode_payload(payload))
            mb = out.size / 1e6
            streams = inspect_payload(payload).value_streams
            lanes = {(s.scale_bits, s.lanes) for s in streams if s.lanes}
            t_native = _median_cpu_time(
                lambda p=payload: decode_payload_native(p), repeats
            )
            t_numpy = _median_cpu_time(lambda p=payload: decode_payload(p), 3)
            dst = np.empty_like(out)
            t_copy = _median_cpu_time(lambda d=dst, o=out: np.copyto(d, o), repeats)
            rows.append(
                {
                    "symbols": name,
                    "coding": coding
                    + "".join(f" L={b} lanes={la}" for b, la in sorted(lanes)),
                    "decoded MB": mb,
                    "bits/symbol": 8 * len(payload) / sum(s.count for s in streams),
                    "native MB/s": mb / t_native,
                    "native / memcpy": t_copy / t_native,
                    "numpy MB/s": mb / t_numpy,
                    "memcpy MB/s": mb / t_copy,
                }
            )
    return rows


def _latency(interp, x, invokes: int) -> float:
    d = interp.get_input_details()[0]
    out = interp.get_output_details()[0]["index"]
    samples = iter(np.resize(np.arange(len(x)), invokes + 10))

    def step():
        interp.set_tensor(d["index"], x[next(samples)][None].astype(d["dtype"]))
        interp.invoke()
        interp.get_tensor(out)

    return median_time(step, invokes, warmup=5)


def latency_rows(model_name: str, plain: bytes, packed: bytes, x, invokes: int):
    from ai_edge_litert.interpreter import Interpreter as StockInterpreter

    import tfedge
    from tfedge.runtime._interpreter import Interpreter, load_decode_delegate

    expanded = tfedge.expand(packed)
    persistent = load_decode_delegate(constant_weights="0")
    variants = {
        "plain (stock interpreter)": StockInterpreter(
            model_content=plain, num_threads=1
        ),
        "expanded (stock interpreter)": StockInterpreter(
            model_content=expanded, num_threads=1
        ),
        "packed (tfedge.Interpreter)": Interpreter(model_content=packed, num_threads=1),
        "packed (decoder op, constant_weights=0)": StockInterpreter(
            model_content=packed, num_threads=1, experimental_delegates=[persistent]
        ),
    }
    times = {}
    for name, interp in variants.items():
        interp.allocate_tensors()
        times[name] = _latency(interp, x, invokes)
    base = times["plain (stock interpreter)"]
    return [
        {
            "model": model_name,
            "path": name,
            "invoke us": t * 1e6,
            "vs plain": t / base,
            "file KB": len(
                {"plain": plain, "expanded": expanded}.get(name.split()[0], packed)
            )
            / 1e3,
        }
        for name, t in times.items()
    ]


def load_rows(plain: bytes, packed: bytes, repeats: int = 3):
    from ai_edge_litert.interpreter import Interpreter as StockInterpreter

    import tfedge
    from tfedge.codecs import decode_payload
    from tfedge.runtime._interpreter import Interpreter

    def load(content):
        it = StockInterpreter(model_content=content, num_threads=1)
        it.allocate_tensors()
        return it

    def packed_interp():
        it = Interpreter(model_content=packed, num_threads=1)
        it.allocate_tensors()
        return it

    steps = {
        "plain: load + allocate": lambda: load(plain),
        "tfedge.expand (native)": lambda: tfedge.expand(packed),
        "tfedge.expand (native) + load + allocate": lambda: load(tfedge.expand(packed)),
        "tfedge.expand (numpy) + load + allocate": lambda: load(
            tfedge.expand(packed, decoder=decode_payload)
        ),
        "tfedge.Interpreter(packed) + allocate": packed_interp,
    }
    rows = []
    for name, fn in steps.items():
        t = median_time(fn, repeats, warmup=1)
        rows.append({"step": name, "seconds": t})
    base = rows[0]["seconds"]
    for r in rows:
        r["vs plain load"] = r["seconds"] / base
    return rows


def main(argv):
    del argv
    import tfedge
    from tfedge.runtime._native import native_available

    if not native_available():
        raise app.UsageError("the native decoder is not built; reinstall tfedge")
    banner = print_banner(
        "Decoder: native throughput, invoke latency, 25M-parameter load",
        "python scripts/bench_decoder.py " + " ".join(sys.argv[1:]),
    )
    load_before = os.getloadavg()
    rans = rans_rows(_RANS_SYMBOLS.value)
    load = {"before": load_before, "after": os.getloadavg()}
    # TFEDGE_NO_SIMD set: the native decoder's scalar rounds and table CRC.
    scalar = bool(os.environ.get("TFEDGE_NO_SIMD"))
    load["native_simd"] = not scalar
    print(
        "### rANS decode throughput (MB/s of decoded output per core, CPU time; "
        "load average {:.2f} before, {:.2f} after, on {} cores{})\n".format(
            load_before[0],
            load["after"][0],
            os.cpu_count(),
            "; TFEDGE_NO_SIMD: scalar native code" if scalar else "",
        )
    )
    print(markdown_table(rans))
    if _RANS_ONLY.value:
        write_json(_JSON.value, {"banner": banner, "rans": rans, "rans_load": load})
        return
    (x_tr, y_tr), (x_te, _y_te) = load_fashion_mnist()
    x_te = x_te[:1000]
    results = {"banner": banner}

    logging.info("training LeNet-300-100 and LeNet-5 on Fashion-MNIST")
    models = {}
    unpruned = {}
    for name, build, xs in (
        ("LeNet-300-100", lenet300, (x_tr, x_te)),
        ("LeNet-5", lenet5, (x_tr[..., None], x_te[..., None])),
    ):
        m = _trained(build, xs[0], y_tr)
        if name == "LeNet-300-100":
            # Unpruned too, lossy (dense codebook) and lossless (raw bytes, Huffman).
            dense = to_tflite(m)
            unpruned["shared"] = bytes(tfedge.compress(dense, progress=False))
            unpruned["lossless"] = bytes(
                tfedge.compress(dense, lossless=True, progress=False)
            )
        _prune(m, _SPARSITY)
        plain = to_tflite(m)
        packed = bytes(
            tfedge.compress(plain, representative_data=xs[1][:64], progress=False)
        )
        models[name] = (plain, packed, xs[1])

    logging.info("building the %d-parameter model", _BIG.value)
    big = _big_model(_BIG.value)
    _prune(big, _SPARSITY)
    big_params = big.count_params()
    big_plain = to_tflite(big)
    t0 = time.perf_counter()
    big_packed = bytes(tfedge.compress(big_plain, progress=False))
    pack_seconds = time.perf_counter() - t0
    del big

    rows = throughput_rows("LeNet-300-100", models["LeNet-300-100"][1])
    rows += throughput_rows("LeNet-300-100 unpruned", unpruned["shared"])
    rows += throughput_rows("LeNet-300-100 lossless", unpruned["lossless"])
    rows += throughput_rows(f"MLP {big_params / 1e6:.1f}M", big_packed)
    print(
        "### Decode throughput (MB/s of decoded output per core from CPU time; "
        "and from wall time)\n"
    )
    print(markdown_table(rows))
    results["throughput"] = rows

    lat = []
    for name, (plain, packed, x) in models.items():
        lat += latency_rows(name, plain, packed, x, _INVOKES.value)
    print("\n### Invoke latency (batch 1, 1 thread, median)\n")
    print(markdown_table(lat))
    results["latency"] = lat

    load = load_rows(big_plain, big_packed)
    print(
        f"\n### Load of a {big_params / 1e6:.1f}M-parameter model "
        f"(plain {len(big_plain) / 1e6:.1f} MB, packed {len(big_packed) / 1e6:.1f} MB, "
        f"packing took {pack_seconds:.0f} s)\n"
    )
    print(markdown_table(load))
    results["load"] = load
    results["rans"] = rans
    results["rans_load"] = load
    results["big_model"] = {
        "params": big_params,
        "plain_bytes": len(big_plain),
        "packed_bytes": len(big_packed),
        "pack_seconds": pack_seconds,
    }
    write_json(_JSON.value, results)


if __name__ == "__main__":
    app.run(main)
