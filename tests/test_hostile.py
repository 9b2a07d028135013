"""The shared table of hostile files (tests/_hostile.py) through the Python readers and
the CLI: the numpy expander, the native expander and `tfedge.Interpreter` give the
table's verdict, with a tfedge error (never another exception); `tfedge inspect`,
`expand` and `compress` exit 0 or 2 with a one-line error and never a traceback. The
Java unpacker runs the same table in tests/android/test_unpacker.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tfedge
from tests import _hostile
from tfedge.codecs import decode_payload
from tfedge.runtime import _native
from tfedge.tflite import buffer_data, read

HAVE_NATIVE = _native.native_available()


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return {c.name: c.build() for c in _hostile.CASES}


def _verdict(fn) -> tuple[str, str]:
    try:
        fn()
    except tfedge.TfedgeError as e:
        return "error", str(e)
    return "ok", ""


def _interpreter(data: bytes) -> None:
    it = tfedge.Interpreter(model_content=data)
    it.allocate_tensors()
    x = np.ones(it.get_input_details()[0]["shape"], np.float32)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()


READERS = {
    "numpy": lambda data: tfedge.expand(data, decoder=decode_payload),
    "native": lambda data: tfedge.expand(data, decoder=_native.decode_payload_native),
    "interpreter": _interpreter,
}


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("case", _hostile.CASES, ids=_hostile.CASE_NAMES)
def test_reader_verdict(files, case, reader):
    if reader != "numpy" and not HAVE_NATIVE:
        pytest.skip("the native library is not built")
    verdict, message = _verdict(lambda: READERS[reader](files[case.name]))
    assert verdict == case.expected(reader), message


# Cases refused by a payload check: the C++ decoder words those its own way.
_PAYLOAD_LEVEL = {"huffman_one_block", "densify_payload_truncated"}


@pytest.mark.parametrize(
    "case",
    [c for c in _hostile.CASES if c.name not in _PAYLOAD_LEVEL],
    ids=lambda c: c.name,
)
def test_native_expander_gives_numpy_message(files, case):
    """Both expanders make the file-level checks in Python: the same words."""
    if not HAVE_NATIVE:
        pytest.skip("the native library is not built")
    assert _verdict(lambda: READERS["native"](files[case.name])) == _verdict(
        lambda: READERS["numpy"](files[case.name])
    )


@pytest.mark.parametrize(
    "name", ["valid", "no_metadata", "two_decoders_same", "metadata_escaped_key"]
)
def test_accepted_files_expand_to_the_plain_weights(files, name):
    model = read(tfedge.expand(files[name], decoder=decode_payload))
    (kernel,) = [t for t in model.subgraphs[0].tensors if t.name == b"dense/kernel"]
    assert bytes(buffer_data(model, kernel.buffer)) == _hostile.weights().tobytes()
    assert len(model.subgraphs[0].operators) == 1


def test_trusted_lifts_the_resource_bound():
    """A 24 MiB all-zero tensor from a 52-byte payload: refused by default, decoded
    when the caller trusts the file."""
    n = _hostile.OUT << 21
    data = _hostile.all_fill_model(1 << 21)
    with pytest.raises(tfedge.FormatError, match="resource bound"):
        tfedge.expand(data, decoder=decode_payload)
    model = read(tfedge.expand(data, decoder=decode_payload, trusted=True))
    (kernel,) = [t for t in model.subgraphs[0].tensors if t.name == b"dense/kernel"]
    assert not buffer_data(model, kernel.buffer).any()
    assert buffer_data(model, kernel.buffer).size == 4 * n


# The CLI over every file, in one process (one interpreter start for all cases): each
# command's exit status and its stderr.
_CLI_DRIVER = """
import json, sys, traceback
from tfedge.cli.main import main
import contextlib, io
out = {}
for name, path, outdir in json.loads(sys.argv[1]):
    for cmd in ("inspect", "expand", "compress"):
        args = ["tfedge", cmd, path] + ([] if cmd == "inspect" else
                                        ["-o", f"{outdir}/{cmd}.tflite"])
        if cmd == "compress":
            args += ["--lossless"]
        err = io.StringIO()
        quiet = contextlib.redirect_stdout(io.StringIO())
        try:
            with contextlib.redirect_stderr(err), quiet:
                rc = main(args)
        except BaseException:
            rc, err = "traceback", io.StringIO(traceback.format_exc())
        out[f"{name}/{cmd}"] = [rc, err.getvalue()]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def cli_outcomes(files, tmp_path_factory):
    work = tmp_path_factory.mktemp("hostile-cli")
    jobs = []
    for name, data in files.items():
        (work / name).mkdir()
        (work / name / "in.tflite").write_bytes(data)
        jobs.append((name, str(work / name / "in.tflite"), str(work / name)))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    r = subprocess.run(
        [sys.executable, "-c", _CLI_DRIVER, json.dumps(jobs)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


@pytest.mark.parametrize("command", ["inspect", "expand", "compress"])
@pytest.mark.parametrize("case", _hostile.CASES, ids=_hostile.CASE_NAMES)
def test_cli_never_prints_a_traceback(cli_outcomes, case, command):
    rc, err = cli_outcomes[f"{case.name}/{command}"]
    assert rc in (0, 2), err
    assert "Traceback" not in err
    if rc == 2:
        (line,) = err.strip().splitlines()
        assert line.startswith(f"tfedge {command}: error: "), line
    if command == "expand":
        assert rc == (0 if case.verdict == "ok" else 2), err
