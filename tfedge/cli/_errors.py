"""The CLI's own error kinds, mapped to exit statuses by `tfedge.cli.main`."""

from __future__ import annotations


class UsageError(Exception):
    """The command line itself is wrong (exit status 1)."""


class BadInputError(Exception):
    """A file or value the command was given cannot be used (exit status 2)."""
