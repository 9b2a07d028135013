"""The subcommands' options as tables, each parsed by its own absl `FlagValues`.

Each subcommand declares its positional arguments and options once (`Command`); from
that table come its absl flags (so that a flag of another subcommand is refused), its
`--help` text (every option with its default, and examples) and the command list of
`tfedge --help`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field

from absl import flags

from tfedge._checks import tolerance_number

WIDTH = 79  # help text wraps here, as git's and pip's do


def parse_tolerance(text: str) -> float:
    """ "0.02", "2%" or "2 %" -> 0.02; the value must lie in (0, 1)."""
    try:
        value = tolerance_number(str(text))
    except ValueError:
        raise ValueError(
            f"expected a fraction such as 0.02 or a percentage such as 2%, got {text!r}"
        ) from None
    if not 0.0 < value < 1.0:
        raise ValueError(
            f"expected a value in (0, 1) (e.g. 0.02 or 2%), got {text!r}; "
            "for no loss at all use --lossless"
        )
    return value


def parse_fraction(text: str) -> float:
    """ "0.9" -> 0.9; the value must lie in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise ValueError(f"expected a number in [0, 1), got {text!r}")
    return value


def parse_budget(text: str) -> int:
    from tfedge.budget import parse_size

    try:
        return parse_size(text, name="--budget")
    except ValueError:
        raise ValueError(
            f"expected a size such as 200KB, '200 KiB', 1.5MB or 50000, got {text!r}"
        ) from None


class _Parser(flags.ArgumentParser):
    """An absl parser from a plain function; its ValueError becomes absl's
    IllegalFlagValueError, which the dispatcher turns into one line."""

    def __init__(self, fn: Callable[[str], object], type_name: str):
        self._fn = fn
        self._type = type_name

    def parse(self, argument):
        if not isinstance(argument, str):
            return argument
        return self._fn(argument)

    def flag_type(self) -> str:
        return self._type


@dataclass(frozen=True)
class Option:
    """One flag: `--name` (and `-short`), its kind, default, help and metavar."""

    name: str
    kind: str  # "string", "bool", "int", "enum", "fraction", "tolerance", "size"
    help: str
    default: object = None
    short: str | None = None
    metavar: str = ""
    choices: tuple[str, ...] = ()
    lower: int | None = None
    upper: int | None = None
    hidden: bool = False  # accepted but not listed (deprecated spellings)
    alias_of: str | None = None  # a deprecated spelling of this other option

    def define(self, fv: flags.FlagValues) -> None:
        kw = {"flag_values": fv, "short_name": self.short}
        if self.kind == "string":
            flags.DEFINE_string(self.name, self.default, self.help, **kw)
        elif self.kind == "bool":
            flags.DEFINE_bool(self.name, self.default, self.help, **kw)
        elif self.kind == "int":
            flags.DEFINE_integer(
                self.name,
                self.default,
                self.help,
                lower_bound=self.lower,
                upper_bound=self.upper,
                **kw,
            )
        elif self.kind == "enum":
            flags.DEFINE_enum(self.name, self.default, self.choices, self.help, **kw)
        elif self.kind in ("tolerance", "size", "fraction"):
            fn = {
                "tolerance": parse_tolerance,
                "size": parse_budget,
                "fraction": parse_fraction,
            }
            flags.DEFINE(
                _Parser(fn[self.kind], self.kind),
                self.name,
                self.default,
                self.help,
                **kw,
            )
        else:
            raise ValueError(f"Unknown option kind {self.kind!r} for --{self.name}")

    def usage(self) -> str:
        """`--bits N` as it appears in the usage line."""
        flag = f"--{self.name}" if not self.short else f"-{self.short}"
        return flag if self.kind == "bool" else f"{flag} {self.metavar}"

    def default_text(self) -> str:
        if self.kind == "bool":
            return "off"
        if self.default is None:
            return ""
        return str(self.default)


@dataclass(frozen=True)
class Command:
    name: str
    summary: str  # one line for the command list
    args: tuple[tuple[str, str], ...]  # (METAVAR, help) of the positional arguments
    options: tuple[Option, ...]
    examples: tuple[str, ...]
    description: str = ""
    required: tuple[str, ...] = ()  # option names that must be given
    run: Callable | None = field(default=None, compare=False)

    def all_options(self) -> tuple[Option, ...]:
        return (*self.options, *COMMON_OPTIONS)

    def flag_values(self) -> flags.FlagValues:
        fv = flags.FlagValues()
        for o in self.all_options():
            o.define(fv)
        return fv

    def missing(self, fv: flags.FlagValues) -> list[Option]:
        """The required options not given (directly or by a deprecated alias)."""
        given = {o.alias_of for o in self.options if o.alias_of and fv[o.name].present}
        return [
            o
            for o in self.options
            if o.name in self.required
            and fv[o.name].value is None
            and o.name not in given
        ]

    def usage(self) -> str:
        parts = [f"tfedge {self.name}"] + [a for a, _ in self.args]
        for o in self.options:
            if o.hidden:
                continue
            u = o.usage()
            parts.append(u if o.name in self.required else f"[{u}]")
        return _wrap_words(parts, indent=len(f"tfedge {self.name} "))

    def help(self) -> str:
        lines = [f"usage: {self.usage()}", ""]
        text = self.description or self.summary
        lines += textwrap.wrap(text, WIDTH)
        if self.args:
            lines += ["", "arguments:"]
            lines += _rows([(a, h) for a, h in self.args])
        listed = [o for o in self.options if not o.hidden]
        if listed:
            lines += ["", "options:"]
            lines += _rows([_option_row(o, self.required) for o in listed])
        lines += ["", "common options:"]
        lines += _rows([_option_row(o, ()) for o in COMMON_OPTIONS])
        lines += _rows([("-h, --help", "show this help and exit")])
        lines += ["", "examples:"]
        lines += [f"  {e}" for e in self.examples]
        return "\n".join(lines) + "\n"


def _option_row(o: Option, required) -> tuple[str, str]:
    flag = f"--{o.name}" + (f", -{o.short}" if o.short else "")
    if o.kind != "bool":
        flag += f" {o.metavar}"
    text = o.help
    if o.name in required:
        text += " (required)"
    elif o.default_text():
        text += f" (default: {o.default_text()})"
    return flag, text


def _rows(pairs: list[tuple[str, str]], left: int = 24) -> list[str]:
    out = []
    for key, text in pairs:
        wrapped = textwrap.wrap(text, WIDTH - left - 2) or [""]
        if len(key) + 2 > left - 1:
            out.append(f"  {key}")
            out += [" " * left + w for w in wrapped]
        else:
            out.append(f"  {key:<{left - 2}}{wrapped[0]}")
            out += [" " * left + w for w in wrapped[1:]]
    return out


def _wrap_words(parts: list[str], indent: int) -> str:
    lines, line = [], ""
    for p in parts:
        if line and len(line) + 1 + len(p) > WIDTH - len("usage: "):
            lines.append(line)
            line = " " * indent + p
        else:
            line = f"{line} {p}" if line else p
    lines.append(line)
    return ("\n" + " " * len("usage: ")).join(lines)


# The options every subcommand takes.
COMMON_OPTIONS = (
    Option(
        "verbosity",
        "int",
        "0: results, warnings and one-line errors; 1: also tfedge's log lines and "
        "the traceback of an error; 2: also TensorFlow's own log output",
        default=0,
        metavar="N",
        lower=0,
        upper=2,
    ),
)
