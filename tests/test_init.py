"""`import tfedge` is cheap, and every subpackage is reachable from it lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Subpackages the README reaches as `tfedge.<name>` after a plain `import tfedge`,
# with one public name each to call through.
SUBPACKAGES = [
    ("budget", "plan"),
    ("fixed_point", "quantize"),
    ("keras", "prune"),
    ("pack", "compress"),
    ("runtime", "expand"),
    ("codecs", "encode_payload"),
    ("convert", "to_tflite"),
    ("tflite", "read"),
]


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_subpackages_are_reachable_after_import_tfedge():
    # One interpreter for all (each subpackage pulls in TensorFlow or Keras).
    calls = ", ".join(f"callable(tfedge.{n}.{a})" for n, a in SUBPACKAGES)
    assert _run(f"import tfedge; print([{calls}])") == str([True] * len(SUBPACKAGES))


def test_import_tfedge_imports_no_framework_or_subpackage():
    loaded = _run(
        "import sys, tfedge; "
        "print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('tensorflow', 'keras', 'jax') "
        "or m.startswith(('tfedge.budget', 'tfedge.keras', 'tfedge.fixed_point'))))"
    )
    assert loaded == "[]"


def test_unknown_attribute_is_still_an_attribute_error():
    import tfedge

    with pytest.raises(AttributeError, match="no attribute 'bogus'"):
        tfedge.bogus  # noqa: B018
    assert {"budget", "keras", "fixed_point"} <= set(dir(tfedge))
