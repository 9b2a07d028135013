"""A progress bar for long steps: tqdm when installed, else periodic absl log lines."""

from __future__ import annotations

import sys
import time

from absl import logging


def progress(items, *, desc: str, enabled: bool | None = None):
    items = list(items)
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled or len(items) < 2:
        yield from items
        return
    try:
        from tqdm import tqdm
    except ImportError:
        last = time.monotonic()
        for i, item in enumerate(items):
            if time.monotonic() - last > 2.0:
                logging.info("%s: %d/%d", desc, i, len(items))
                last = time.monotonic()
            yield item
        return
    yield from tqdm(items, desc=desc, file=sys.stderr, leave=False)
