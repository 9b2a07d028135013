"""The subcommands: their options (one table each) and what they run."""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from tfedge.cli._errors import BadInputError, UsageError
from tfedge.cli._spec import Command, Option, parse_budget


def _output(help_text: str) -> Option:
    return Option("output", "string", help_text, short="o", metavar="OUT")


def _load_npz(path: str) -> dict[str, np.ndarray]:
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such data file: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, EOFError, ValueError) as e:
        raise BadInputError(f"{path} is not a readable .npz file ({e})") from e


def load_representative(path: str):
    """Representative inputs from a .npz: the array `x` when the file holds `x` (and
    maybe `y`, as `budget --data` files do), the one array of a single-array file,
    else a dict of arrays keyed by input name."""
    arrays = _load_npz(path)
    if not arrays:
        raise BadInputError(f"{path} holds no arrays")
    if "x" in arrays and set(arrays) <= {"x", "y"}:
        return arrays["x"]
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    return arrays


def _load_model(path: str):
    """A `.keras` file is loaded here (it takes a while: progress shows it), so that
    the report can name tensors by layer; anything else goes to the library as is."""
    if not path.endswith(".keras"):
        return path
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such model file: {path}")
    import keras

    from tfedge._progress import stage

    with stage(f"loading {os.path.basename(path)}"):
        return keras.saving.load_model(path)


def _warn(command: str, text: str) -> None:
    sys.stderr.write(f"tfedge {command}: warning: {text}\n")


# --------------------------------------------------------------------------- compress


def run_compress(fv, args: list[str]) -> None:
    from tfedge.convert import compress
    from tfedge.pack import DEFAULT_TOLERANCE

    if fv.lossless and fv["tolerance"].present:
        raise UsageError("--tolerance does not apply with --lossless (nothing is lost)")
    if fv.lossless and fv["bits"].present:
        raise UsageError("--bits does not apply with --lossless (no weight is shared)")
    data = load_representative(fv.data) if fv.data else None
    model = _load_model(args[0])
    packed = compress(
        model,
        lossless=fv.lossless,
        bits=fv.bits,
        tolerance=fv.tolerance if fv.tolerance is not None else DEFAULT_TOLERANCE,
        representative_data=data,
        target=fv.target,
        method=fv.method,
        progress=None,
    )
    packed.save(fv.output)
    if fv.report:
        with open(fv.report, "w") as f:
            f.write(packed.report.to_json())
    if fv.json:
        print(packed.report.to_json())
        return
    print(packed.report.table() if fv.verbose else packed.report.summary())
    print(f"wrote {fv.output} ({len(packed)} bytes)")


COMPRESS = Command(
    name="compress",
    summary="pack a model's weights into a smaller .tflite (TFEDGE_DECODE or TFLM)",
    description=(
        "Packs every weight buffer of MODEL with k-means weight sharing, a sparse "
        "index and Huffman coding, checks the packed model's outputs against the "
        "original's in the TFLite interpreter and backs off any tensor that moves "
        "them by more than the tolerance. Prints a summary (totals, largest tensors, "
        "what was backed off); --verbose prints every tensor."
    ),
    args=(("MODEL", "a .tflite file, a .keras file or a SavedModel directory"),),
    options=(
        _output("where to write the packed .tflite"),
        Option(
            "bits",
            "int",
            "sharing bits for every lossy tensor (1-8; 1-7 for --target tflm)",
            metavar="N",
            lower=1,
            upper=8,
        ),
        Option("lossless", "bool", "keep every weight bit for bit", default=False),
        Option(
            "tolerance",
            "tolerance",
            "largest allowed output drift, as a fraction or a percentage "
            "(default: 0.02, i.e. 2% of the output range)",
            metavar="X",
        ),
        Option(
            "data",
            "string",
            "representative inputs to measure the drift on: a .npz holding x (as "
            "for budget), a single array, or one array per model input named after "
            "it (default: inputs generated from the input signature)",
            metavar="FILE.npz",
        ),
        Option(
            "target",
            "enum",
            "tfedge: TFEDGE_DECODE payloads; tflm: TFLite Micro's look-up tables",
            default="tfedge",
            metavar="tfedge|tflm",
            choices=("tfedge", "tflm"),
        ),
        Option(
            "method",
            "enum",
            "lossy candidates per tensor: kmeans: k-means codebooks; ecsq: those "
            "and entropy-constrained quantization at several rates",
            default="kmeans",
            metavar="kmeans|ecsq",
            choices=("kmeans", "ecsq"),
        ),
        Option(
            "report",
            "string",
            "also write the full per-tensor report as JSON",
            metavar="FILE.json",
        ),
        Option("verbose", "bool", "print every tensor, not a summary", default=False),
        Option("json", "bool", "print the full report as JSON", default=False),
    ),
    required=("output",),
    examples=(
        "tfedge compress model.tflite -o model.packed.tflite",
        "tfedge compress model.keras -o small.tflite --tolerance 1% --data x.npz",
        "tfedge compress model.tflite -o exact.tflite --lossless --verbose",
        "tfedge compress model.tflite -o micro.tflite --target tflm --bits 4",
    ),
    run=run_compress,
)


# --------------------------------------------------------------------------- expand


