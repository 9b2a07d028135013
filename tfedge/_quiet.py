"""Keep TensorFlow's and LiteRT's chatter out of tfedge's output.

Converting a Keras model prints the exported signature (`Saved artifact at ...
Captures: ...`) on stdout; TensorFlow's and LiteRT's C++ code log calibration settings,
delegate creation and CUDA probing on stderr, below Python, where neither `warnings`
nor `logging` reach. tfedge causes these lines, so it removes them:

- `quiet_tf()` around a conversion: Python's stdout is swapped for a buffer, the
  `tensorflow` logger is raised to ERROR (retracing warnings), and file descriptors 1
  and 2 are captured; afterwards every captured line that is not known noise (`NOISE`)
  is written back, so real errors still show.
- `filtered_output()` around a whole `tfedge` command: descriptors 1 and 2 become pipes
  whose lines are forwarded live unless they are noise. Progress bars write to
  `terminal()`, the original stderr, so they stay live.

`set_enabled(False)` (the CLI's `--verbosity 2`) turns both off.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable

# Lines that tfedge's own use of TensorFlow and LiteRT prints and that say nothing to a
# tfedge user. Each is matched at the start of a line.
NOISE = tuple(
    re.compile(p)
    for p in (
        # Keras' exporter, once per conversion of a Keras model (the block below it is
        # dropped with it, see _BLOCK).
        r"Saved artifact at '",
        # LiteRT, once per process when an interpreter applies its default delegate.
        r"INFO: Created TensorFlow Lite XNNPACK delegate for CPU",
        # The converter's calibration settings, once per quantized conversion.
        r"fully_quantize: \d+, inference_type: \d+",
        # absl's C++ logging (TensorFlow's import probing for CUDA, the converter's
        # MLIR passes): "W0000 00:00:1796602800.834263    8199 file.cc:52] ...".
        # Python's absl lines (file.py) are tfedge's or the user's: they stay.
        r"[IWE]\d{4} [\d:.]+\s+\d+ [\w./-]+\.(?:cc|h|cpp):\d+\]",
        r"WARNING: All log messages before absl::InitializeLog\(\) is called",
        # tf.function retracing, as the tensorflow logger writes it to stderr with and
        # without absl's handler.
        r"WARNING:tensorflow:.*triggered tf\.function retracing",
        r"W\d{4} .*\] .*triggered tf\.function retracing",
        r"WARNING:absl:.*(?:retracing|Compiled the loaded model)",
    )
)
# After "Saved artifact at", the exporter's lines: blank, "* Endpoint ...", "Output
# Type:", "Captures:" and the indented specs under them.
_BLOCK = re.compile(r"^(?:$|\s|\* Endpoint|Output Type:|Captures:)")

_enabled = True
_terminal: io.TextIOBase | None = None  # original stderr while filtered_output runs


def set_enabled(enabled: bool) -> None:
    global _enabled
    _enabled = bool(enabled)


def terminal() -> io.TextIOBase:
    """Where progress goes: the original stderr even while its descriptor is piped."""
    return _terminal if _terminal is not None else sys.stderr


class _LineFilter:
    """Drops NOISE lines and the exporter's block after its first line."""

    def __init__(self):
        self.in_block = False

    def keep(self, line: str) -> bool:
        text = line.rstrip("\r\n")
        if self.in_block:
            if _BLOCK.match(text):
                return False
            self.in_block = False
        if any(p.match(text) for p in NOISE):
            self.in_block = text.startswith("Saved artifact at")
            return False
        return True

    def filter(self, text: str) -> str:
        return "".join(ln for ln in text.splitlines(True) if self.keep(ln))


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()


@contextlib.contextmanager
def quiet_tf():
    """Runs a TensorFlow conversion without its chatter (see the module docstring)."""
    if not _enabled:
        yield
        return
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    buffer = io.StringIO()
    _flush_std()
    saved, captures = [], []
    try:
        for fd in (1, 2):
            try:
                saved.append((fd, os.dup(fd)))
            except OSError:
                continue
            tmp = tempfile.TemporaryFile(mode="w+b")
            os.dup2(tmp.fileno(), fd)
            captures.append((fd, tmp))
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        _flush_std()
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        tf_logger.setLevel(level)
        line_filter = _LineFilter()
        kept = line_filter.filter(buffer.getvalue())
        if kept:
            sys.stdout.write(kept)
        for fd, tmp in captures:
            tmp.seek(0)
            text = line_filter.filter(tmp.read().decode("utf-8", "replace"))
            tmp.close()
            if text:
                os.write(fd, text.encode())


@contextlib.contextmanager
def filtered_output():
    """Forwards descriptors 1 and 2 line by line without NOISE, live (for the CLI)."""
    global _terminal
    if not _enabled:
        yield
        return
    _flush_std()
    threads, restore = [], []
    term_fd = os.dup(2)
    _terminal = io.TextIOWrapper(
        os.fdopen(term_fd, "wb", buffering=0, closefd=False),
        encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
        errors="replace",
        write_through=True,
    )
    try:
        for fd in (1, 2):
            copy = os.dup(fd)
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            restore.append((fd, copy))
            t = threading.Thread(target=_pump, args=(read_end, copy), daemon=True)
            t.start()
            threads.append(t)
        yield
    finally:
        _flush_std()
        for fd, copy in restore:
            # Closing our end of the pipe lets the reader see end of file.
            os.dup2(copy, fd)
        for t in threads:
            t.join(timeout=10)
        for _fd, copy in restore:
            os.close(copy)
        _terminal.close()  # closefd=False: term_fd stays open until the next line
        _terminal = None
        os.close(term_fd)


def _pump(read_end: int, out_fd: int) -> None:
    line_filter = _LineFilter()
    with os.fdopen(read_end, "rb") as pipe:
        for raw in pipe:
            if line_filter.keep(raw.decode("utf-8", "replace")):
                with contextlib.suppress(OSError):
                    os.write(out_fd, raw)


_absorbed: set[type] = set()


def absorb_delegate_notice(interpreter_class: type, probe: Callable[[], bytes]) -> type:
    """Returns `interpreter_class` after running, once per class and process, the
    model `probe()` returns (one op is enough) in it without output: LiteRT prints
    `INFO: Created TensorFlow Lite XNNPACK delegate for CPU.` at the first interpreter
    it gives the delegate to, and the interpreters tfedge runs to check its own work
    should not make the user see it."""
    if interpreter_class in _absorbed or not _enabled:
        return interpreter_class
    _absorbed.add(interpreter_class)
    with quiet_tf():
        interpreter_class(model_content=probe()).allocate_tensors()
    return interpreter_class
