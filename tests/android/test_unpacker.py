"""The Java unpacker (android_demo/unpacker) against the Python reader and expander.

Java is compiled once per session. Payloads of every codec (dense/sparse x raw/codebook
x fixed/Huffman) decode to the same bytes as `tfedge.codecs.decode_payload`, and
malformed ones give the same message; packed models (real `tfedge.compress` output and
models packed here with one forced codec) expand to the same model as `tfedge.expand`,
with equal weight bytes and equal interpreter outputs. Every JUnit test of the unpacker
is one item here.
Skips, with the reason, when no JDK or no JUnit 4 is installed.
"""

from __future__ import annotations

import re
import struct
import zlib

import numpy as np
import pytest

import tfedge
from tests.android import _java
from tfedge.codecs import decode_payload, encode_payload
from tfedge.pack._graph import decode_ops, insert_decoders
from tfedge.tflite import TYPES, buffer_data, read, write

SEED = 0
# Mutated copies of each reference payload whose outcome (bytes or message) is compared.
MUTATIONS_PER_PAYLOAD = 60
CODECS = [
    (layout, kind, coding)
    for layout in ("dense", "sparse")
    for kind in ("raw", "codebook")
    for coding in ("fixed", "huffman")
]
# (element type, element size): float32 everywhere, plus the other sizes on some codecs.
ELEMENTS = {
    4: 0,
    1: 9,
    2: 1,
    8: 4,
}  # size -> TFLite type (FLOAT32, INT8, FLOAT16, INT64)
PAYLOAD_CASES = (
    [(c, 4) for c in CODECS]
    + [(c, 1) for c in CODECS]
    + [
        (("dense", "codebook", "huffman"), 2),
        (("sparse", "raw", "fixed"), 8),
        (("sparse", "codebook", "huffman"), 8),
    ]
)
MODELS = [
    "dense_f32",
    "conv_f32",
    "conv_int8",
    "densify",
    "two_subgraphs",
    "two_signatures",
    "custom_op",
]
# Pack every weight buffer from this size up, so the small test models are packed.
MIN_BYTES = 16
# Interpreter outputs of the Java- and Python-expanded models must be identical: both
# run the same weights bit for bit, so no tolerance.
OUTPUT_ATOL = 0.0


def _case_id(case) -> str:
    (layout, kind, coding), es = case
    return f"{layout}-{kind}-{coding}-{es}B"


def _junit_tests() -> list[str]:
    """Class.method of every @Test in the JUnit sources (read at collection time)."""
    names = []
    for path in sorted(_java.TEST_SOURCES.rglob("*Test.java")):
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"@Test\s+public\s+void\s+(\w+)\s*\(", text):
            names.append(f"{path.stem}.{m.group(1)}")
    return names


@pytest.fixture(scope="session")
def java_cp(tmp_path_factory) -> str:
    reason = _java.missing_tools()
    if reason:
        pytest.skip(reason)
    return _java.compile_unpacker(tmp_path_factory.mktemp("unpacker-classes"))


# ---------------------------------------------------------------- JUnit, item by item


@pytest.fixture(scope="session")
def junit_results(java_cp) -> dict[str, str]:
    classes = sorted({n.split(".")[0] for n in _junit_tests()})
    r = _java.java(java_cp, "TestReport", *[f"{_java.PACKAGE}.{c}" for c in classes])
    results = {}
    for line in r.stdout.splitlines():
        status, _, rest = line.partition(" ")
        if status in ("PASS", "FAIL", "SKIP"):
            name, _, message = rest.partition(": ")
            results[name] = f"{status} {message}".strip()
    total = re.search(r"^TOTAL (\d+) (\d+)$", r.stdout, re.M)
    assert total, f"JUnit did not finish:\n{r.stdout}\n{r.stderr}"
    return results