def run_expand(fv, args: list[str]) -> None:
    from tfedge.runtime import expand

    plain = expand(args[0])
    with open(fv.output, "wb") as f:
        f.write(plain)
    print(f"wrote {fv.output} ({len(plain)} bytes)")


EXPAND = Command(
    name="expand",
    summary="turn a packed .tflite back into a plain one any interpreter runs",
    description=(
        "Decodes every TFEDGE_DECODE payload of PACKED into its weight tensor and "
        "removes the decode operators: the result runs in any TFLite interpreter."
    ),
    args=(("PACKED", "a .tflite written by tfedge compress"),),
    options=(_output("where to write the plain .tflite"),),
    required=("output",),
    examples=("tfedge expand model.packed.tflite -o model.tflite",),
    run=run_expand,
)


# --------------------------------------------------------------------------- inspect


def run_inspect(fv, args: list[str]) -> None:
    from tfedge.pack import inspect_model

    with open(args[0], "rb") as f:
        info = inspect_model(f.read())
    print(json.dumps(info.to_dict(), indent=2) if fv.json else info.text())


INSPECT = Command(
    name="inspect",
    summary="show a .tflite's inputs, outputs, operators and packed tensors",
    description=(
        "Lists FILE's inputs and outputs (names, shapes, types, quantization), its "
        "operators and, for a packed file, each packed tensor's coding and bits per "
        "weight."
    ),
    args=(("FILE", "a .tflite file, packed or plain"),),
    options=(Option("json", "bool", "print JSON instead of text", default=False),),
    examples=("tfedge inspect model.packed.tflite", "tfedge inspect m.tflite --json"),
    run=run_inspect,
)


# --------------------------------------------------------------------------- budget


def run_budget(fv, args: list[str]) -> None:
    from tfedge.cli._budget import run_budget as run

    size = fv.budget
    if fv.target is not None:
        if size is not None:
            raise UsageError("give the size once: --budget SIZE")
        _warn(
            "budget",
            "--target is deprecated for budget (compress --target is the output "
            "format); use --budget SIZE",
        )
        try:
            size = parse_budget(fv.target)
        except ValueError as e:
            raise UsageError(f"flag --target={fv.target}: {e}") from None
    print(
        run(
            _load_model(args[0]),
            budget=size,
            data=fv.data,
            output=fv.output,
            report=fv.report,
            plot=fv.plot,
        )
    )


BUDGET = Command(
    name="budget",
    summary="plan a model into a byte budget (pruning and coding per layer)",
    description=(
        "Chooses per layer a pruning sparsity and a coding (float, 2-8 bit sharing or "
        "ternary) from each layer's measured sensitivity and exact packed sizes so "
        "that the packed file fits SIZE, then prints the plan and where the bytes go."
    ),
    args=(("MODEL", "a .tflite file, a .keras file or a SavedModel directory"),),
    options=(
        Option(
            "budget",
            "size",
            "the size to fit: 200KB, '200 KiB', 1.5MB or a byte count (KB = 1000 "
            "bytes, KiB = 1024)",
            metavar="SIZE",
        ),
        Option(
            "data",
            "string",
            "a .npz holding arrays x and y to measure accuracy on (default: top-1 "
            "agreement with the float model on generated inputs)",
            metavar="EVAL.npz",
        ),
        _output("also write the packed .tflite"),
        Option(
            "report",
            "string",
            "also write the plan and the byte breakdown as JSON",
            metavar="FILE.json",
        ),
        Option(
            "plot",
            "string",
            "also write PREFIX_bytes.png and PREFIX_tradeoff.png (needs matplotlib)",
            metavar="PREFIX",
        ),
        # Until 0.1 the size was --target, which compress uses for the output format.
        Option(
            "target",
            "string",
            "deprecated: use --budget",
            hidden=True,
            alias_of="budget",
        ),
    ),
    required=("budget",),
    examples=(
        "tfedge budget model.keras --budget 200KB -o small.tflite",
        "tfedge budget model.tflite --budget 50KB --data eval.npz --plot fig",
    ),
    run=run_budget,
)


# --------------------------------------------------------------------------- demo


def run_demo(fv, args: list[str]) -> None:
    from tfedge.cli._demo import run_demo as run

    run(epochs=fv.epochs, sparsity=fv.sparsity)


DEMO = Command(
    name="demo",
    summary="train, prune, pack and run a small model end to end; print a table",
    description=(
        "Trains LeNet-300-100 on Fashion-MNIST (or a small MLP on scikit-learn's "
        "digits when Fashion-MNIST is not installed), prunes it inside model.fit, "
        "packs it and prints the sizes and test accuracies of the plain and packed "
        "files, run in the stock TFLite interpreter."
    ),
    args=(),
    options=(
        Option(
            "epochs",
            "int",
            "training epochs (default: 4 on Fashion-MNIST, 30 on digits)",
            metavar="N",
            lower=1,
        ),
        Option(
            "sparsity",
            "fraction",
            "the fraction of weights pruned away, in [0, 1)",
            default=0.9,
            metavar="S",
        ),
    ),
    examples=("tfedge demo", "tfedge demo --epochs 2 --sparsity 0.8"),
    run=run_demo,
)


COMMANDS = {c.name: c for c in (COMPRESS, EXPAND, INSPECT, BUDGET, DEMO)}
