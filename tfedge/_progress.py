"""Progress on long steps, with Keras' `verbose` convention.

`verbose`: 0 silent; 1 a tqdm bar on a terminal, and when stderr is not a terminal (a
pipe, a log file) one line for each stage that took `QUIET_SECONDS` or more; 2 one line
per stage always; "auto" (the default) is 1.
Progress goes to stderr (the original one while the CLI filters TensorFlow's output),
never to stdout, so piped results stay clean.
"""

from __future__ import annotations

import contextlib
import time

from tfedge import _quiet

VERBOSE_CHOICES = ("auto", 0, 1, 2)
# With verbose=1 and no terminal, stages quicker than this pass without a line: a
# log of a script that packs a hundred small models should not list them all.
QUIET_SECONDS = 1.0


def resolve_verbose(verbose, *, name: str = "verbose") -> int:
    """ "auto" -> 1; 0, 1, 2 (or a bool) as given; anything else is a ValueError."""
    if verbose == "auto" or verbose is None:
        return 1
    if isinstance(verbose, bool):
        return int(verbose)
    if isinstance(verbose, int) and verbose in (0, 1, 2):
        return verbose
    raise ValueError(
        f"Expected `{name}` in {VERBOSE_CHOICES} (as in Keras: 0 silent, 1 progress "
        f"bar, 2 one line per stage). Received: {name}={verbose!r}"
    )


def _mode(verbose) -> str:
    """ "off", "bar" or "line"."""
    level = resolve_verbose(verbose)
    if level == 0:
        return "off"
    if level == 1 and _is_terminal():
        return "bar"
    return "line"


def _is_terminal() -> bool:
    stream = _quiet.terminal()
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _done(verbose, desc: str, seconds: float, count: str = "") -> None:
    if resolve_verbose(verbose) == 1 and seconds < QUIET_SECONDS:
        return
    _line(f"{desc}: {count}{seconds:.1f} s")


def _line(text: str) -> None:
    out = _quiet.terminal()
    out.write(f"tfedge: {text}\n")
    out.flush()


def progress(items, *, desc: str, verbose="auto", enabled: bool | None = None):
    """Yields `items`, showing progress per `verbose`.

    `enabled` is the older `progress=` switch of `compress` and `budget.plan`: True
    means verbose=1, False verbose=0, None defers to `verbose`.
    """
    if enabled is not None:
        verbose = 1 if enabled else 0
    items = list(items)
    mode = _mode(verbose)
    if mode == "off" or not items:
        yield from items
        return
    start = time.perf_counter()
    if mode == "bar":
        from tqdm import tqdm

        yield from tqdm(items, desc=desc, file=_quiet.terminal(), leave=False)
    else:
        yield from items
    _done(verbose, desc, time.perf_counter() - start, f"{len(items)} done in ")


@contextlib.contextmanager
def stage(desc: str, *, verbose="auto"):
    """One step without a count (loading a model, converting it): on a terminal its
    name shows while it runs; in every mode but 0 one line says how long it took."""
    mode = _mode(verbose)
    if mode == "off":
        yield
        return
    out = _quiet.terminal()
    if mode == "bar":
        out.write(f"tfedge: {desc} ...")
        out.flush()
    start = time.perf_counter()
    try:
        yield
    finally:
        if mode == "bar":
            out.write("\r\x1b[K")
        _done(verbose, desc, time.perf_counter() - start)