@pytest.mark.parametrize("test", _junit_tests())
def test_junit(junit_results, test):
    assert test in junit_results, f"JUnit did not run {test}"
    result = junit_results[test]
    if result.startswith("SKIP"):
        pytest.skip(result)
    assert result == "PASS", result


# ---------------------------------------------------------------- payloads


def _reference_payload(case, rng) -> bytes:
    (layout, kind, coding), es = case
    n = 3000
    etype = ELEMENTS[es]
    dtype = {1: np.int8, 2: np.float16, 4: np.float32, 8: np.int64}[es]
    common = dict(
        element_type=etype,
        element_size=es,
        count=n,
        layout=layout,
        value_kind=kind,
        value_coding=coding,
    )
    if layout == "sparse":
        common["gap_coding"] = coding
    if kind == "codebook":
        k = 12
        book = (rng.standard_normal(k) * 20).astype(dtype)
        idx = np.minimum(rng.geometric(0.35, n) - 1, k - 1)
        if layout == "sparse":
            idx[rng.random(n) < 0.85] = 0
        return encode_payload(codebook=book, indices=idx, **common)
    values = (rng.standard_normal(n) * 10).astype(dtype)
    if coding == "huffman":
        values = np.round(values / 4).astype(
            dtype
        )  # few distinct bytes: Huffman pays off
    if layout == "sparse":
        values[rng.random(n) < 0.85] = 0
    return encode_payload(elements=values, **common)


def _reseal(p: bytearray) -> bytes:
    """Sets the body size and CRC to match the bytes (so deeper checks are reached)."""
    struct.pack_into("<I", p, 20, len(p) - 28)
    crc = zlib.crc32(bytes(p[28:]), zlib.crc32(bytes(p[:24])))
    struct.pack_into("<I", p, 24, crc)
    return bytes(p)


def _mutations(payload: bytes, rng) -> list[bytes]:
    out = [payload[:n] for n in (0, 10, 27, 28, len(payload) - 1)]
    for _ in range(MUTATIONS_PER_PAYLOAD):
        p = bytearray(payload)
        for _ in range(rng.integers(1, 4)):
            # Mostly the header and the first stream headers, where the checks are.
            limit = len(p) if rng.random() < 0.3 else min(len(p), 80)
            p[int(rng.integers(0, limit))] = int(rng.integers(0, 256))
        if rng.random() < 0.2:
            p += bytes(rng.integers(0, 256, int(rng.integers(1, 4)), dtype=np.uint8))
        out.append(_reseal(p) if rng.random() < 0.85 else bytes(p))
    return out


def _python_outcome(payload: bytes, expected: int | None):
    try:
        return decode_payload(payload, expected_size=expected).tobytes()
    except tfedge.FormatError as e:
        return str(e)


@pytest.fixture(scope="session")
def payload_outcomes(java_cp, tmp_path_factory):
    """Per case: [(python outcome, java outcome)] over the payload and its mutants."""
    rng = np.random.default_rng(SEED)
    work = tmp_path_factory.mktemp("payloads")
    jobs, meta = [], []
    for case in PAYLOAD_CASES:
        reference = _reference_payload(case, rng)
        expected = 3000 * case[1]
        for j, p in enumerate([reference, *_mutations(reference, rng)]):
            src = work / f"{_case_id(case)}-{j}.bin"
            src.write_bytes(p)
            exp = expected if j % 2 == 0 else None  # with and without the tensor's size
            args = ("payload", str(src), str(src) + ".out")
            jobs.append(args + ((str(exp),) if exp is not None else ()))
            meta.append((case, p, exp, src))
    answers = _java.run_batch(java_cp, work, jobs)
    outcomes: dict = {case: [] for case in PAYLOAD_CASES}
    for (case, p, exp, src), err in zip(meta, answers, strict=True):
        java_out = (
            err if err is not None else (src.with_suffix(".bin.out")).read_bytes()
        )
        outcomes[case].append((_python_outcome(p, exp), java_out))
    return outcomes


