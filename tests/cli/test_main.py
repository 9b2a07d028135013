"""The `tfedge` command: exit codes, one-line errors, files written, inspect output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import tfedge

GOLDEN = os.path.join(
    os.path.dirname(__file__), "golden", "inspect_dense_f32_lossless.txt"
)
# Regenerate with:  TFEDGE_REGENERATE_GOLDEN=1 scripts/test tests/cli -k golden


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", "tfedge.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, tflite_model):
    path = tmp_path_factory.mktemp("cli") / "dense.tflite"
    path.write_bytes(tflite_model("dense_f32"))
    return path


def test_compress_expand_inspect(tmp_path, model_file):
    packed, report, plain = (
        tmp_path / "p.tflite",
        tmp_path / "r.json",
        tmp_path / "e.tflite",
    )
    r = run_cli(
        "compress",
        str(model_file),
        "-o",
        str(packed),
        "--bits",
        "6",
        "--tolerance",
        "0.5",
        "--report",
        str(report),
    )
    assert r.returncode == 0, r.stderr
    assert "weights:" in r.stdout
    rows = json.loads(report.read_text())["tensors"]
    assert {row["bits"] for row in rows if row["encoding"] != "raw"} == {6}
    r = run_cli("expand", str(packed), "-o", str(plain))
    assert r.returncode == 0, r.stderr
    assert plain.read_bytes() == tfedge.expand(packed.read_bytes())
    r = run_cli("inspect", str(packed), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["format_version"] == 1 and info["payloads"]


def test_lossless_flag(tmp_path, model_file):
    packed = tmp_path / "p.tflite"
    r = run_cli("compress", str(model_file), "-o", str(packed), "--lossless")
    assert r.returncode == 0, r.stderr
    assert "mode: lossless" in r.stdout


@pytest.mark.parametrize(
    "args",
    [(), ("frobnicate",), ("compress",), ("expand", "a", "b"), ("inspect",)],
    ids=["none", "unknown", "compress-no-input", "expand-two", "inspect-none"],
)
def test_usage_errors_exit_1(args):
    r = run_cli(*args)
    assert r.returncode == 1
    assert "usage" in r.stderr
    assert "Traceback" not in r.stderr


def test_target_tflm(tmp_path, model_file):
    packed = tmp_path / "p.tflite"
    r = run_cli("compress", str(model_file), "-o", str(packed), "--target", "tflm")
    assert r.returncode == 0, r.stderr
    assert "tflm-lut" in r.stdout
    r = run_cli("compress", str(model_file), "-o", str(packed), "--target", "onnx")
    assert r.returncode == 2 and "target" in r.stderr


def test_compress_without_output_is_usage(model_file):
    r = run_cli("compress", str(model_file))
    assert r.returncode == 1 and "-o OUT" in r.stderr


@pytest.mark.parametrize("command", ["compress", "expand", "inspect"])
def test_bad_input_exits_2_with_one_line(tmp_path, command, model_file):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(model_file.read_bytes()[:100])
    args = [command, str(bad)] + (
        ["-o", str(tmp_path / "out")] if command != "inspect" else []
    )
    r = run_cli(*args)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("tfedge")]
    assert len(lines) == 1 and "error:" in lines[0]
    assert "Traceback" not in r.stderr


def test_missing_file_exits_2(tmp_path):
    r = run_cli("expand", str(tmp_path / "nope.tflite"), "-o", str(tmp_path / "x"))
    assert r.returncode == 2 and "No such file" in r.stderr


def test_bad_flag_value_exits_2(tmp_path, model_file):
    r = run_cli("compress", str(model_file), "-o", str(tmp_path / "o"), "--bits", "12")
    assert r.returncode == 2 and "bits" in r.stderr


def test_inspect_text_golden(tmp_path, model_file):
    packed = tfedge.compress(model_file.read_bytes(), lossless=True)
    path = tmp_path / "p.tflite"
    packed.save(path)
    r = run_cli("inspect", str(path))
    assert r.returncode == 0, r.stderr
    if os.environ.get("TFEDGE_REGENERATE_GOLDEN"):
        os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
        with open(GOLDEN, "w") as f:
            f.write(r.stdout)
    with open(GOLDEN) as f:
        assert r.stdout == f.read()


def test_budget_command(tmp_path, tflite_model):
    model = tmp_path / "m.tflite"
    model.write_bytes(tflite_model("dense_f32"))
    out = tmp_path / "small.tflite"
    r = run_cli("budget", str(model), "--target", "12KB", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert 0 < out.stat().st_size <= 12 * 1000
    r = run_cli("budget", str(model), "--target", "100B", "-o", str(out))
    assert r.returncode == 2 and "floor" in r.stderr
    r = run_cli("budget", str(model), "-o", str(out))
    assert r.returncode == 1 and "--target" in r.stderr
