"""The core pruning tests (tests/keras/test_pruning.py) under the JAX backend.

Keras picks its backend once, at import, from KERAS_BACKEND, so the module runs in a
fresh pytest process (about 40 s: a second interpreter with JAX and a fresh compile of
every model). Part of the default run: the issue asks for both backends in the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests._backends import backend_env

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


@pytest.mark.parametrize("backend", ["jax"])
def test_core_pruning_tests_pass_under(backend):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            os.path.join(HERE, "test_pruning.py"),
        ],
        capture_output=True,
        text=True,
        env=backend_env(backend),
        cwd=ROOT,
        timeout=1200,
    )
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert " passed" in summary and "skipped" not in summary, summary