@pytest.mark.parametrize("case", PAYLOAD_CASES, ids=_case_id)
def test_payload_decodes_like_numpy(payload_outcomes, case):
    python, java = payload_outcomes[case][0]
    assert isinstance(python, bytes), python
    assert java == python


@pytest.mark.parametrize("case", PAYLOAD_CASES, ids=_case_id)
def test_malformed_payload_same_outcome(payload_outcomes, case):
    """Truncated or mutated payloads: the same bytes, or the same error message."""
    results = payload_outcomes[case][1:]
    errors = 0
    for i, (python, java) in enumerate(results):
        assert type(java) is type(python), (
            f"mutant {i}: python {python!r}, java {java!r}"
        )
        assert java == python, f"mutant {i}"
        errors += isinstance(python, str)
    assert errors >= len(results) // 2  # the mutants do reach the checks


# ---------------------------------------------------------------- models


def _largest_buffer(model, float_only: bool) -> tuple[int, object]:
    best = None
    for sg in model.subgraphs:
        for t in sg.tensors:
            size = len(buffer_data(model, t.buffer))
            itemsize = TYPES[t.type].itemsize if t.type in TYPES else 0
            if not size or itemsize == 0 or (float_only and t.type != 0):
                continue
            # The expander wants the tensor's full size (not a DENSIFY tensor's values).
            if size != int(np.prod(t.shape if t.shape is not None else [])) * itemsize:
                continue
            if best is None or size > best[0]:
                best = (size, t)
    return (None, None) if best is None else (best[1].buffer, best[1])


def _force_codec(plain: bytes, codec, rng) -> tuple[bytes, bytes]:
    """(reference model, packed model): the largest weight buffer packed with exactly
    `codec`. Dense raw Huffman keeps any tensor type as it is; the other codecs take the
    largest float weight and make it suit the codec first (pruned for sparse, 16 values
    for codebook)."""
    layout, kind, coding = codec
    model = read(plain)
    lossless_raw = codec == ("dense", "raw", "huffman")
    b, tensor = _largest_buffer(model, float_only=not lossless_raw)
    if b is None:
        # Nothing the expander can take (a DENSIFY model holds only sparse values): mark
        # the model packed anyway, so both expanders still rewrite the whole model.
        insert_decoders(model, {}, "tests/android")
        return plain, write(model)
    es = TYPES[tensor.type].itemsize
    if lossless_raw:
        w = buffer_data(model, b).view(f"<u{es}").copy()
    else:
        w = buffer_data(model, b).view(np.float32).copy()
        if kind == "codebook":
            book = np.linspace(w.min(), w.max(), 16).astype(np.float32)
            w = book[np.abs(w[:, None] - book[None, :]).argmin(axis=1)]
        if layout == "sparse":
            w[np.abs(w) < np.quantile(np.abs(w), 0.8)] = 0.0
        model.buffers[b].data = np.frombuffer(w.tobytes(), np.uint8)
    reference = write(model)
    common = dict(
        element_type=tensor.type,
        element_size=es,
        count=w.size,
        layout=layout,
        value_kind=kind,
        value_coding=coding,
    )
    if layout == "sparse":
        common["gap_coding"] = coding
    if kind == "codebook":
        book, idx = np.unique(w, return_inverse=True)
        payload = encode_payload(
            codebook=book.astype(np.float32), indices=idx, **common
        )
    else:
        payload = encode_payload(elements=w, **common)
    model = read(reference)
    insert_decoders(model, {b: payload}, "tests/android")
    return reference, write(model)


def _outputs(model: bytes, seed: int = SEED) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model)
    outs = []
    for key in it.get_signature_list() or [None]:
        runner = it.get_signature_runner(key) if key else None
        if runner is None:
            it.allocate_tensors()
            rng = np.random.default_rng(seed)
            for d in it.get_input_details():
                it.set_tensor(d["index"], _sample(d["shape"], d["dtype"], rng))
            it.invoke()
            outs += [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]
            continue
        rng = np.random.default_rng(seed)
        inputs = {
            name: _sample(d["shape"], d["dtype"], rng)
            for name, d in sorted(runner.get_input_details().items())
        }
        result = runner(**inputs)
        outs += [np.asarray(result[k]).copy() for k in sorted(result)]
    return outs


