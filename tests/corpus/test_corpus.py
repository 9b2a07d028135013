"""Every model of the published corpus (tests/corpus/manifest.json) through tfedge.

Lossless packing, on each model: the packed file is never larger than the input;
`tfedge.expand` gives back the same model (every buffer of every subgraph bit for bit,
the metadata, its associated files and the signatures); the original and the expanded
model give the same outputs in the stock interpreter; `tfedge.Interpreter` on the
packed file gives the expanded model's outputs exactly; the Java unpacker expands it to
`tfedge.expand`'s model; `tfedge compress --lossless` exits 0.

Default (lossy) packing, marker `corpus_lossy` (.ci/run runs it): `tfedge compress`
either writes a file whose drift, measured here on held-out inputs, is within the
default tolerance, whose tensors keep their weights, and which tfedge.Interpreter runs
as its expansion; or it exits 2 with a reason that is not "a tfedge bug".
"""

from __future__ import annotations

import functools
import inspect
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter as StockInterpreter

import tfedge
from tests.android import _java
from tests.corpus import _models
from tests.corpus._models import IDS, MODELS
from tfedge.tflite import TYPES, buffer_data, read, tensor_name

# Lossless packing gives the same weights, so the same kernels compute the same bits:
# outputs are compared exactly.
OUTPUT_ATOL = 0.0
# The default tolerance of `tfedge.compress`, whatever it is set to.
DEFAULT_TOLERANCE = inspect.signature(tfedge.compress).parameters["tolerance"].default
# Held-out inputs for the lossy checks come from another seed than the packer's.
HELD_OUT_SEED = 1234
# Held-out invocations per signature: more than the packer's own check measures.
HELD_OUT_STEPS = 8
# The samples given as representative data, apart from the held-out ones.
REPRESENTATIVE_SEED = 99
# A lossy tensor whose relative weight error ||w - w'|| / ||w|| reaches this has lost
# half its energy: the model is destroyed whatever a (possibly blind) output check
# says. A zeroed kernel has 1.0; 2-bit sharing of Gaussian weights about 0.34.
WEIGHT_ERROR_LIMIT = 0.5
# Generous for a cold TensorFlow import plus packing a 6 MB model on a loaded machine.
CLI_TIMEOUT_S = 600
# The CLI's exit status when tfedge refuses (a named reason), and on success.
EXIT_OK, EXIT_REFUSED = 0, 2

pytestmark = pytest.mark.parametrize("entry", MODELS, ids=IDS)


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", "tfedge.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=CLI_TIMEOUT_S,
    )


def _outputs_or_missing_op(interpreter_class, data, entry, **kw):
    """The model's outputs; for a custom op the stock interpreter lacks, a skip that
    names it, allowed only when the manifest lists that op (graph equality is then
    what test_expand_gives_back_the_model checks)."""
    try:
        return _models.run(interpreter_class, data, entry, **kw)
    except _models.MissingCustomOp as e:
        if e.op not in _models.custom_ops(entry):
            raise AssertionError(
                f"the interpreter lacks custom op {e.op}, which the manifest does not "
                f"list for {entry['id']}"
            ) from e
        pytest.skip(
            f"{entry['id']}: the stock interpreter has no kernel for custom op "
            f"{e.op}; outputs not compared, the expanded graph is checked instead"
        )


# ---------------------------------------------------------------- lossless, default run


def test_lossless_is_never_larger(entry):
    packed, _ = _models.lossless(entry)
    assert len(packed) <= len(_models.model_bytes(entry))


def test_expand_gives_back_the_model(entry):
    original = _models.model_bytes(entry)
    _, expanded = _models.lossless(entry)
    want, got = _models.contents(original), _models.contents(expanded)
    assert got.keys() == want.keys()
    for part in want:
        assert got[part] == want[part], f"{part} differs after expand"
    # Everything else too: operators, options, quantization, sparsity, descriptions.
    assert _models.canonical(expanded) == _models.canonical(original)


def test_expanded_model_runs_like_the_original(entry):
    original = _models.model_bytes(entry)
    _, expanded = _models.lossless(entry)
    want = _outputs_or_missing_op(StockInterpreter, original, entry)
    got = _models.run(StockInterpreter, expanded, entry)
    assert len(got) == len(want) > 0
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=OUTPUT_ATOL)


def test_interpreter_runs_the_packed_file_as_expanded(entry):
    packed, expanded = _models.lossless(entry)
    want = _outputs_or_missing_op(StockInterpreter, expanded, entry)
    # The stock kernels, as the expansion runs them: the delegate's sparse kernels sum
    # float products in another order (tests/runtime/test_sparse_kernels.py compares
    # them on these models within its float tolerance).
    stock_kernels = functools.partial(tfedge.Interpreter, sparse_kernels=False)
    got = _models.run(stock_kernels, packed, entry)
    assert len(got) == len(want) > 0
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=OUTPUT_ATOL)


