# Sourced by scripts/demo and scripts/test: make .venv and install tfedge into it.
# Idempotent: it reinstalls only when the packaging files or the native sources change.
# Usage: source scripts/_env.sh [EXTRAS]   (EXTRAS like "test"; empty for the plain install)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
EXTRAS="${1:-}"

if [ ! -x "$PY" ]; then
    echo "tfedge: creating $VENV" >&2
    if command -v python3.11 >/dev/null 2>&1; then
        python3.11 -m venv "$VENV"
    else
        python3 -m venv "$VENV"
    fi
fi

want="$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" "$ROOT"/setup.py \
    "$ROOT"/tfedge/runtime/cc/* 2>/dev/null | sha1sum | cut -c1-16)-${EXTRAS}"
stamp="$VENV/.tfedge-install-stamp"
have="$(cat "$stamp" 2>/dev/null || true)"
# A test install also covers the plain one.
if [ "$have" != "$want" ] && ! { [ -z "$EXTRAS" ] && [ "${have%-*}" = "${want%-*}" ]; }; then
    echo "tfedge: installing into $VENV (extras: ${EXTRAS:-none})" >&2
    "$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip setuptools wheel
    # Keep a user's own TensorFlow; install the CPU wheel only when none is present.
    if ! "$PY" -c "import tensorflow" >/dev/null 2>&1; then
        "$PY" -m pip install --quiet --disable-pip-version-check "tensorflow-cpu==2.21.*"
    fi
    spec="$ROOT"
    [ -n "$EXTRAS" ] && spec="$ROOT[$EXTRAS]"
    "$PY" -m pip install --quiet --disable-pip-version-check -e "$spec"
    echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export TF_ENABLE_ONEDNN_OPTS="${TF_ENABLE_ONEDNN_OPTS:-0}"