def _sample(shape, dtype, rng):
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _canonical(model: bytes) -> bytes:
    """The model re-serialised by tfedge's writer: equal for equal content."""
    return write(read(model))


def _weights(model: bytes) -> list[bytes]:
    m = read(model)
    return [bytes(buffer_data(m, i)) for i in range(len(m.buffers))]


MODEL_CASES = (
    [("dense_f32", "compress-lossless"), ("conv_f32", "compress-lossless")]
    + [(name, "compress-lossy") for name in ("dense_f32", "conv_f32", "two_signatures")]
    # Models tfedge.compress may leave alone (int8, DENSIFY, unknown custom op): one
    # buffer packed losslessly by hand, so the whole schema goes through Java's writer.
    + [(name, "dense-raw-huffman") for name in MODELS]
    + [
        ("conv_f32", "-".join(codec))
        for codec in CODECS
        if codec != ("dense", "raw", "huffman")
    ]
)
# Models the stock interpreter cannot run (a custom operator nobody registers).
NOT_RUNNABLE = {"custom_op"}


@pytest.fixture(scope="session")
def expanded_models(java_cp, tflite_model, tmp_path_factory):
    """Per model case: (reference, packed, python-expanded, java-expanded or error)."""
    rng = np.random.default_rng(SEED)
    work = tmp_path_factory.mktemp("models")
    cases, jobs = {}, []
    for i, (name, how) in enumerate(MODEL_CASES):
        plain = tflite_model(name)
        if how.startswith("compress"):
            packed = bytes(
                tfedge.compress(
                    plain,
                    lossless=how.endswith("lossless"),
                    min_bytes=MIN_BYTES,
                    progress=False,
                )
            )
            reference = plain
        else:
            reference, packed = _force_codec(plain, tuple(how.split("-")), rng)
        src = work / f"{i}.tflite"
        src.write_bytes(packed)
        jobs.append(("expand", str(src), str(src) + ".out"))
        py = tfedge.expand(packed, decoder=decode_payload)
        cases[(name, how)] = (reference, packed, py, src)
    answers = _java.run_batch(java_cp, work, jobs)
    out = {}
    for (key, (reference, packed, py, src)), err in zip(
        cases.items(), answers, strict=True
    ):
        java_out = (
            err if err is not None else (src.with_suffix(".tflite.out")).read_bytes()
        )
        out[key] = (reference, packed, py, java_out)
    return out


@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_model_expands_like_python(expanded_models, case):
    reference, packed, py, java = expanded_models[case]
    assert isinstance(java, bytes), java
    assert any(m.name == b"tfedge" for m in read(packed).metadata), (
        "the case packed nothing"
    )
    assert not list(decode_ops(read(java)))
    # Same model as the Python expander, field for field and byte for byte.
    assert _canonical(java) == _canonical(py)
    if case[1] != "compress-lossy":
        # Lossless packing: every tensor's bytes equal the original's bit for bit.
        assert _weights(java) == _weights(reference)
    if case[0] in NOT_RUNNABLE:
        return
    java_out, py_out = _outputs(java), _outputs(py)
    assert len(java_out) == len(py_out) > 0
    for a, b in zip(java_out, py_out, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=OUTPUT_ATOL)


def test_expanded_size_is_close_to_python(expanded_models):
    """Java's writer only adds alignment padding and per-table vtables over Python's."""
    for case, (_, _, py, java) in expanded_models.items():
        assert abs(len(java) - len(py)) <= 0.05 * len(py) + 4096, case


# ---------------------------------------------------------------- corrupted files


