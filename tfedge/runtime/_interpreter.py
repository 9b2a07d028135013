"""`Interpreter`: the stock LiteRT interpreter with the TFEDGE_DECODE op available.

The wheels of TensorFlow and ai-edge-litert export no C API to register custom ops, but
both load *external delegates*. tfedge's native library is one: it claims every
TFEDGE_DECODE node, checks its payload against the weight tensor and decodes it once,
when the interpreter is built, into a constant weight tensor (before XNNPACK looks at
the graph). Packed files then run as they are, with the expanded model's kernels and
outputs. A malformed payload is reported by `allocate_tensors()`.

Layers whose weights come from a sparse payload (pruned FULLY_CONNECTED and 1x1
CONV_2D kernels, float32 or int8) run with the delegate's own sparse kernels when they
are sparse enough to beat the dense ones (`sparse_kernels=True`, the default; the
break-even density is measured in tfedge/runtime/cc/sparse_kernels.h). int8 outputs are
bit-exact with TFLite's int8 kernels; float32 ones differ from the dense kernels' by the
order of the sums (about 1e-7 relative).

With the delegate option constant_weights=0 the weights are decoded in Prepare into
persistent tensors instead; consumers then see non-constant weights and lose XNNPACK's
weight packing (about 2x slower convolutions). scripts/bench_decoder.py measures both.

`allocate_tensors(interpreter)` is for users of any stock interpreter: it turns the
"unresolved custom op TFEDGE_DECODE" failure into an error that says what to do.
"""

from __future__ import annotations

import os
import re

from ai_edge_litert import interpreter as _litert

from tfedge.errors import FormatError, TfedgeError
from tfedge.runtime._native import native_library_path

__all__ = ["Interpreter", "allocate_tensors", "load_decode_delegate"]

OP_NAME = "TFEDGE_DECODE"

_USE_INSTEAD = (
    "Run it with tfedge.Interpreter(model_content=...), which registers the decoder "
    "op, or expand it first with tfedge.expand(packed) (a plain .tflite for any "
    "interpreter, at full XNNPACK speed)."
)
# The kernel's Prepare reports "TFEDGE_DECODE: tensor '<name>': [byte <n>: ]<problem>".
_PREPARE_ERROR = re.compile(
    r"TFEDGE_DECODE: tensor '(?P<tensor>[^']*)': (?:byte (?P<offset>\d+): )?"
    r"(?P<problem>.*?)(?:\s*Node number \d+ \(\w+\) failed to prepare\.|$)",
    re.S,
)


def load_decode_delegate(**options: str):
    """Loads tfedge's native library as a TFLite external delegate.

    Options (strings): `constant_weights="0"` decodes in Prepare into persistent,
    non-constant tensors instead of constants; `trusted="1"` lifts the resource bound
    on decoded sizes (docs/FORMAT.md, "Resource bound"); `sparse_kernels="0"` leaves
    sparse layers to the stock dense kernels (default "1"); `probe="1"` records the
    graph for the struct-layout test; `sparse_max_density="x"` overrides the sparse
    kernels' break-even densities and `sparse_isa="avx512"|"avx2"|"generic"` forces
    their instruction set (both for benchmarks and tests; `sparse_isa` fails to load
    where `tfedge.runtime._native.sparse_isa_supported` says no).

    The returned object goes into `experimental_delegates=[...]` of the ai_edge_litert
    interpreter. (TensorFlow's `tf.lite.experimental.load_delegate` can load the same
    library, `tfedge.runtime._native.native_library_path()`.)

    Raises:
        TfedgeError: the native library was not built.
    """
    path = native_library_path()
    if path is None:
        raise TfedgeError(
            "tfedge's native decoder library is not built, so the TFEDGE_DECODE op is "
            "not available (reinstall tfedge on a machine with a C++17 compiler). "
            "Use tfedge.expand(packed) and a stock interpreter instead."
        )
    return _litert.load_delegate(path, {k: str(v) for k, v in options.items()})


def _unresolved_decode_op(error: BaseException) -> bool:
    text = str(error)
    return OP_NAME in text and "unresolved custom op" in text


def _translate(error: RuntimeError) -> Exception:
    """A tfedge error for a TFEDGE_DECODE failure reported by the runtime, else None."""
    if _unresolved_decode_op(error):
        return TfedgeError(
            "This model was packed by tfedge: its weights are TFEDGE_DECODE payloads, "
            "which this interpreter cannot run. " + _USE_INSTEAD
        )
    match = _PREPARE_ERROR.search(str(error))
    if match:
        offset = match.group("offset")
        return FormatError(
            match.group("problem").strip(),
            tensor=match.group("tensor"),
            offset=int(offset) if offset is not None else None,
        )
    return None


def _check_file(data: bytes, *, trusted: bool) -> None:
    """The file-level checks of `tfedge.expand` (the delegate sees tensors, not the
    file: its metadata, buffers and shared objects)."""
    from tfedge.runtime._expand import read_packed
    from tfedge.tflite import foreign_errors_as_format_errors

    with foreign_errors_as_format_errors():
        read_packed(data, trusted=trusted)


