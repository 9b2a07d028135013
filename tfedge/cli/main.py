"""The `tfedge` command: compress | expand | inspect | budget | demo | help.

Each subcommand parses only its own flags (absl, one `FlagValues` per subcommand; the
options are tables in `_commands.py`), reads and writes files and calls the library.

Exit status: 0 ok, 1 usage (unknown command or flag, bad flag value, missing
argument), 2 bad input (a file that is missing, unreadable, corrupt or not what the
command needs), 3 internal error (a bug in tfedge: please report it). Errors are one
line on stderr; `--verbosity 1` adds the traceback.
"""

from __future__ import annotations

import difflib
import os
import sys
import traceback

from absl import flags

from tfedge.cli._errors import BadInputError, UsageError

EXIT_OK, EXIT_USAGE, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
HELP_FLAGS = ("-h", "--help", "-help", "--helpfull", "-?")


def version() -> str:
    """tfedge's version from the installed package's metadata."""
    from tfedge._version import __version__

    return __version__


def overview() -> str:
    """`tfedge --help`: the commands and what they do."""
    from tfedge.cli._commands import COMMANDS

    lines = [
        "usage: tfedge COMMAND [ARGS] [OPTIONS]",
        "       tfedge COMMAND --help | tfedge help COMMAND | tfedge --version",
        "",
        "Make Keras and TensorFlow Lite models small: pack a .tflite's weights with",
        "weight sharing, a sparse index and Huffman coding, plan a model into a byte",
        "budget, and expand or inspect packed files.",
        "",
        "commands:",
    ]
    for c in COMMANDS.values():
        lines.append(f"  {c.name:<10}{c.summary}")
    lines.append(f"  {'help':<10}show the help of tfedge or of one command")
    lines += [
        "",
        "exit status: 0 ok, 1 usage error, 2 bad input file or data, 3 internal error.",
        "Errors are one line on stderr; --verbosity 1 adds the traceback.",
    ]
    return "\n".join(lines) + "\n"


def _flag_error(command, e: flags.Error) -> UsageError:
    """absl's flag errors as one line naming the option and, when it helps, the fix."""
    from tfedge.cli._commands import COMMANDS

    if isinstance(e, flags.UnrecognizedFlagError):
        name = e.flagname
        owners = [
            c.name
            for c in COMMANDS.values()
            if any(o.name == name or o.short == name for o in c.options)
        ]
        if owners:
            return UsageError(
                f"option --{name} does not apply to {command.name} "
                f"(it is an option of {', '.join(owners)})"
            )
        known = [o.name for o in command.all_options()]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean --{close[0]}?" if close else ""
        return UsageError(f"unknown option --{name}{hint}")
    text = " ".join(str(e).split())
    return UsageError(text[0].lower() + text[1:] if text else type(e).__name__)


def _parse(command, args: list[str]):
    fv = command.flag_values()
    try:
        rest = fv(["tfedge " + command.name, *args])[1:]
    except flags.Error as e:
        raise _flag_error(command, e) from None
    n = len(command.args)
    if len(rest) != n:
        what = " ".join(a for a, _ in command.args) or "no arguments"
        got = f": {' '.join(rest)}" if rest else ""
        raise UsageError(f"expected {what}, got {len(rest)} arguments{got}")
    for option in command.missing(fv):
        raise UsageError(f"missing {option.usage()}")
    return fv, rest


def main(argv: list[str]) -> int:
    from tfedge.cli._commands import COMMANDS

    args = list(argv[1:])
    if not args:
        sys.stderr.write(overview())
        return EXIT_USAGE
    first = args[0]
    if first in HELP_FLAGS:
        sys.stdout.write(overview())
        return EXIT_OK
    if first in ("--version", "-V", "version"):
        print(f"tfedge {version()}")
        return EXIT_OK
    if first == "help":
        if len(args) == 1:
            sys.stdout.write(overview())
            return EXIT_OK
        if len(args) == 2 and args[1] in COMMANDS:
            sys.stdout.write(COMMANDS[args[1]].help())
            return EXIT_OK
        return _usage_error(
            "help",
            f"unknown command {args[1]!r}"
            if len(args) == 2
            else "expected at most one command name",
        )
    if first not in COMMANDS:
        close = difflib.get_close_matches(first, list(COMMANDS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return _usage_error(None, f"unknown command {first!r}{hint}")
    command = COMMANDS[first]
    rest = args[1:]
    if any(a in HELP_FLAGS for a in rest[: rest.index("--") if "--" in rest else None]):
        sys.stdout.write(command.help())
        return EXIT_OK
    try:
        fv, positional = _parse(command, rest)
    except UsageError as e:
        return _usage_error(command.name, str(e))
    return _run(command, fv, positional)


def _usage_error(command: str | None, message: str) -> int:
    prefix = f"tfedge {command}" if command else "tfedge"
    see = (
        f"tfedge {command} --help" if command and command != "help" else "tfedge --help"
    )
    sys.stderr.write(f"{prefix}: error: {message} (see '{see}')\n")
    return EXIT_USAGE


def _run(command, fv, positional: list[str]) -> int:
    from absl import logging

    from tfedge import _quiet
    from tfedge.errors import TfedgeError

    verbosity = fv.verbosity
    if verbosity < 2:
        # TensorFlow reads this when a subcommand first imports it.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.set_verbosity(logging.INFO if verbosity >= 1 else logging.WARNING)
    _quiet.set_enabled(verbosity < 2)
    try:
        with _quiet.filtered_output():
            command.run(fv, positional)
        return EXIT_OK
    except UsageError as e:
        return _usage_error(command.name, str(e))
    except (TfedgeError, BadInputError, OSError, ValueError, EOFError) as e:
        # tfedge's own errors, files the system cannot read, and argument values
        # the library refused (tfedge raises ValueError only for arguments).
        return _fail(command.name, e, verbosity, EXIT_BAD_INPUT, "error")
    except KeyboardInterrupt:
        sys.stderr.write(f"tfedge {command.name}: interrupted\n")
        return 130
    except Exception as e:  # every other exception is a bug in tfedge
        return _fail(command.name, e, verbosity, EXIT_INTERNAL, "internal error")


def _fail(name: str, e: BaseException, verbosity: int, status: int, kind: str) -> int:
    if verbosity >= 1:
        traceback.print_exception(e, file=sys.stderr)
    text = str(e).strip().splitlines()
    message = text[0] if text else ""
    if status == EXIT_INTERNAL or not message:
        message = f"{type(e).__name__}: {message}" if message else type(e).__name__
    if status == EXIT_INTERNAL:
        message += (
            " (a bug in tfedge; rerun with --verbosity 1 for the traceback and "
            "report it)"
            if verbosity < 1
            else " (a bug in tfedge; please report it with the traceback above)"
        )
    sys.stderr.write(f"tfedge {name}: {kind}: {message}\n")
    return status


def run() -> None:
    """Console-script entry point."""
    sys.exit(main(sys.argv))


if __name__ == "__main__":
    run()
