"""The TFLite flatbuffer schema classes (object API), from an installed runtime.

tfedge does not vendor generated schema code: it uses the module that the LiteRT wheel
(`ai_edge_litert.schema_py_generated`) or the TensorFlow wheel
(`tensorflow/lite/python/schema_py_generated.py`) ships. The TensorFlow copy is loaded
from its file, without importing TensorFlow.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import types

from tfedge.errors import TfedgeError


@functools.cache
def schema() -> types.ModuleType:
    try:
        from ai_edge_litert import schema_py_generated

        return schema_py_generated
    except ImportError:
        pass
    spec = importlib.util.find_spec("tensorflow")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(root, "lite", "python", "schema_py_generated.py")
        if os.path.exists(path):
            mod_spec = importlib.util.spec_from_file_location(
                "_tfedge_tflite_schema", path
            )
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
            return module
    raise TfedgeError(
        "No TFLite schema module found: install `ai-edge-litert` (pip install "
        "ai-edge-litert) or TensorFlow."
    )
