"""The `tfedge` command: compress | expand | inspect | budget | demo.

    tfedge compress IN -o OUT [--bits N] [--lossless] [--tolerance X]
                    [--report FILE.json] [--target tfedge|tflm]
    tfedge expand IN -o OUT
    tfedge inspect FILE [--json]
    tfedge budget MODEL --target 200KB [--data EVAL.npz] [-o OUT] [--report R.json]
                  [--plot PREFIX]
    tfedge demo [--epochs N]

Exit status: 0 ok, 1 usage, 2 bad input. Errors are one line on stderr; pass
`--verbosity=1` for the traceback.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags

FLAGS = flags.FLAGS

flags.DEFINE_string("output", None, "Output file.", short_name="o")
flags.DEFINE_integer(
    "bits", None, "compress: sharing bits for every lossy tensor (1-8)."
)
flags.DEFINE_bool("lossless", False, "compress: keep every weight bit for bit.")
flags.DEFINE_float("tolerance", None, "compress: largest allowed output drift (0-1).")
flags.DEFINE_string("report", None, "compress: write the report as JSON to this file.")
flags.DEFINE_string(
    "target",
    None,
    "compress: 'tfedge' (default; TFEDGE_DECODE payloads) or 'tflm' (TFLite Micro's "
    "LUT format). budget: the size budget, e.g. 200KB, '200 KiB', 1.5MB.",
)
flags.DEFINE_string(
    "data", None, "budget: .npz with arrays x and y to measure accuracy on."
)
flags.DEFINE_string(
    "plot", None, "budget: write PREFIX_bytes.png and PREFIX_tradeoff.png."
)
flags.DEFINE_bool("json", False, "inspect: print JSON instead of text.")
flags.DEFINE_integer("epochs", None, "demo: training epochs.")

USAGE = __doc__.split("\n\n")[1]
EXIT_USAGE, EXIT_BAD_INPUT = 1, 2


class UsageError(Exception):
    pass


def _need(args: list[str], n: int, what: str) -> None:
    if len(args) != n:
        raise UsageError(f"expected {what}, got {len(args)} arguments")


def cmd_compress(args: list[str]) -> int:
    _need(args, 1, "one input model")
    if not FLAGS.output:
        raise UsageError("compress needs -o OUT")
    from tfedge.pack import DEFAULT_TOLERANCE, compress

    packed = compress(
        args[0],
        lossless=FLAGS.lossless,
        bits=FLAGS.bits,
        tolerance=FLAGS.tolerance if FLAGS.tolerance is not None else DEFAULT_TOLERANCE,
        target=FLAGS.target or "tfedge",
        progress=None,
    )
    packed.save(FLAGS.output)
    if FLAGS.report:
        with open(FLAGS.report, "w") as f:
            f.write(packed.report.to_json())
    print(packed.report.table())
    print(f"wrote {FLAGS.output}")
    return 0


def cmd_expand(args: list[str]) -> int:
    _need(args, 1, "one packed model")
    if not FLAGS.output:
        raise UsageError("expand needs -o OUT")
    from tfedge.runtime import expand

    plain = expand(args[0])
    with open(FLAGS.output, "wb") as f:
        f.write(plain)
    print(f"wrote {FLAGS.output} ({len(plain)} bytes)")
    return 0


def cmd_inspect(args: list[str]) -> int:
    _need(args, 1, "one .tflite file")
    from tfedge.pack._inspect import inspect_model

    with open(args[0], "rb") as f:
        info = inspect_model(f.read())
    if FLAGS.json:
        print(json.dumps(info.to_dict(), indent=2))
    else:
        print(info.text())
    return 0


def cmd_budget(args: list[str]) -> int:
    _need(args, 1, "one model (.tflite, .keras or SavedModel directory)")
    from tfedge.cli._budget import BudgetUsageError, run_budget

    try:
        text = run_budget(
            args[0],
            target=FLAGS.target,
            data=FLAGS.data,
            output=FLAGS.output,
            report=FLAGS.report,
            plot=FLAGS.plot,
        )
    except BudgetUsageError as e:
        raise UsageError(str(e)) from e
    print(text)
    return 0


def cmd_demo(args: list[str]) -> int:
    _need(args, 0, "no arguments")
    from tfedge.cli._demo import run_demo

    run_demo(epochs=FLAGS.epochs)
    return 0


COMMANDS = {
    "compress": cmd_compress,
    "expand": cmd_expand,
    "inspect": cmd_inspect,
    "budget": cmd_budget,
    "demo": cmd_demo,
}


def main(argv: list[str]) -> int:
    from absl import logging

    from tfedge.errors import TfedgeError

    if not FLAGS["verbosity"].present:
        # TensorFlow's converter logs at INFO through absl; keep the output to results.
        logging.set_verbosity(logging.WARNING)

    if len(argv) < 2 or argv[1] not in COMMANDS:
        got = argv[1] if len(argv) > 1 else "nothing"
        print(f"tfedge: unknown command {got!r}\nusage:\n{USAGE}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[argv[1]](argv[2:])
    except UsageError as e:
        print(f"tfedge {argv[1]}: {e}\nusage:\n{USAGE}", file=sys.stderr)
        return EXIT_USAGE
    except (TfedgeError, OSError, ValueError, TypeError) as e:
        if FLAGS.verbosity >= 1:
            raise
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"tfedge {argv[1]}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


def run() -> None:
    """Console-script entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
