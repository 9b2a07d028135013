"""The Java unpacker (android_demo/unpacker) against the Python reader and expander.

Java is compiled once per session. Payloads of every codec (dense/sparse x
raw/codebook/per-channel codebook x fixed/Huffman) decode to the same bytes as
`tfedge.codecs.decode_payload`, and malformed ones give the same message; packed models
(real `tfedge.compress` output, one with per-channel codebooks, and models packed here
with one forced codec) expand to the same model as `tfedge.expand`, with equal weight
bytes and equal interpreter outputs. Every JUnit test of the unpacker is one item
here.
Every test but the JUnit items needs only a JDK; they skip, with the reason, only when
`javac` or `java` is missing. The JUnit items also need JUnit 4.
"""

from __future__ import annotations

import functools
import re
import struct

import numpy as np
import pytest

import tfedge
from tests._payloads import build, channel_section, fixed_stream, payload_spans, reseal
from tests.android import _java
from tfedge.codecs import decode_payload, encode_payload, inspect_payload
from tfedge.tflite import (
    TYPES,
    buffer_data,
    decode_ops,
    insert_decoders,
    packed_format_version,
    read,
    write,
)

SEED = 0
# Mutated copies of each reference payload whose outcome (bytes or message) is compared.
MUTATIONS_PER_PAYLOAD = 60
CODECS = [
    (layout, kind, coding)
    for layout in ("dense", "sparse")
    for kind in ("raw", "codebook")
    for coding in ("fixed", "huffman", "rans")
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
        # Byte planes (value kind 3, format version 3), each plane its own stream.
        (("dense", "planes", "rans"), 4),
        (("sparse", "planes", "auto"), 4),
        (("dense", "planes", "huffman"), 2),
        (("sparse", "planes", "fixed"), 8),
        (("dense", "planes", "auto"), 1),
        # Codebooks past 256 entries (format version 3): 9- to 16-bit rANS indices.
        (("dense", "large_codebook", "auto"), 4),
        (("sparse", "large_codebook", "auto"), 2),
        (("dense", "large_codebook", "rans"), 8),
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
    """The unpacker's classes: needs only a JDK, so with `javac` present these tests run
    (and fail on any problem) whether JUnit is installed or not."""
    reason = _java.missing_jdk()
    if reason:
        pytest.skip(reason)
    return _java.compile_unpacker(
        tmp_path_factory.mktemp("unpacker-classes"), with_tests=False
    )


@pytest.fixture(scope="session")
def junit_cp(tmp_path_factory) -> str:
    """The unpacker's classes and its JUnit tests (needs JUnit 4)."""
    reason = _java.missing_jdk() or _java.missing_junit()
    if reason:
        pytest.skip(reason)
    return _java.compile_unpacker(tmp_path_factory.mktemp("unpacker-junit"))


# ---------------------------------------------------------------- JUnit, item by item


@pytest.fixture(scope="session")
def junit_results(junit_cp) -> dict[str, str]:
    classes = sorted({n.split(".")[0] for n in _junit_tests()})
    r = _java.java(junit_cp, "TestReport", *[f"{_java.PACKAGE}.{c}" for c in classes])
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
    if kind == "planes":
        common["plane_rotation"] = 1 if es > 1 else 3
    if kind == "large_codebook":
        k = 1500
        book = np.unique(rng.integers(-30000, 30000, 3 * k)).astype(dtype)[:k]
        idx = np.minimum(rng.geometric(0.003, n) - 1, k - 1)
        if layout == "sparse":
            idx[rng.random(n) < 0.85] = 0
        common["value_kind"] = "codebook"
        return encode_payload(codebook=book, indices=idx, **common)
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
        out.append(reseal(p) if rng.random() < 0.85 else bytes(p))
    return out


def _python_outcome(payload: bytes, expected: int | None):
    try:
        return decode_payload(payload, expected_size=expected).tobytes()
    except tfedge.FormatError as e:
        return str(e)


def _compare_payloads(java_cp, work, payloads: dict) -> dict:
    """payloads: {key: [(payload, expected size or None)]}; runs them all in one Java
    batch and returns {key: [(python outcome, java outcome)]} (bytes or the message)."""
    jobs, meta = [], []
    for key, items in payloads.items():
        for p, exp in items:
            src = work / f"{len(meta)}.bin"
            src.write_bytes(p)
            args = ("payload", str(src), str(src) + ".out")
            jobs.append(args + ((str(exp),) if exp is not None else ()))
            meta.append((key, p, exp, src))
    answers = _java.run_batch(java_cp, work, jobs)
    outcomes: dict = {key: [] for key in payloads}
    for (key, p, exp, src), err in zip(meta, answers, strict=True):
        java_out = (
            err if err is not None else (src.with_suffix(".bin.out")).read_bytes()
        )
        outcomes[key].append((_python_outcome(p, exp), java_out))
    return outcomes


def _with_mutants(reference: bytes, expected: int, rng) -> list:
    """The payload and its mutants, every other one with the tensor's size."""
    return [
        (p, expected if j % 2 == 0 else None)
        for j, p in enumerate([reference, *_mutations(reference, rng)])
    ]


@pytest.fixture(scope="session")
def payload_outcomes(java_cp, tmp_path_factory):
    """Per case: [(python outcome, java outcome)] over the payload and its mutants."""
    rng = np.random.default_rng(SEED)
    payloads = {}
    for case in PAYLOAD_CASES:
        reference = _reference_payload(case, rng)
        payloads[case] = _with_mutants(reference, 3000 * case[1], rng)
    return _compare_payloads(java_cp, tmp_path_factory.mktemp("payloads"), payloads)


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


# ---------------------------------------------------------------- per-channel codebooks

# Value kind 2 (format version 2): (layout, coding, channels C, run R, repeats, element
# size, gap bits, shared entries); N = C x R x repeats, element i in channel
# (i // R) % C. Shared entries: "none" (no leading entry the same in every channel:
# G = 0), "first" (the zero at index 0 in every channel: G = 1, or K with one channel)
# or "all" (every channel the same: G = K).
CHANNEL_CASES = [
    ("dense", "fixed", 8, 36, 1, 4, None, "first"),  # a [O, H, W, I] kernel's channels
    ("dense", "huffman", 16, 1, 9, 4, None, "none"),  # R = 1: depthwise channels
    ("dense", "huffman", 1, 50, 4, 4, None, "first"),  # C = 1
    ("dense", "fixed", 3, 7, 10, 2, None, "all"),
    ("dense", "huffman", 5, 3, 20, 1, None, "none"),
    ("dense", "fixed", 4, 5, 6, 8, None, "first"),
    ("dense", "huffman", 6, 4, 5, 4, None, "all"),
    ("sparse", "fixed", 4, 100, 1, 4, 2, "first"),
    ("sparse", "huffman", 5, 3, 20, 4, 1, "none"),
    ("sparse", "huffman", 1, 1, 300, 1, 2, "first"),  # C = 1 and R = 1
    ("sparse", "fixed", 6, 1, 50, 8, 3, "all"),
    ("sparse", "huffman", 7, 13, 3, 2, 2, "none"),
    ("sparse", "fixed", 9, 4, 8, 4, 1, "first"),
]


def _channel_id(case) -> str:
    layout, coding, c, r, reps, es, g, shared = case
    gaps = f"-g{g}" if g else ""
    return f"{layout}-{coding}-C{c}-R{r}-N{c * r * reps}-{es}B{gaps}-shared_{shared}"


def _expected_shared(case) -> int:
    """G, the number of shared entries the numpy writer finds for the case's table."""
    c, es, shared = case[2], case[5], case[7]
    k = 3 if es == 4 else 6
    return k if shared == "all" or c == 1 else 1 if shared == "first" else 0


def _channel_payload(case, rng) -> tuple[bytes, int]:
    """A random kind-2 payload: per channel c, a zero (the fill) and that channel's own
    values (a ternary kernel times a per-channel scale for float32, 5 values per channel
    otherwise). The zero is entry 0 ("first", "all") or entry 1 after a first entry that
    differs by channel ("none"); "all" gives every channel channel 0's entries. Returns
    (payload, count of indices that are not the zero's)."""
    layout, coding, c, r, reps, es, gap_bits, shared = case
    n = c * r * reps
    dtype = {1: np.int8, 2: np.float16, 4: np.float32, 8: np.int64}[es]
    k = 3 if es == 4 else 6
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        others = rng.integers(info.min, info.max, size=(c, k - 1), endpoint=True)
    else:
        # Channel c: -a_c, +b_c (, -a'_c, ...): alternating signs, own magnitudes.
        signs = np.where(np.arange(k - 1) % 2 == 0, -1.0, 1.0)
        others = rng.uniform(0.05, 2.0, size=(c, k - 1)) * signs
    zero_at = 1 if shared == "none" else 0
    cols = [others[:, :zero_at], np.zeros((c, 1)), others[:, zero_at:]]
    book = np.concatenate(cols, axis=1).astype(dtype)
    if shared == "all":
        book[:] = book[:1]
    zero = 0.9 if layout == "sparse" else 0.3
    other = rng.integers(1, k, n)
    other[other == zero_at] = 0  # the indices other than the zero's
    idx = np.where(rng.random(n) < zero, zero_at, other)
    common = dict(
        element_type=ELEMENTS[es],
        element_size=es,
        count=n,
        layout=layout,
        value_kind="channel_codebook",
        codebook=book,
        indices=idx,
        channel_run=r,
        value_coding=coding,
    )
    if layout == "sparse":
        common.update(fill=zero_at, gap_bits=gap_bits, gap_coding=coding)
    return encode_payload(**common), int(np.count_nonzero(idx != zero_at))


# Value kind 2 over int8 elements in format version 2, unless a case says otherwise.
_hand_payload = functools.partial(build, version=2, kind=2, etype=9, es=1)


# Hand-built kind-2 payloads: malformed ones (Java must give numpy's message) and edge
# cases that decode.
CHANNEL_EDGE_CASES = {
    "hand_built": _hand_payload(
        channel_section(2, 2, 2, b"\x0a\x0b\x14\x15")
        + fixed_stream([0, 1, 0, 1, 1, 1, 0, 0], 1),
        decoded=8,
    ),
    # One shared entry (index 0 = 7 in both channels), one own entry per channel.
    "hand_built_one_shared": _hand_payload(
        channel_section(2, 2, 2, b"\x07\x0b\x15", shared=1)
        + fixed_stream([0, 1, 0, 1, 1, 1, 0, 0], 1),
        decoded=8,
    ),
    # Every entry shared: stored once for the 3 channels.
    "hand_built_all_shared": _hand_payload(
        channel_section(2, 3, 1, b"\x0a\x0b", shared=2)
        + fixed_stream([0, 1, 1, 0, 1, 0], 1),
        decoded=6,
    ),
    # Sparse, fill 7 (the shared entry): stored entries at 1 (channel 0), 3 (channel 1).
    "sparse_one_shared": _hand_payload(
        channel_section(2, 2, 2, b"\x07\x0b\x15", shared=1)
        + b"\x07"
        + fixed_stream([1, 1], 2)
        + fixed_stream([1, 1], 1),
        decoded=8,
        layout=1,
    ),
    # Sparse, G = 0: the fill (index 0) is each channel's own 0.
    "sparse_no_shared": _hand_payload(
        channel_section(2, 2, 2, b"\0\5\0\7")
        + b"\0"
        + fixed_stream([1, 0, 4], 3)
        + fixed_stream([1, 1, 1], 1),
        decoded=8,
        layout=1,
    ),
    "empty_tensor_any_tiling": _hand_payload(
        channel_section(1, 3, 0xFFFFFFFF, b"\1\2\3") + fixed_stream([], 1), decoded=0
    ),
    # G = K: only the K shared entries are stored, whatever C is.
    "empty_tensor_all_shared": _hand_payload(
        channel_section(2, 2**32 - 1, 2**32 - 1, bytes(16), shared=2)
        + fixed_stream([], 1),
        decoded=0,
        etype=4,
        es=8,
    ),
    "kind_2_in_version_1": _hand_payload(
        channel_section(2, 2, 2, b"\1\2\3\4") + fixed_stream([0] * 8, 1),
        decoded=8,
        version=1,
    ),
    "version_4": _hand_payload(
        channel_section(1, 1, 1, b"\1") + fixed_stream([0], 1), decoded=1, version=4
    ),
    "unknown_kind_4": _hand_payload(channel_section(1, 1, 1, b"\1"), decoded=1, kind=4),
    "truncated_channel_header": _hand_payload(struct.pack("<HHI", 1, 0, 2), decoded=4),
    "truncated_after_k": _hand_payload(struct.pack("<H", 1), decoded=4),
    "shared_above_k": _hand_payload(
        channel_section(2, 2, 2, b"\1\2\3", shared=3) + fixed_stream([0] * 4, 1),
        decoded=4,
    ),
    # G > K is checked before C and R.
    "shared_above_k_zero_channels": _hand_payload(
        channel_section(1, 0, 0, shared=0xFFFF) + fixed_stream([0] * 4, 1), decoded=4
    ),
    "all_shared_zero_channels": _hand_payload(
        channel_section(1, 0, 1, b"\1", shared=1) + fixed_stream([0] * 4, 1), decoded=4
    ),
    "all_shared_not_tiling": _hand_payload(
        channel_section(1, 3, 1, b"\1", shared=1) + fixed_stream([0] * 4, 1), decoded=4
    ),
    "k_0": _hand_payload(
        channel_section(0, 1, 1) + fixed_stream([0] * 4, 1), decoded=4
    ),
    "k_257": _hand_payload(channel_section(257, 1, 1, b"\1"), decoded=4),
    "zero_channels": _hand_payload(
        channel_section(1, 0, 1) + fixed_stream([0] * 4, 1), decoded=4
    ),
    "zero_run": _hand_payload(
        channel_section(1, 2, 0, b"\1\2") + fixed_stream([0] * 4, 1), decoded=4
    ),
    "not_tiling": _hand_payload(
        channel_section(1, 3, 1, b"\1\2\3") + fixed_stream([0] * 4, 1), decoded=4
    ),
    "run_too_long": _hand_payload(
        channel_section(1, 2, 3, b"\1\2") + fixed_stream([0] * 4, 1), decoded=4
    ),
    "channels_2^31": _hand_payload(channel_section(1, 2**31, 1), decoded=4),
    "run_2^31+2": _hand_payload(channel_section(1, 2, 2**31 + 2), decoded=4),
    "both_2^32-1": _hand_payload(channel_section(1, 2**32 - 1, 2**32 - 1), decoded=4),
    "product_2^32": _hand_payload(channel_section(1, 65536, 65536), decoded=2**20),
    "entries_2^32_bytes": _hand_payload(
        channel_section(256, 2**24, 1, b"\1\2"), decoded=2**24
    ),
    "entries_2^43_bytes": _hand_payload(
        channel_section(256, 2**32 - 1, 2**32 - 1), decoded=0, etype=4, es=8
    ),
    "truncated_entries": _hand_payload(channel_section(2, 2, 2, b"\1\2\3"), decoded=4),
    "truncated_shared_entries": _hand_payload(
        channel_section(2, 2, 2, b"\1\2", shared=1), decoded=4
    ),
    "entries_2^24_channels_one_shared": _hand_payload(
        channel_section(256, 2**24, 1, b"\1\2", shared=1), decoded=2**24
    ),
    "entries_all_shared_2^32-1_channels": _hand_payload(
        channel_section(256, 2**32 - 1, 2**32 - 1, shared=256), decoded=0, etype=4, es=8
    ),
    "index_beyond_k": _hand_payload(
        channel_section(2, 2, 2, b"\1\2\3\4") + fixed_stream([0, 1, 2, 0], 2), decoded=4
    ),
    "index_beyond_k_one_shared": _hand_payload(
        channel_section(2, 2, 2, b"\1\2\3", shared=1) + fixed_stream([0, 1, 2, 0], 2),
        decoded=4,
    ),
    "index_beyond_k_one_channel": _hand_payload(
        channel_section(2, 1, 4, b"\1\2") + fixed_stream([0, 1, 3, 0], 2), decoded=4
    ),
    "index_beyond_k_one_channel_all_shared": _hand_payload(
        channel_section(2, 1, 4, b"\1\2", shared=2) + fixed_stream([0, 1, 3, 0], 2),
        decoded=4,
    ),
    "sparse_index_beyond_k": _hand_payload(
        channel_section(2, 2, 2, b"\0\2\0\4")
        + b"\0"
        + fixed_stream([1, 1], 2)
        + fixed_stream([1, 3], 2),
        decoded=4,
        layout=1,
    ),
    "sparse_cursor_past_end": _hand_payload(
        channel_section(2, 2, 2, b"\0\2\0\4")
        + b"\0"
        + fixed_stream([1, 3], 2)
        + fixed_stream([1, 1], 2),
        decoded=4,
        layout=1,
    ),
    "trailing_bytes": _hand_payload(
        channel_section(1, 2, 2, b"\1\2") + fixed_stream([0] * 4, 1) + b"\0", decoded=4
    ),
}
CHANNEL_EDGE_OK = {
    "hand_built",
    "hand_built_one_shared",
    "hand_built_all_shared",
    "sparse_one_shared",
    "sparse_no_shared",
    "empty_tensor_any_tiling",
    "empty_tensor_all_shared",
}


@pytest.fixture(scope="session")
def channel_outcomes(java_cp, tmp_path_factory):
    """Per random case: [(python, java)] over the payload and its mutants (with the
    count of non-fill indices); per hand-built case: [(python, java)]."""
    rng = np.random.default_rng(SEED + 2)
    payloads, stored = {}, {}
    for case in CHANNEL_CASES:
        reference, stored[case] = _channel_payload(case, rng)
        n_bytes = case[2] * case[3] * case[4] * case[5]
        payloads[case] = _with_mutants(reference, n_bytes, rng)
    for name, p in CHANNEL_EDGE_CASES.items():
        payloads[name] = [(p, None)]
    outcomes = _compare_payloads(java_cp, tmp_path_factory.mktemp("channel"), payloads)
    return outcomes, payloads, stored


@pytest.mark.parametrize("case", CHANNEL_CASES, ids=_channel_id)
def test_channel_codebook_decodes_like_numpy(channel_outcomes, case):
    outcomes, payloads, stored = channel_outcomes
    python, java = outcomes[case][0]
    assert isinstance(python, bytes), python
    assert java == python
    info = inspect_payload(payloads[case][0][0])
    assert (info.header.version, info.header.value_kind) == (2, "channel_codebook")
    assert info.shared_entries == _expected_shared(case)
    assert info.encoding.startswith(f"{case[0]}/channel_codebook/")
    if case[0] == "sparse":
        # Small gap widths over long fill runs: the stream holds filler entries too.
        assert info.gaps.count > stored[case]


@pytest.mark.parametrize("case", CHANNEL_CASES, ids=_channel_id)
def test_malformed_channel_codebook_same_outcome(channel_outcomes, case):
    results = channel_outcomes[0][case][1:]
    errors = 0
    for i, (python, java) in enumerate(results):
        assert type(java) is type(python), (
            f"mutant {i}: python {python!r}, java {java!r}"
        )
        assert java == python, f"mutant {i}"
        errors += isinstance(python, str)
    assert errors >= len(results) // 2


@pytest.mark.parametrize("name", CHANNEL_EDGE_CASES)
def test_hand_built_channel_codebook_same_outcome(channel_outcomes, name):
    ((python, java),) = channel_outcomes[0][name]
    if name in CHANNEL_EDGE_OK:
        assert isinstance(python, bytes), python
    else:
        assert isinstance(python, str), "numpy accepted the payload"
    assert java == python


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


# ---------------------------------------------------------------- a per-channel model

# The per-channel model's Conv2D layers: (filters, zero fraction of the ternary kernel).
CHANNEL_CONVS = ((32, 1 / 3), (16, 0.9))


def _channel_scaled_conv_model():
    """Conv2D kernels sign x per-output-channel scale: output channel c holds only
    {-a_c, 0, +b_c} (a ternary kernel with a folded batch normalisation), 96 and 48
    distinct values over the whole kernel. Returns (model, kernels as Keras holds them,
    [H, W, I, O])."""
    import keras

    keras.utils.set_random_seed(SEED)
    L = keras.layers
    model = keras.Sequential(
        [keras.Input((10, 10, 8))]
        + [
            L.Conv2D(filters, 3, activation="relu", name=f"ternary{i}")
            for i, (filters, _) in enumerate(CHANNEL_CONVS)
        ]
        + [L.Flatten(), L.Dense(10, name="logits")]
    )
    rng = np.random.default_rng(SEED)
    kernels = []
    for layer, (filters, zero) in zip(
        model.layers[: len(CHANNEL_CONVS)], CHANNEL_CONVS, strict=True
    ):
        kernel, bias = layer.get_weights()
        assert kernel.shape[-1] == filters
        p_sign = (1 - zero) / 2
        sign = rng.choice([-1, 0, 1], kernel.shape, p=[p_sign, zero, p_sign])
        a = rng.uniform(0.05, 0.3, filters)
        b = rng.uniform(0.05, 0.3, filters)
        kernel = np.where(sign > 0, b, np.where(sign < 0, -a, 0.0)).astype(np.float32)
        layer.set_weights([kernel, bias])
        kernels.append(kernel)
    return model, kernels


@pytest.fixture(scope="session")
def channel_model(java_cp, tmp_path_factory):
    """(Keras kernels, report, packed, python-expanded, java-expanded or the error)."""
    model, kernels = _channel_scaled_conv_model()
    packed = tfedge.compress(model, lossless=True, min_bytes=MIN_BYTES, progress=False)
    data = bytes(packed)
    work = tmp_path_factory.mktemp("channel-model")
    (work / "packed.tflite").write_bytes(data)
    (err,) = _java.run_batch(
        java_cp,
        work,
        [("expand", str(work / "packed.tflite"), str(work / "expanded.tflite"))],
    )
    java = err if err is not None else (work / "expanded.tflite").read_bytes()
    py = tfedge.expand(data, decoder=decode_payload)
    return kernels, packed.report, data, py, java


def test_per_channel_model_expands_like_python(channel_model):
    kernels, report, packed, py, java = channel_model
    encodings = [t.encoding for t in report.tensors]
    assert any("channel_codebook" in e for e in encodings), encodings
    # Version 2 for the per-channel codebooks, 3 where a stream is rANS coded.
    assert report.format_version in (2, 3)
    assert packed_format_version(read(packed)) == report.format_version
    assert isinstance(java, bytes), java
    assert not list(decode_ops(read(java)))
    assert _canonical(java) == _canonical(py)
    assert _weights(java) == _weights(py)
    # The kernels come back bit for bit, as TFLite stores them: [O, H, W, I].
    model = read(java)
    by_shape = {
        tuple(t.shape): bytes(buffer_data(model, t.buffer))
        for t in model.subgraphs[0].tensors
        if t.shape is not None and len(t.shape) == 4
    }
    for kernel in kernels:
        ohwi = np.ascontiguousarray(kernel.transpose(3, 0, 1, 2))
        assert by_shape[ohwi.shape] == ohwi.tobytes()
    java_out, py_out = _outputs(java), _outputs(py)
    assert len(java_out) == len(py_out) > 0
    for a, b in zip(java_out, py_out, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=OUTPUT_ATOL)


# ---------------------------------------------------------------- corrupted files


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
    spans = [(start, end) for _, start, end in payload_spans(packed)]
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
    bad[start:end] = reseal(inner)
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


# ---------------------------------------------------------------- the hostile table


@pytest.fixture(scope="session")
def hostile_outcomes(java_cp, tmp_path_factory):
    """Per case of tests/_hostile.py: (numpy expander's message or None, Java's)."""
    from tests import _hostile

    work = tmp_path_factory.mktemp("hostile")
    jobs, pythons = [], []
    for case in _hostile.CASES:
        data = case.build()
        (work / case.name).write_bytes(data)
        jobs.append(("expand", str(work / case.name), str(work / f"{case.name}.out")))
        pythons.append(_python_error(data))
    answers = _java.run_batch(java_cp, work, jobs)
    return {
        c.name: (p, j) for c, p, j in zip(_hostile.CASES, pythons, answers, strict=True)
    }


def _hostile_cases():
    from tests import _hostile

    return _hostile.CASES


@pytest.mark.parametrize("case", _hostile_cases(), ids=lambda c: c.name)
def test_hostile_file_same_verdict(hostile_outcomes, case):
    python, java = hostile_outcomes[case.name]
    assert (python is None) == (case.expected("numpy") == "ok"), python
    assert (java is None) == (case.expected("java") == "ok"), java
    if case.same_message and python is not None:
        assert java == python


# ---------------------------------------------------------------- appended zip archives

# TFLite Support metadata's associated files, appended to the model as a zip.
ARCHIVE_FILES = {"labels.txt": b"cat\ndog\n", "notes/empty.txt": b""}


@pytest.mark.parametrize("concatenated", [False, True], ids=["written", "concatenated"])
def test_appended_archive_expands_like_python(
    java_cp, tflite_model, tmp_path, concatenated
):
    """The archive follows the expanded flatbuffer, offsets counted from the file's
    start, in Java as in Python (whether the input counted them from the file's start,
    as TFLite Support writes them, or from the archive's own, as `cat` leaves them)."""
    import io
    import zipfile

    buf = io.BytesIO()
    plain = tflite_model("conv_f32")
    if not concatenated:
        buf.write(plain)
    with zipfile.ZipFile(buf, "a") as z:
        for name, blob in ARCHIVE_FILES.items():
            z.writestr(name, blob)
    data = buf.getvalue() if not concatenated else plain + buf.getvalue()
    packed = bytes(
        tfedge.compress(data, lossless=True, min_bytes=MIN_BYTES, progress=False)
    )
    (tmp_path / "in.tflite").write_bytes(packed)
    (err,) = _java.run_batch(
        java_cp,
        tmp_path,
        [("expand", str(tmp_path / "in.tflite"), str(tmp_path / "out.tflite"))],
    )
    assert err is None, err
    java = (tmp_path / "out.tflite").read_bytes()
    assert _canonical(java) == _canonical(tfedge.expand(packed)) == _canonical(data)
    with zipfile.ZipFile(io.BytesIO(java)) as z:
        assert z.testzip() is None
        assert {i.filename: z.read(i) for i in z.infolist()} == ARCHIVE_FILES
        assert min(i.header_offset for i in z.infolist()) == java.index(b"PK\x03\x04")