@pytest.fixture(scope="session")
def java_expanded(tmp_path_factory) -> dict[str, bytes | str]:
    """Model id -> the Java unpacker's expansion of its lossless packing (or its error
    message), all in one JVM."""
    for tool in ("javac", "java"):
        if shutil.which(tool) is None:
            pytest.skip(f"`{tool}` not found: install a JDK to check the Java unpacker")
    work = tmp_path_factory.mktemp("corpus-java")
    classpath = _java.compile_unpacker(work / "classes", with_tests=False)
    jobs = []
    for entry in MODELS:
        src = work / f"{entry['id']}.tflite"
        src.write_bytes(_models.lossless(entry)[0])
        jobs.append(("expand", str(src), str(src) + ".out"))
    answers = _java.run_batch(classpath, work, jobs)
    return {
        entry["id"]: err
        if err is not None
        else (work / f"{entry['id']}.tflite.out").read_bytes()
        for entry, err in zip(MODELS, answers, strict=True)
    }


def test_java_unpacker_expands_like_python(entry, java_expanded):
    java = java_expanded[entry["id"]]
    assert isinstance(java, bytes), f"the Java unpacker failed: {java}"
    _, expanded = _models.lossless(entry)
    assert _models.canonical(java) == _models.canonical(expanded)


def test_cli_compress_lossless(entry, tmp_path):
    src, out = tmp_path / "in.tflite", tmp_path / "out.tflite"
    src.write_bytes(_models.model_bytes(entry))
    r = _cli("compress", str(src), "-o", str(out), "--lossless")
    assert r.returncode == EXIT_OK, r.stderr
    assert _models.canonical(tfedge.expand(out.read_bytes())) == _models.canonical(
        src.read_bytes()
    )


# ---------------------------------------------------------------- lossy, corpus_lossy


def _relative_weight_errors(original: bytes, expanded: bytes) -> dict[str, float]:
    """Per float weight tensor the expansion changed: ||w - w'|| / ||w||."""
    a, b = read(original), read(expanded)
    errors = {}
    for sg_a, sg_b in zip(a.subgraphs, b.subgraphs, strict=True):
        for ta, tb in zip(sg_a.tensors or [], sg_b.tensors or [], strict=True):
            wa, wb = buffer_data(a, ta.buffer), buffer_data(b, tb.buffer)
            if bytes(wa) == bytes(wb) or not len(wa):
                continue
            dtype = TYPES[ta.type].dtype
            if dtype is None or dtype.kind not in "fiu":
                errors[tensor_name(ta)] = float("inf")  # changed a non-weight tensor
                continue
            x = np.frombuffer(bytes(wa), dtype).astype(np.float64)
            y = np.frombuffer(bytes(wb), dtype).astype(np.float64)
            norm = float(np.linalg.norm(x))
            errors[tensor_name(ta)] = float(np.linalg.norm(x - y)) / max(norm, 1e-30)
    return errors


def _representative_npz(entry: dict, original: bytes, path) -> list[str]:
    """`--data` for a float model whose file does not say its input range (no TFLite
    Support metadata): samples from the range its documentation gives, as a user of
    the model would pass them; [] where the file says it itself (metadata, or integer
    inputs, whose quantization range tfedge uses)."""
    it = StockInterpreter(model_content=original)
    details = it.get_input_details()
    floats = any(np.dtype(d["dtype"]).kind == "f" for d in details)
    if "tflite-metadata" in entry["covers"] or not floats:
        return []
    rng = np.random.default_rng(REPRESENTATIVE_SEED)
    for d in details:
        d["shape"] = [1] + [max(int(n), 1) for n in d["shape"][1:]]
    samples = [_models.inputs_for(details, entry, rng) for _ in range(32)]
    arrays = {
        d["name"]: np.concatenate([s[i] for s in samples])
        for i, d in enumerate(details)
    }
    np.savez(path, **arrays)
    return ["--data", str(path)]


@pytest.mark.corpus_lossy
def test_default_compress_holds_its_tolerance_or_says_why(entry, tmp_path):
    src, out = tmp_path / "in.tflite", tmp_path / "out.tflite"
    original = _models.model_bytes(entry)
    src.write_bytes(original)
    data = _representative_npz(entry, original, tmp_path / "data.npz")
    r = _cli("compress", str(src), "-o", str(out), *data)
    if r.returncode == EXIT_REFUSED:
        assert "tfedge bug" not in r.stderr, r.stderr
        assert "error:" in r.stderr, r.stderr
        return
    assert r.returncode == EXIT_OK, r.stderr
    packed = out.read_bytes()
    assert len(packed) <= len(original)
    expanded = tfedge.expand(packed)
    errors = _relative_weight_errors(original, expanded)
    destroyed = {k: v for k, v in errors.items() if v >= WEIGHT_ERROR_LIMIT}
    assert not destroyed, f"tensors whose weights were destroyed: {destroyed}"
    kw = {"seed": HELD_OUT_SEED, "steps": HELD_OUT_STEPS}
    try:
        want = _models.run(StockInterpreter, original, entry, **kw)
    except _models.MissingCustomOp as e:
        pytest.skip(f"{entry['id']}: no kernel for custom op {e.op} to measure drift")
    got = _models.run(StockInterpreter, expanded, entry, **kw)
    held_out = _models.drift(want, got)
    assert held_out <= DEFAULT_TOLERANCE, (
        f"the written file drifts {held_out:.4g} on held-out inputs, past the "
        f"tolerance {DEFAULT_TOLERANCE}"
    )
    # Exactly, with the stock kernels (sparse kernels sum in another order; see the
    # lossless check above).
    stock_kernels = functools.partial(tfedge.Interpreter, sparse_kernels=False)
    direct = _models.run(stock_kernels, packed, entry, **kw)
    for a, b in zip(direct, got, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=OUTPUT_ATOL)
