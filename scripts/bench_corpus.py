"""Published models: tfedge against gzip, xz, zstd and Google's ai-edge-quantizer.

Reproduces issue 16 item 6 and the measure of issue 20: for every model of the pinned
corpus (tests/corpus/manifest.json, fetched by scripts/corpus.py), the size ratio
(original bytes / packed bytes) of

- `gzip -9`, `xz -9e` and `zstd -19 --long` on the whole file;
- tfedge lossless, and tfedge lossy at its default tolerance (with the drift of the
  written file and the seconds `compress` took);
- ai-edge-quantizer's weight-only int8 and int4 per-channel recipes on float models,
  with their drift, and tfedge lossy held to each recipe's drift (`tolerance` set
  to it), and both held to one standard: the quantizer's files judged as tfedge judges
  its own (`Reference.fresh_drift`, the drift estimated for fresh inputs when larger
  than the measured one) and tfedge held to that drift; on float16 models, which the
  quantizer leaves as they are, their kernels as int8 with a scale per output channel
  (`int8_kernels`), and tfedge held to that file's drift;
- the constant buffers alone: tfedge lossless (packed or carried) against xz and zstd of
  the same buffers concatenated in file order. The index vectors of `DENSIFY`-sparse
  tensors (flatbuffer tables, not buffers) count on both sides: tfedge packs most of
  them into its payloads, so xz and zstd get every such index after the buffers, and
  tfedge's side adds the index vectors its file still holds in its tables.

Drift is the metric `tfedge.compress(tolerance=...)` checks, max|y - y_ref| / max|y_ref|
over the worst output, measured on the same inputs for every tool (generated once per
model, (2 + GROW_HELD_OUT) x --num_samples of them, passed to `compress` as its
representative data: its search and held-out samples, then the spare held-out samples
it draws on when its estimated reserve is large): float inputs uniform in the
range the corpus manifest gives for the model (`input_range`; [-1, 1] where it gives
none), integer inputs over their whole quantized range. A packed tfedge file is
measured through `tfedge.expand`, i.e. on the bytes it decodes to.

ai-edge-quantizer runs in its own environment (scripts/_aieq_env.sh makes
.venv-aieq once), on a copy of the model whose operator codes carry the newer
`builtin_code` field (it does not read the deprecated one) and whose tensor names are
unique (it keys tensors by name). It leaves float16 weights behind DEQUANTIZE as they
are; the notes under the table say so per model.

Compressors: gzip is the `gzip` program (Debian essential); xz is Python's `lzma`
(liblzma, preset 9 | PRESET_EXTREME: the bytes `xz -9e` writes); zstd is the `zstandard`
package from tfedge's test extras (level 19 with long-distance matching over a 2^27
window: `zstd -19 --long`).

    .venv/bin/python scripts/bench_corpus.py [--json PATH] [--only NAME,...]
        [--models_dir DIR] [--noaieq | --aieq_from JSON] [--nolossy] [--num_samples 16]
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command line (defined when run, not on import, so tests can import this)."""
    flags.DEFINE_string("json", None, "Write the results as JSON to this path.")
    flags.DEFINE_list(
        "only", [], "Benchmark only these models, in this order (names, no .tflite)."
    )
    flags.DEFINE_string(
        "models_dir",
        None,
        "Benchmark every .tflite in this folder instead of the pinned corpus.",
    )
    flags.DEFINE_bool("aieq", True, "Run ai-edge-quantizer (in its own environment).")
    flags.DEFINE_bool(
        "lossy",
        True,
        "Run tfedge's lossy mode (--nolossy: every other column, in minutes).",
    )
    flags.DEFINE_integer(
        "num_samples",
        16,
        "compress's search samples; as many again are held out, and "
        "_compress.GROW_HELD_OUT times as many are spare (held out when the search's "
        "reserve is large); every drift is measured on all of them.",
    )
    flags.DEFINE_integer("seed", 0, "Seed of the generated inputs.")
    flags.DEFINE_string(
        "aieq_from",
        None,
        "Take ai-edge-quantizer's columns (ratios and drifts) from this earlier "
        "--json output instead of running it (implies --noaieq): the drifts are on "
        "the same inputs when --seed and --num_samples are the same, so tfedge's "
        "columns at the recipes' drifts can be remeasured without the quantizer's "
        "environment.",
    )