def _payload_spans(packed: bytes) -> list[tuple[int, int]]:
    """(start, end) of each payload inside the file, in operator order."""
    model = read(packed)
    spans = []
    for si, _oi, p, _w in decode_ops(model):
        payload = bytes(buffer_data(model, model.subgraphs[si].tensors[p].buffer))
        start = packed.find(payload)
        assert start > 0
        spans.append((start, start + len(payload)))
    return spans


def _python_error(data: bytes) -> str | None:
    """The numpy reference's error (tfedge.expand would prefer the native decoder)."""
    try:
        tfedge.expand(data, decoder=decode_payload)
    except tfedge.FormatError as e:
        return str(e)
    return None


@pytest.fixture(scope="session")
def corrupted_outcomes(java_cp, expanded_models, tmp_path_factory):
    _, packed, _, _ = expanded_models[("conv_f32", "compress-lossy")]
    spans = _payload_spans(packed)
    assert len(spans) >= 2
    start, end = spans[0]
    variants = {}
    for name, pos in [
        ("header", start + 12),
        ("body", (start + end) // 2),
        ("crc", start + 25),
        ("last", end - 1),
    ]:
        bad = bytearray(packed)
        bad[pos] ^= 0x5A
        variants[f"payload-{name}"] = bytes(bad)
    # A payload whose CRC is kept valid: the deeper checks must agree too.
    bad = bytearray(packed)
    inner = bytearray(packed[start:end])
    inner[28:30] = b"\x00\x00"  # codebook size 0, or stream coding 0 with 0-bit symbols
    bad[start:end] = _reseal(inner)
    variants["payload-resealed"] = bytes(bad)
    # Two bad payloads: both readers report the first operator's (a body error) rather
    # than the last one's (a header error), since each decodes operator by operator.
    bad[spans[-1][0]] ^= 0x01
    variants["two-payloads"] = bytes(bad)
    variants["identifier"] = packed[:4] + b"TFL4" + packed[8:]
    variants["short"] = packed[:6]
    variants["root-past-end"] = struct.pack("<I", len(packed) + 8) + packed[4:]
    work = tmp_path_factory.mktemp("corrupted")
    jobs = []
    for name, data in variants.items():
        (work / name).write_bytes(data)
        jobs.append(("expand", str(work / name), str(work / (name + ".out"))))
    answers = _java.run_batch(java_cp, work, jobs)
    return {
        name: (_python_error(data), err)
        for (name, data), err in zip(variants.items(), answers, strict=True)
    }


@pytest.mark.parametrize(
    "variant",
    [
        "payload-header",
        "payload-body",
        "payload-crc",
        "payload-last",
        "payload-resealed",
        "two-payloads",
        "identifier",
        "short",
        "root-past-end",
    ],
)
def test_corrupted_file_same_error(corrupted_outcomes, variant):
    python, java = corrupted_outcomes[variant]
    assert python is not None, "Python accepted the corrupted file"
    assert java == python


def test_truncated_files_fail_in_both(java_cp, expanded_models, tmp_path):
    """Truncated flatbuffers: both refuse them (the detail after the common prefix is
    each parser's own)."""
    _, packed, _, _ = expanded_models[("dense_f32", "compress-lossless")]
    jobs, pythons = [], []
    for n in np.linspace(8, len(packed) - 1, 25).astype(int):
        (tmp_path / f"{n}.tflite").write_bytes(packed[:n])
        jobs.append(
            ("expand", str(tmp_path / f"{n}.tflite"), str(tmp_path / f"{n}.out"))
        )
        pythons.append(_python_error(packed[:n]))
    for python, java in zip(
        pythons, _java.run_batch(java_cp, tmp_path, jobs), strict=True
    ):
        assert python is not None and java is not None, (python, java)
        if python.startswith(("corrupted or truncated", "truncated")):
            assert java.split("(")[0].split(":")[0] in python or java.startswith(
                ("corrupted or truncated", "truncated", "byte 0: truncated")
            ), (python, java)
        else:
            assert java == python
