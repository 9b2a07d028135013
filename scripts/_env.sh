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
    echo "tfedge: installing into $VENV (extras: ${EXTRAS:-none}; pip's log: $VENV/install.log)" >&2
    log="$VENV/install.log"
    : > "$log"
    # pip and setuptools talk a lot (registry mirrors, the editable-install notice); their
    # output goes to the log, which is shown only when a step fails.
    _pip() {
        "$PY" -m pip install --quiet --disable-pip-version-check "$@" >>"$log" 2>&1 || {
            tail -n 40 "$log" >&2
            echo "tfedge: pip install $* failed; the whole log is $log" >&2
            return 1
        }
    }
    _pip --upgrade pip setuptools wheel
    # Keep a user's own TensorFlow; install the CPU wheel only when none is present.
    if ! "$PY" -c "import tensorflow" >/dev/null 2>&1; then
        _pip "tensorflow-cpu==2.21.*"
    fi
    spec="$ROOT"
    [ -n "$EXTRAS" ] && spec="$ROOT[$EXTRAS]"
    _pip -e "$spec"
    echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export TF_ENABLE_ONEDNN_OPTS="${TF_ENABLE_ONEDNN_OPTS:-0}"