# The row of every model: issue 16 item 6's keys, then issue 20's weight-byte keys.
COLUMNS = [
    "model",
    "source",
    "bytes",
    "weight_dtype",
    "gzip",
    "xz",
    "zstd",
    "tfedge_lossless",
    "tfedge_lossy",
    "lossy_drift",
    "aieq_int8",
    "aieq_int8_drift",
    "aieq_int4",
    "aieq_int4_drift",
    "tfedge_at_int8_drift",
    "tfedge_at_int4_drift",
    "compress_s",
    "lossless_weight_bytes",
    "xz_weight_bytes",
    "zstd_weight_bytes",
]
RECIPES = ("int8", "int4")
# Float inputs are drawn uniformly from the model's own input range (the manifest's
# `input_range`); where none is known, from this one: the range normalised image and
# audio inputs take, unlike N(0, 1) samples whose tails leave it.
DEFAULT_INPUT_RANGE = (-1.0, 1.0)
# zstd's --long: long-distance matching over a window of 2^27 bytes.
ZSTD_LEVEL = 19
ZSTD_LONG_WINDOW_LOG = 27
# The weight dtypes ai-edge-quantizer's weight-only recipes start from.
FLOAT_DTYPES = ("float32", "float16")


# --- general-purpose compressors --------------------------------------------------


def gzip_bytes(data: bytes) -> int:
    """Size of `gzip -9 -n` output (gzip's own deflate, not zlib's: they differ)."""
    out = subprocess.run(
        ["gzip", "-9", "-n", "-c"], input=data, capture_output=True, check=True
    ).stdout
    return len(out)


def xz_bytes(data: bytes) -> int:
    """Size of `xz -9e` output (the same liblzma preset and container)."""
    return len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))


def zstd_bytes(data: bytes) -> int:
    """Size of `zstd -19 --long` output."""
    import zstandard

    params = zstandard.ZstdCompressionParameters.from_level(
        ZSTD_LEVEL,
        source_size=len(data),
        enable_ldm=True,
        window_log=ZSTD_LONG_WINDOW_LOG,
    )
    return len(zstandard.ZstdCompressor(compression_params=params).compress(data))


def compressor_versions() -> dict:
    import zstandard

    gz = subprocess.run(["gzip", "--version"], capture_output=True, text=True)
    return {
        "gzip": gz.stdout.splitlines()[0] if gz.stdout else "unknown",
        "liblzma": getattr(lzma, "__version__", None) or _liblzma_version(),
        "zstandard": f"{zstandard.__version__} (libzstd "
        + ".".join(str(v) for v in zstandard.ZSTD_VERSION)
        + ")",
    }


