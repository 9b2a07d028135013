"""Quantizes one .tflite with Google's ai-edge-quantizer (weight-only recipes).

Runs inside the quantizer's own environment (scripts/_aieq_env.sh makes it), never in
tfedge's: the quantizer pins its own ai-edge-litert and numpy. scripts/bench_corpus.py
calls it once per model and recipe in a subprocess:

    .venv-aieq/bin/python scripts/_aieq_quantize.py --model IN --out OUT --recipe int8

Recipes: "int8" is `recipe.weight_only_wi8_afp32()` and "int4" is
`recipe.weight_only_wi4_afp32()` (symmetric, per-channel, min-max; each weight tensor
dequantized explicitly by a DEQUANTIZE op, float compute). The input must carry the
newer opcode field (`builtin_code`): the quantizer does not read the deprecated one.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "The float .tflite to quantize.")
flags.DEFINE_string("out", None, "Where to write the quantized .tflite.")
flags.DEFINE_enum("recipe", "int8", ["int8", "int4"], "Weight-only recipe.")
flags.mark_flags_as_required(["model", "out"])

_RECIPES = {"int8": "weight_only_wi8_afp32", "int4": "weight_only_wi4_afp32"}


def main(argv):
    del argv
    from importlib.metadata import version

    from ai_edge_quantizer import quantizer, recipe

    with open(FLAGS.model, "rb") as f:
        data = f.read()
    recipe_fn = getattr(recipe, _RECIPES[FLAGS.recipe])
    qt = quantizer.Quantizer(bytearray(data), recipe_fn())
    result = qt.quantize(enable_progress_report=False, enable_progress_bar=False)
    out = bytes(result.quantized_model)
    with open(FLAGS.out, "wb") as f:
        f.write(out)
    print(
        json.dumps(
            {
                "recipe": _RECIPES[FLAGS.recipe],
                "version": version("ai-edge-quantizer"),
                "input_bytes": len(data),
                "output_bytes": len(out),
            }
        )
    )


if __name__ == "__main__":
    app.run(main)
