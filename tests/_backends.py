"""Checks under another Keras backend. Keras fixes its backend when it is imported, so
such a check runs in a fresh interpreter with KERAS_BACKEND set and this checkout first
on the path (about 10 s of imports)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A child trains small models after its imports: minutes on a loaded 2-core machine.
TIMEOUT_S = 600


def backend_env(backend: str, **extra: str) -> dict[str, str]:
    """The environment of a child process on `backend` (JAX on the CPU unless set)."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    env.setdefault("JAX_PLATFORMS", "cpu")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_on_backend(backend: str, source: str, *, timeout: float = TIMEOUT_S) -> str:
    """Runs the Python `source` (dedented) on `backend` in a fresh interpreter and
    returns its last line of output, which must start with "ok"; fails with the child's
    output otherwise, and skips when the backend's package is not installed."""
    pytest.importorskip(backend)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        env=backend_env(backend),
        timeout=timeout,
    )
    lines = proc.stdout.strip().splitlines()
    last = lines[-1] if lines else ""
    assert proc.returncode == 0 and last.startswith("ok"), (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\n"
        f"stderr:\n{proc.stderr[-3000:]}"
    )
    return last