def _liblzma_version() -> str:
    xz = shutil.which("xz")
    if not xz:
        return "python lzma"
    out = subprocess.run([xz, "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[-1] if out else "python lzma"


# --- the model's constant buffers -------------------------------------------------


def constant_buffers(data: bytes) -> list[tuple[int, int, str]]:
    """(file offset, size, dtype name) of every non-empty buffer a tensor refers to,
    in file order: the weights tfedge's report lists, one entry per buffer."""
    from tfedge.tflite import TYPES, schema

    s = schema()
    fb = s.Model.GetRootAs(data, 0)
    dtypes: dict[int, str] = {}
    for si in range(fb.SubgraphsLength()):
        sg = fb.Subgraphs(si)
        for ti in range(sg.TensorsLength()):
            t = sg.Tensors(ti)
            if t.Buffer() > 0 and t.Buffer() not in dtypes:
                info = TYPES.get(t.Type())
                dtypes[t.Buffer()] = info.name.lower() if info else str(t.Type())
    spans = []
    for b, dtype in dtypes.items():
        buf = fb.Buffers(b)
        if buf.Offset() > 1:
            start, size = buf.Offset(), buf.Size()
        else:
            o = buf._tab.Offset(4)  # the `data` field: a [ubyte] vector
            if not o:
                continue
            start, size = buf._tab.Vector(o), buf._tab.VectorLen(o)
        if size:
            spans.append((start, size, dtype))
    return sorted(spans)


def weight_dtype(spans: list[tuple[int, int, str]]) -> str:
    """The dtype holding most weight bytes (int32 biases and shapes count last)."""
    by = Counter()
    for _, size, dtype in spans:
        by[dtype] += size
    main = [d for d, _ in by.most_common() if d != "int32"]
    return main[0] if main else (next(iter(by)) if by else "none")


def concatenated(data: bytes, spans) -> bytes:
    return b"".join(data[start : start + size] for start, size, _ in spans)


def order0_floors(data: bytes, spans) -> tuple[int, int]:
    """Two floors of coding each constant buffer on its own, in bytes over all buffers:
    the order-0 entropy of its bytes, and that plus the cost of learning the
    distribution, (K - 1) / 2 x log2(n) bits for K distinct byte values in n bytes
    (Rissanen's bound for universal coding; a stored table or an adaptive coder pays
    about as much), each buffer at most its own n bytes. Issue 20's wake-word floor:
    xz, which codes all buffers as one stream, needs less than the second. Bytes are
    the symbols: a floor for int8 and uint8 weights (their values), not for wider
    types, which tfedge codes as values, codebooks or byte planes."""
    entropy = floor = 0.0
    for start, size, _ in spans:
        counts = np.bincount(np.frombuffer(data, np.uint8, size, start), minlength=256)
        p = counts[counts > 0] / size
        h = float(-(p * np.log2(p)).sum()) * size / 8
        entropy += h
        floor += min(size, h + (p.size - 1) / 2 * np.log2(max(size, 2)) / 8)
    return round(entropy), round(floor)


def sparsity_index(data: bytes) -> bytes:
    """The index vectors (array_segments, array_indices) of every sparse tensor's
    table, concatenated in tensor order: the part of a DENSIFY-sparse weight that is
    not in its buffer."""
    from tfedge.tflite import index_data, read

    return b"".join(
        index_data(t) for sg in read(data).subgraphs or [] for t in sg.tensors or []
    )


def for_the_quantizer(data: bytes) -> bytes:
    """The copy ai-edge-quantizer is given: operator codes carry `builtin_code`
    (schema 3a and later) where only `deprecated_builtin_code` was set, and tensor
    names are unique across subgraphs (its ParamsGenerator keys tensors by name;
    control-flow subgraphs repeat names like "arg0"). Renaming changes no computation:
    signatures refer to tensors by index. `data` itself when nothing needs changing."""
    from tfedge.tflite import read, tensor_name, write

    model = read(data)
    changed = False
    for oc in model.operatorCodes or []:
        if oc.builtinCode < oc.deprecatedBuiltinCode:
            oc.builtinCode = oc.deprecatedBuiltinCode
            changed = True
    seen: set[str] = set()
    for si, sg in enumerate(model.subgraphs):
        for t in sg.tensors or []:
            name, k = tensor_name(t), 0
            while name in seen:
                k += 1
                name = f"{tensor_name(t)}__{si}_{k}"
            if k:
                t.name = name
                changed = True
            seen.add(name)
    return write(model) if changed else data


# The ops whose weight input (index 1) int8_kernels quantizes, with the axis of its
# output channels (TFLite's layouts: OHWI, 1HWO, (out, in), OHWI).
_KERNEL_AXIS = {
    "CONV_2D": 0,
    "DEPTHWISE_CONV_2D": 3,
    "FULLY_CONNECTED": 0,
    "TRANSPOSE_CONV": 0,
}


def int8_kernels(data: bytes) -> bytes | None:
    """What int8 weights give a float16 model, which ai-edge-quantizer leaves as it is:
    every float16 kernel behind DEQUANTIZE (the weight input of the _KERNEL_AXIS ops)
    stored as int8 with a symmetric scale per output channel, as the quantizer's
    weight-only int8 recipe stores float32 kernels; DEQUANTIZE then gives the same
    float32 tensor from it. Biases, other constants and DENSIFY-sparse kernels stay
    float16. None when the model has no such kernel."""
    from tfedge.tflite import opcode_name, read, schema, tensor_array, write

    s = schema()
    model = read(data)
    users: dict[int, int] = {}  # buffer -> tensors referring to it
    for sg in model.subgraphs:
        for t in sg.tensors or []:
            users[t.buffer] = users.get(t.buffer, 0) + 1
    done = 0
    for sg in model.subgraphs:
        axis_of: dict[int, set[int]] = {}  # tensor -> axes its consumers need
        for op in sg.operators or []:
            axis = _KERNEL_AXIS.get(opcode_name(model, op.opcodeIndex))
            if axis is not None and op.inputs is not None and len(op.inputs) > 1:
                axis_of.setdefault(int(op.inputs[1]), set()).add(axis)
        for op in sg.operators or []:
            if opcode_name(model, op.opcodeIndex) != "DEQUANTIZE":
                continue
            t = sg.tensors[int(op.inputs[0])]
            axes = axis_of.get(int(op.outputs[0]), set())
            if t.type != s.TensorType.FLOAT16 or len(axes) != 1 or users[t.buffer] != 1:
                continue
            w = tensor_array(model, t).astype(np.float32)
            (axis,) = axes
            if w.size == 0 or w.ndim <= axis:
                continue  # no constant (a DENSIFY output): left as it is
            reduce = tuple(a for a in range(w.ndim) if a != axis)
            scale = np.max(np.abs(w), axis=reduce, keepdims=True) / 127.0
            scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
            q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
            t.type = s.TensorType.INT8
            t.quantization = s.QuantizationParametersT()
            t.quantization.scale = scale.reshape(-1)
            t.quantization.zeroPoint = np.zeros(scale.size, np.int64)
            t.quantization.quantizedDimension = axis
            model.buffers[t.buffer].data = q.reshape(-1).view(np.uint8)
            done += 1
    return write(model) if done else None


# --- inputs and drift -------------------------------------------------------------


class Reference:
    """The original model's outputs on the inputs every tool is measured on."""

    def __init__(
        self,
        data: bytes,
        *,
        num_samples: int,
        seed: int,
        input_range: tuple[float, float] = DEFAULT_INPUT_RANGE,
    ):
        # Private library functions, used on purpose: the drift must be the one
        # `compress(tolerance=...)` checks, computed by the same code.
        from tfedge.pack import ModelRunner, make_samples
        from tfedge.pack._compress import GROW_HELD_OUT

        runner = ModelRunner(data)

        def drawn(count: int, seed: int) -> list:
            samples = make_samples(runner, None, count, seed)
            rng = np.random.default_rng(seed + 1)
            for entry, entry_samples in zip(runner.entries, samples, strict=True):
                for sample in entry_samples:
                    for k, detail in enumerate(entry.inputs):
                        if np.dtype(detail["dtype"]).kind == "f":
                            sample[k] = rng.uniform(
                                *input_range, sample[k].shape
                            ).astype(sample[k].dtype)
            return samples

        # compress searches on alternate samples of the first 2 x num_samples and
        # holds the others out, then draws on the spare ones when its estimated
        # reserve is large (`_compress.GROW_WHEN_RESERVE`). Every tool's drift is
        # measured on all of them.
        first = drawn(2 * num_samples, seed)
        spare = drawn(GROW_HELD_OUT * num_samples, seed + 2)
        self.samples = [a + b for a, b in zip(first, spare, strict=True)]
        self.num_samples = num_samples
        self.keys = [e.key for e in runner.entries]
        self.outputs = runner.run(self.samples)

    def representative_data(self):
        """The samples in the form `compress(representative_data=...)` takes."""
        if len(self.keys) == 1:
            return self.samples[0]
        return dict(zip(self.keys, self.samples, strict=True))

    def drift(self, model_bytes: bytes) -> float:
        from tfedge.pack import ModelRunner, drift

        return drift(self.outputs, ModelRunner(model_bytes).run(self.samples))

    def fresh_drift(self, model_bytes: bytes) -> float:
        """The drift `compress` would hold this model to: the larger of its drift on
        these samples and the drift estimated for `_compress.FRESH_SAMPLES` fresh
        inputs from its per-sample errors (`_compress._judged`), the standard
        tfedge's own files meet."""
        from tfedge.pack import ModelRunner, _compress, _verify

        got = ModelRunner(model_bytes).run(self.samples)
        d, errors = _verify.drift_and_errors(self.outputs, got)
        return _compress._judged(_compress._Measured(d, d, errors))


# --- the tools --------------------------------------------------------------------


def aieq_python() -> str:
    """The python of ai-edge-quantizer's own environment (made on first use)."""
    out = subprocess.run(
        ["bash", os.path.join(HERE, "_aieq_env.sh")],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


_VERSION_OF_AIEQ = (
    "from importlib.metadata import version; print(version('ai-edge-quantizer'))"
)


def aieq_quantize(python: str, data: bytes, recipe: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in.tflite"), os.path.join(tmp, "out.tflite")
        with open(src, "wb") as f:
            f.write(for_the_quantizer(data))
        proc = subprocess.run(
            [
                python,
                os.path.join(HERE, "_aieq_quantize.py"),
                f"--model={src}",
                f"--out={dst}",
                f"--recipe={recipe}",
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"ai-edge-quantizer failed: {last}")
        with open(dst, "rb") as f:
            return f.read()


def tfedge_compress(data: bytes, ref: Reference, **options):
    """(packed bytes, drift of the bytes it expands to, seconds)."""
    import tfedge

    t0 = time.perf_counter()
    packed = tfedge.compress(
        data,
        representative_data=ref.representative_data(),
        num_samples=ref.num_samples,
        progress=False,
        **options,
    )
    seconds = time.perf_counter() - t0
    out = bytes(packed)
    return out, ref.drift(tfedge.expand(out)), seconds, packed.report


def _short(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:240]


def bench_model(
    name: str,
    source: str,
    data: bytes,
    *,
    python: str | None,
    num_samples: int = 16,
    seed: int = 0,
    input_range: tuple[float, float] = DEFAULT_INPUT_RANGE,
    lossy: bool = True,
    aieq_row: dict | None = None,
):
    """One row (COLUMNS) and the details behind it (notes, extra drifts); `python`
    is ai-edge-quantizer's (None: not run, unless `aieq_row`, an earlier run's row of
    this model, gives its columns); `lossy=False` leaves out every tfedge lossy
    column."""
    spans = constant_buffers(data)
    weights = concatenated(data, spans) + sparsity_index(data)
    n = len(data)
    row = dict.fromkeys(COLUMNS)
    row.update(
        model=name,
        source=source,
        bytes=n,
        weight_dtype=weight_dtype(spans),
        gzip=n / gzip_bytes(data),
        xz=n / xz_bytes(data),
        zstd=n / zstd_bytes(data),
        xz_weight_bytes=xz_bytes(weights),
        zstd_weight_bytes=zstd_bytes(weights),
    )
    notes: list[str] = []
    order0, learned = order0_floors(data, spans)
    details: dict = {
        "notes": notes,
        "weight_bytes": len(weights),
        "order0_weight_bytes": order0,
        "order0_learned_weight_bytes": learned,
    }

    import tfedge

    t0 = time.perf_counter()
    try:
        lossless = tfedge.compress(data, lossless=True, progress=False)
        row["tfedge_lossless"] = n / len(lossless)
        # The report counts the index of the DENSIFY tensors it packed; the ones
        # it carried keep theirs in the tables.
        row["lossless_weight_bytes"] = lossless.report.weight_bytes[1] + len(
            sparsity_index(bytes(lossless))
        )
        details["lossless_s"] = time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001 - reported in the row; other models go on
        notes.append(f"tfedge lossless: {_short(e)}")

    try:
        ref = Reference(
            data, num_samples=num_samples, seed=seed, input_range=input_range
        )
    except Exception as e:  # noqa: BLE001 - a model the stock interpreter cannot run
        ref = None
        notes.append(f"no drift measurable in the stock interpreter: {_short(e)}")

    if not lossy:
        notes.append("tfedge lossy: not run (--nolossy)")
    elif ref is not None:
        try:
            out, drift, seconds, report = tfedge_compress(data, ref)
            row.update(tfedge_lossy=n / len(out), lossy_drift=drift, compress_s=seconds)
            details["lossy_reported_drift"] = report.drift
            details["lossy_held_out_drift"] = report.held_out_drift
            details["lossy_stage_seconds"] = report.stage_seconds
        except Exception as e:  # noqa: BLE001 - reported in the row; others go on
            notes.append(f"tfedge lossy: {_short(e)}")

    if lossy and ref is not None and row["weight_dtype"] == "float16":
        _int8_kernels_columns(data, ref, details)
    if python is None and aieq_row is None:
        return row, details
    if row["weight_dtype"] not in FLOAT_DTYPES:
        notes.append(
            f"ai-edge-quantizer: not run ({row['weight_dtype']} weights; its "
            "weight-only recipes start from float weights)"
        )
        return row, details
    lossless_ratio = row["tfedge_lossless"]
    for recipe in RECIPES:
        if python is None:
            row[f"aieq_{recipe}"] = aieq_row.get(f"aieq_{recipe}")
            q_drift = aieq_row.get(f"aieq_{recipe}_drift")
            if ref is None or q_drift is None:
                continue
            row[f"aieq_{recipe}_drift"] = q_drift
            fresh = aieq_row.get(f"aieq_{recipe}_fresh_drift")
            if fresh is not None:
                details[f"aieq_{recipe}_fresh_drift"] = fresh
        else:
            q_drift = _run_aieq(python, data, recipe, spans, ref, row, details)
            if q_drift is None:
                continue
        key = f"tfedge_at_{recipe}_drift"
        if q_drift == 0.0:
            # Held to zero drift, tfedge may only pack losslessly.
            row[key] = lossless_ratio
            notes.append(f"{key}: the recipe's drift is 0, so tfedge lossless")
            continue
        if not lossy:
            continue
        if not q_drift < 1.0:
            notes.append(f"{key}: the recipe's drift {q_drift:.3g} is no tolerance")
            continue
        try:
            out, drift, seconds, _ = tfedge_compress(data, ref, tolerance=q_drift)
            row[key] = n / len(out)
            details[f"{key}_measured"] = drift
            details[f"{key}_s"] = seconds
            if drift > q_drift:
                notes.append(f"{key}: written file drifts {drift:.4g} > {q_drift:.4g}")
        except Exception as e:  # noqa: BLE001 - reported in the row; others go on
            notes.append(f"tfedge at the {recipe} drift: {_short(e)}")
        # Both files held to one standard: tfedge's (the drift estimated for fresh
        # inputs), which its own files meet and the recipe's are measured by.
        fresh = details.get(f"aieq_{recipe}_fresh_drift")
        if fresh is None or not q_drift < fresh < 1.0:
            continue
        try:
            out, _, _, _ = tfedge_compress(data, ref, tolerance=fresh)
            details[f"tfedge_at_{recipe}_fresh_drift"] = n / len(out)
        except Exception as e:  # noqa: BLE001 - reported; others go on
            notes.append(f"tfedge at the {recipe} fresh drift: {_short(e)}")
    return row, details


def _int8_kernels_columns(data: bytes, ref: Reference, details: dict) -> None:
    """A float16 model's int8 kernels (`int8_kernels`): its ratio and drift, and
    tfedge held to that drift, in `details` (the quantizer's columns are the
    untouched model's)."""
    notes = details["notes"]
    q = int8_kernels(data)
    if q is None:
        notes.append("int8 kernels: no float16 kernel behind DEQUANTIZE")
        return
    try:
        q_drift = ref.drift(q)
    except Exception as e:  # noqa: BLE001 - reported; other models go on
        notes.append(f"int8 kernels: {_short(e)}")
        return
    details.update(int8_kernels=len(data) / len(q), int8_kernels_drift=q_drift)
    if not q_drift < 1.0:
        notes.append(f"int8 kernels drift {q_drift:.3g}: no tolerance tfedge takes")
        return
    try:
        out, drift, seconds, _ = tfedge_compress(data, ref, tolerance=q_drift)
    except Exception as e:  # noqa: BLE001 - reported; other models go on
        notes.append(f"tfedge at the int8 kernels' drift: {_short(e)}")
        return
    details.update(
        tfedge_at_int8_kernels_drift=len(data) / len(out),
        tfedge_at_int8_kernels_drift_measured=drift,
    )


def _run_aieq(python, data, recipe, spans, ref, row, details) -> float | None:
    """ai-edge-quantizer's `recipe` on `data`: fills its row columns (and in `details`
    the drift tfedge would hold it to, `Reference.fresh_drift`) and returns its drift
    (None when it failed or cannot be measured)."""
    notes = details["notes"]
    try:
        q = aieq_quantize(python, data, recipe)
    except Exception as e:  # noqa: BLE001 - reported in the row; others go on
        notes.append(f"ai-edge-quantizer {recipe}: {_short(e)}")
        return None
    row[f"aieq_{recipe}"] = len(data) / len(q)
    q_dtypes = Counter()
    for _, size, dtype in constant_buffers(q):
        q_dtypes[dtype] += size
    w_dtypes = Counter()
    for _, size, dtype in spans:
        w_dtypes[dtype] += size
    if w_dtypes["float16"] and q_dtypes["float16"] == w_dtypes["float16"]:
        notes.append(
            f"ai-edge-quantizer {recipe}: left the float16 weights behind "
            f"DEQUANTIZE untouched ({w_dtypes['float16']} bytes)"
        )
    if ref is None:
        return None
    try:
        q_drift = ref.drift(q)
    except Exception as e:  # noqa: BLE001 - reported in the row; others go on
        notes.append(f"ai-edge-quantizer {recipe}: drift: {_short(e)}")
        return None
    row[f"aieq_{recipe}_drift"] = q_drift
    details[f"aieq_{recipe}_fresh_drift"] = ref.fresh_drift(q)
    return q_drift


# --- the corpus -------------------------------------------------------------------


def corpus_models(models_dir: str | None) -> list[tuple[str, str, str, tuple]]:
    """(name, source, path, float input range) of every model to measure: the pinned
    corpus (fetched into its cache when missing), or the files of `models_dir`."""
    if models_dir:
        names = sorted(f for f in os.listdir(models_dir) if f.endswith(".tflite"))
        return [
            (
                f[: -len(".tflite")],
                f"file {f}",
                os.path.join(models_dir, f),
                DEFAULT_INPUT_RANGE,
            )
            for f in names
        ]
    import corpus

    corpus.fetch(log=lambda msg: print(msg, file=sys.stderr))
    return [
        (
            e["id"],
            f"{e['package']}=={e['version']}:{e['path']}",
            str(corpus.model_path(e)),
            tuple(e.get("input_range") or DEFAULT_INPUT_RANGE),
        )
        for e in corpus.models()
    ]


def display(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if v is None:
            out[k] = "n/a"
        elif k == "source":
            out[k] = v
        elif k.endswith("drift"):
            out[k] = f"{v:.3g}"
        elif isinstance(v, float):
            out[k] = f"{v:.2f}"
        else:
            out[k] = v
    return out


def main(argv):
    del argv
    banner = _common.print_banner(
        "Published models: tfedge against gzip, xz, zstd and ai-edge-quantizer",
        "scripts/bench_corpus.py",
    )
    banner.update(compressor_versions())
    earlier = None
    if FLAGS.aieq_from:
        with open(FLAGS.aieq_from) as f:
            prior = json.load(f)
        # The rows, with the drift tfedge would hold each recipe's file to.
        earlier = {
            r["model"]: {
                **r,
                **{
                    k: v
                    for k, v in prior.get("details", {}).get(r["model"], {}).items()
                    if k.startswith("aieq_")
                },
            }
            for r in prior["rows"]
        }
        banner["ai_edge_quantizer"] = (
            f"{prior['banner'].get('ai_edge_quantizer', 'unknown')} (columns from "
            f"{FLAGS.aieq_from}, measured {prior['banner'].get('date', '?')})"
        )
    python = aieq_python() if FLAGS.aieq and earlier is None else None
    if python:
        banner["ai_edge_quantizer"] = subprocess.run(
            [python, "-c", _VERSION_OF_AIEQ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    print(
        "Compressors: "
        + ", ".join(f"{k} {banner[k]}" for k in ("gzip", "liblzma", "zstandard"))
        + f"; ai-edge-quantizer {banner.get('ai_edge_quantizer', 'not run')}\n"
    )
    rows, details = [], {}
    models = corpus_models(FLAGS.models_dir)
    if FLAGS.only:
        unknown = sorted(set(FLAGS.only) - {m[0] for m in models})
        if unknown:
            raise app.UsageError(f"--only names unknown models: {', '.join(unknown)}")
        by_name = {m[0]: m for m in models}
        models = [by_name[name] for name in FLAGS.only]
    for name, source, path, input_range in models:
        with open(path, "rb") as f:
            data = f.read()
        t0 = time.perf_counter()
        row, det = bench_model(
            name,
            source,
            data,
            python=python,
            num_samples=FLAGS.num_samples,
            seed=FLAGS.seed,
            input_range=input_range,
            lossy=FLAGS.lossy,
            aieq_row=None if earlier is None else earlier.get(name),
        )
        det["seconds"] = time.perf_counter() - t0
        rows.append(row)
        details[name] = det
        print(f"... {name}: {det['seconds']:.0f} s", file=sys.stderr, flush=True)
        # Written after every model, so that a long run stopped early keeps its rows.
        _common.write_json(
            FLAGS.json, {"banner": banner, "rows": rows, "details": details}
        )
    print(_common.markdown_table([display(r) for r in rows], COLUMNS))
    print(
        "\nRatios are original bytes / output bytes; drift is max|y - y_ref| / "
        "max|y_ref| over the worst output on the same generated inputs for every "
        "tool; `*_weight_bytes` are the constant buffers alone (and DENSIFY "
        "tensors' index vectors).\n"
    )
    for name, det in details.items():
        for note in det["notes"]:
            print(f"- {name}: {note}")
    fresh = [
        (r, details[r["model"]], recipe)
        for r in rows
        for recipe in RECIPES
        if f"tfedge_at_{recipe}_fresh_drift" in details[r["model"]]
    ]
    if fresh:
        print(
            "\nThe quantizer's files held to tfedge's standard (Reference.fresh_drift: "
            "their drift here, or the drift estimated for 8 fresh inputs when larger), "
            "and tfedge held to the same drift:"
        )
    for r, det, recipe in fresh:
        print(
            f"- {r['model']} {recipe}: ai-edge-quantizer {r[f'aieq_{recipe}']:.2f} "
            f"({r[f'aieq_{recipe}_drift']:.3g}; estimated "
            f"{det[f'aieq_{recipe}_fresh_drift']:.3g}), tfedge "
            f"{det[f'tfedge_at_{recipe}_fresh_drift']:.2f}"
        )
    int8 = [(r["model"], details[r["model"]]) for r in rows]
    int8 = [(m, d) for m, d in int8 if "int8_kernels" in d]
    if int8:
        print(
            "\nFloat16 models (which ai-edge-quantizer leaves as they are), their "
            "kernels as int8 with a scale per output channel (int8_kernels): ratio "
            "(drift), and tfedge lossy held to that drift:"
        )
    for name, det in int8:
        at = det.get("tfedge_at_int8_kernels_drift")
        print(
            f"- {name}: int8 kernels {det['int8_kernels']:.2f} "
            f"({det['int8_kernels_drift']:.3g}), tfedge "
            + ("not run" if at is None else f"{at:.2f}")
        )
    print(
        "\nWeight bytes coded buffer by buffer, byte floors (order0_floors; for int8 "
        "weights): order-0 entropy / with the distribution's learning cost, against "
        "xz and tfedge:"
    )
    for row in rows:
        det = details[row["model"]]
        print(
            f"- {row['model']}: {det['order0_weight_bytes']:,} / "
            f"{det['order0_learned_weight_bytes']:,}; xz {row['xz_weight_bytes']:,}, "
            f"tfedge {row['lossless_weight_bytes'] or 0:,}"
        )


if __name__ == "__main__":
    define_flags()
    app.run(main)
