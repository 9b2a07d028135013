"""Packaging: building tfedge copies the C++ sources without setuptools warnings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(__file__), "..")
FILES = ("setup.cfg", "setup.py", "pyproject.toml", "README.md")


def test_build_py_has_no_package_warnings(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in FILES:
        shutil.copy(os.path.join(ROOT, name), src / name)
    shutil.copytree(
        os.path.join(ROOT, "tfedge"),
        src / "tfedge",
        ignore=shutil.ignore_patterns("__pycache__", "*.so"),
    )
    r = subprocess.run(
        [sys.executable, "-W", "always", "setup.py", "build_py", "--build-lib", "lib"],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "absent from" not in r.stdout + r.stderr
    assert (src / "lib" / "tfedge" / "runtime" / "cc" / "decoder.cc").exists()
    assert not list((src / "lib").rglob("__pycache__"))
