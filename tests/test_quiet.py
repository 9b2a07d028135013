"""tfedge._quiet: TensorFlow's and LiteRT's chatter kept out, everything else kept."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tfedge import _quiet

EXPORTER_BLOCK = """\
Saved artifact at '/tmp/tmpabc'. The following endpoints are available:

* Endpoint 'serve'
  args_0 (POSITIONAL_ONLY): TensorSpec(shape=(None, 8), dtype=tf.float32, name='x')
Output Type:
  TensorSpec(shape=(None, 4), dtype=tf.float32, name=None)
Captures:
  139699501783504: TensorSpec(shape=(), dtype=tf.resource, name=None)
"""
NATIVE_NOISE = (
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
    "fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32\n"
    "W0000 00:00:1796602800.834263    8199 tf_tfl_flatbuffer_helpers.cc:365] Ignored "
    "output_format.\n"
    "WARNING: All log messages before absl::InitializeLog() is called are written to "
    "STDERR\n"
)

# absl's Python lines are tfedge's own or the user's: kept.
PYTHON_ABSL = "W1207 00:40:00.123456  140 _callback.py:115] SizeBudget: over\n"


def test_quiet_tf_drops_noise_keeps_the_rest(capfd):
    with _quiet.quiet_tf():
        print(EXPORTER_BLOCK + "a line of the user's")
        os.write(2, (NATIVE_NOISE + "a real error\n" + PYTHON_ABSL).encode())
    out, err = capfd.readouterr()
    assert out == "a line of the user's\n"
    assert err == "a real error\n" + PYTHON_ABSL


def test_quiet_tf_off(capfd):
    _quiet.set_enabled(False)
    try:
        with _quiet.quiet_tf():
            os.write(2, NATIVE_NOISE.encode())
    finally:
        _quiet.set_enabled(True)
    assert capfd.readouterr().err == NATIVE_NOISE


def test_filtered_output_forwards_live_without_noise():
    script = textwrap.dedent(
        f"""
        import os, sys
        from tfedge import _quiet
        with _quiet.filtered_output():
            print({EXPORTER_BLOCK!r} + "result", flush=True)
            os.write(2, {NATIVE_NOISE!r}.encode() + b"kept\\n")
            _quiet.terminal().write("progress\\n")
        print("after")
        """
    )
    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "result\nafter\n"
    assert sorted(r.stderr.splitlines()) == ["kept", "progress"]


def test_delegate_notice_absorbed():
    script = textwrap.dedent(
        """
        import sys
        from tfedge.pack._verify import _one_op_model, interpreter_class
        # Without the absorbing run this first interpreter would print the notice.
        it = interpreter_class()(model_content=_one_op_model())
        it.allocate_tensors()
        print("ran", file=sys.stderr)
        """
    )
    root = os.path.join(os.path.dirname(__file__), "..")
    r = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert r.returncode == 0, r.stderr
    assert "ran" in r.stderr and "XNNPACK" not in r.stderr