def allocate_tensors(interpreter) -> None:
    """Calls `interpreter.allocate_tensors()`, explaining a packed model's failure.

    A stock TFLite/LiteRT interpreter fails on a packed model only here (not at
    construction), with "Encountered unresolved custom op: TFEDGE_DECODE".

    Raises:
        TfedgeError: the model is packed and the interpreter has no decoder op; the
            message says to use `tfedge.Interpreter` or `tfedge.expand`.
        FormatError: a payload is malformed (with the decoder op registered).
    """
    try:
        interpreter.allocate_tensors()
    except RuntimeError as e:
        translated = _translate(e)
        if translated is None:
            raise
        raise translated from e


class _SignatureRunner(_litert.SignatureRunner):
    """The stock runner, explaining allocation failures as the Interpreter does."""

    def __call__(self, **kwargs):
        try:
            return super().__call__(**kwargs)
        except RuntimeError as e:
            translated = _translate(e)
            if translated is None:
                raise
            raise translated from e


class Interpreter(_litert.Interpreter):
    """The stock ai_edge_litert interpreter with TFEDGE_DECODE registered.

    Runs packed `.tflite` files as they are: each payload is validated and decoded
    once, when the interpreter is built, into a constant weight tensor; outputs are
    those of the expanded model, at its speed. Everything else is
    the stock interpreter's API (`get_input_details`, `set_tensor`, `invoke`,
    `get_signature_runner`, ...). Plain models run too.

    Pruned layers (FULLY_CONNECTED and 1x1 CONV_2D whose weights are sparse payloads)
    run with tfedge's sparse kernels where they are faster than dense: int8 outputs
    are bit-exact with the stock kernels, float32 outputs equal up to the order of
    the sums.

    Args:
        model_path: a `.tflite` file (packed or plain).
        model_content: the model's bytes, instead of `model_path`.
        num_threads: threads for the interpreter's kernels; None for the default.
        trusted: lift the resource bound on decoded sizes (docs/FORMAT.md, "Resource
            bound") for a file whose source you trust.
        sparse_kernels: run sparse layers with the delegate's sparse kernels (True,
            the default); False runs every layer with the stock dense kernels, as
            the expanded model would.

    Raises:
        ValueError: not exactly one of `model_path` and `model_content` is given.
        FileNotFoundError: `model_path` is not a file.
        TfedgeError: the native library was not built (use `tfedge.expand`).
        FormatError: the file is not a well-formed packed model (the checks
            `tfedge.expand` makes before decoding: metadata, decode operators,
            shared objects).
        FormatError: from `allocate_tensors()`, a payload is malformed or does not fit
            its tensor; the message names the tensor, the byte and the problem.
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        model_content: bytes | None = None,
        *,
        num_threads: int | None = None,
        trusted: bool = False,
        sparse_kernels: bool = True,
    ):
        if (model_path is None) == (model_content is None):
            raise ValueError(
                "Expected exactly one of `model_path` and `model_content`. Received: "
                f"model_path={model_path!r}, model_content="
                + ("None" if model_content is None else f"<{len(model_content)} bytes>")
            )
        if num_threads is not None and (
            not isinstance(num_threads, int) or num_threads < -1 or num_threads == 0
        ):
            raise ValueError(
                f"Expected `num_threads` a positive int or -1. Received: "
                f"num_threads={num_threads!r}"
            )
        if model_path is not None and not os.path.isfile(model_path):
            what = "is a directory" if os.path.isdir(model_path) else "does not exist"
            raise FileNotFoundError(
                f"Model file {os.fspath(model_path)!r} {what}: pass the path of a "
                ".tflite file, or the model's bytes as `model_content=`."
            )
        if not isinstance(sparse_kernels, bool):
            raise ValueError(
                f"Expected `sparse_kernels` True or False. Received: "
                f"sparse_kernels={sparse_kernels!r}"
            )
        if model_content is None:
            with open(model_path, "rb") as f:
                model_content = f.read()
            model_path = None
        model_content = bytes(model_content)
        # Kept alive as long as the interpreter that uses it.
        self._tfedge_delegate = load_decode_delegate(
            trusted="1" if trusted else "0",
            sparse_kernels="1" if sparse_kernels else "0",
        )
        _check_file(model_content, trusted=trusted)
        try:
            super().__init__(
                model_path=model_path,
                model_content=model_content,
                experimental_delegates=[self._tfedge_delegate],
                num_threads=num_threads,
            )
        except ValueError as e:  # the runtime refused the model while building it
            raise FormatError(
                "the TFLite runtime refused the model: " + " ".join(str(e).split())
            ) from e

    def allocate_tensors(self) -> None:
        """Allocates tensors and decodes every payload (once); see the class doc."""
        try:
            super().allocate_tensors()
        except UnicodeDecodeError as e:  # the runtime's message held a forged name
            raise FormatError(
                "the TFLite runtime refused the model (with a message that is not "
                "UTF-8: a forged operator or tensor name)"
            ) from e
        except RuntimeError as e:
            translated = _translate(e)
            if translated is None:
                raise
            raise translated from e

    def get_signature_runner(self, signature_key: str | None = None):
        """The stock signature runner, raising tfedge errors for bad payloads."""
        if signature_key is None:
            keys = list(self.get_signature_list())
            if len(keys) != 1:
                return super().get_signature_runner(None)  # the stock ValueError
            signature_key = keys[0]
        return _SignatureRunner(interpreter=self, signature_key=signature_key)
