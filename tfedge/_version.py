"""tfedge's version, read from the installed package's metadata: setup.cfg's
`version` is the one place it is written."""

from __future__ import annotations

import configparser
from importlib import metadata
from pathlib import Path


def _version() -> str:
    try:
        return metadata.version("tfedge")
    except metadata.PackageNotFoundError:
        pass
    # A source tree used without installing it: setup.cfg beside the package.
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(Path(__file__).resolve().parent.parent / "setup.cfg")
    return parser.get("metadata", "version", fallback="0+unknown")


__version__ = _version()
