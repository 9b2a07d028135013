"""The converter stage on .tflite bytes: per-tensor encoding choice, packing,
verification and the report.

`tfedge.compress` (also reachable as `tfedge.pack.compress`) lives in `tfedge.convert`,
which converts Keras models and SavedModels and then calls `compress_tflite`.

Besides `__all__`, the names imported below as `name as name` form the internal API
that tfedge's upper layers (`tfedge.convert`, `tfedge.budget`, `tfedge.deep_compress`,
`tfedge.cli`) and its scripts use instead of this package's private modules; they are
not public and may change with tfedge.
"""

# --- the internal API -------------------------------------------------------------
# compress on .tflite bytes, its option checks and stage clock (tfedge.convert)
from tfedge.pack._compress import DEFAULT_METHOD as DEFAULT_METHOD
from tfedge.pack._compress import DEFAULT_TOLERANCE, Packed
from tfedge.pack._compress import GRAPH_OVERHEAD_BYTES as GRAPH_OVERHEAD_BYTES
from tfedge.pack._compress import Stages as Stages
from tfedge.pack._compress import check_options as check_options
from tfedge.pack._compress import compress_tflite as compress_tflite
from tfedge.pack._compress import plain_tflite as plain_tflite

# the weight buffers compress considers, and its lossless encoder (tfedge.budget)
from tfedge.pack._compress import weight_candidates as weight_candidates
from tfedge.pack._encode import encode_lossless as encode_lossless
from tfedge.pack._encode import share as share

# inspecting a packed file (tfedge.cli)
from tfedge.pack._inspect import inspect_model as inspect_model

# the ECSQ rate ladder of the lossy candidates (tfedge.budget)
from tfedge.pack._lossy import ECSQ_ERRORS as ECSQ_ERRORS
from tfedge.pack._lossy import ecsq_share as ecsq_share

# Keras names of converted tensors (tfedge.budget)
from tfedge.pack._names import keras_weight_owners as keras_weight_owners
from tfedge.pack._names import layer_named_in as layer_named_in
from tfedge.pack._names import values_key as values_key
from tfedge.pack._report import Report, TensorReport

# running a .tflite on samples and measuring it (tfedge.budget, deep_compress, scripts)
from tfedge.pack._samples import generate_sample as generate_sample
from tfedge.pack._samples import make_samples as make_samples
from tfedge.pack._verify import ModelRunner as ModelRunner
from tfedge.pack._verify import drift as drift
from tfedge.pack._verify import interpreter_class as interpreter_class
from tfedge.pack._verify import tflite_metric as tflite_metric
from tfedge.runtime import use_native_rans_encoder

# Every payload tfedge writes is encoded through this package: rANS streams are encoded
# by the native library when it is built (the numpy encoder's bytes, with which the
# search sizes each candidate; tests/runtime/test_native_rans_encode.py holds them
# equal).
use_native_rans_encoder()

__all__ = ["DEFAULT_TOLERANCE", "Packed", "Report", "TensorReport", "compress"]


def __getattr__(name: str):
    # `compress` converts Keras models, which `tfedge.convert` (a layer above this
    # package) does: re-exported from there on first use.
    if name == "compress":
        from tfedge.convert import compress

        globals()[name] = compress
        return compress
    raise AttributeError(f"module 'tfedge.pack' has no attribute {name!r}")
