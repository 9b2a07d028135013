#!/usr/bin/env bash
# Make the environment that Google's ai-edge-quantizer runs in for scripts/bench_corpus.py
# and print its python. The quantizer pins its own ai-edge-litert, numpy and scipy, so it
# never goes into tfedge's .venv: it gets .venv-aieq beside it (git-ignored), made once.
# Usage: scripts/_aieq_env.sh   (prints the path of .venv-aieq/bin/python)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TFEDGE_AIEQ_VENV:-$ROOT/.venv-aieq}"
# The version the README's table was measured with.
SPEC="ai-edge-quantizer==0.10.0"
stamp="$VENV/.tfedge-aieq-stamp"

if [ "$(cat "$stamp" 2>/dev/null || true)" != "$SPEC" ]; then
    echo "tfedge: installing $SPEC into $VENV" >&2
    if [ ! -x "$VENV/bin/python" ]; then
        if command -v python3.11 >/dev/null 2>&1; then
            python3.11 -m venv "$VENV"
        else
            python3 -m venv "$VENV"
        fi
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$SPEC" >&2
    echo "$SPEC" > "$stamp"
fi
echo "$VENV/bin/python"
