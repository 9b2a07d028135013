"""The decoder side: `expand` (numpy, or native when built) and `Interpreter`."""

from tfedge.runtime._expand import expand

__all__ = ["expand"]
