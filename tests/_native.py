"""The marks of every test module that needs tfedge's native library: `pytestmark =
NATIVE` (the `native` marker, and a skip with the reason when it was not built)."""

from __future__ import annotations

import pytest

from tfedge.runtime import native_available

NATIVE = [
    pytest.mark.native,
    pytest.mark.skipif(
        not native_available(), reason="the native library is not built (no compiler)"
    ),
]
