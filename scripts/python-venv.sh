#!/usr/bin/env bash
# Create (or reuse) the git-ignored Python venv at <repo>/.venv with pyarrow, datasets and pillow,
# pinned in scripts/requirements.txt. Used by `npm run fixtures` and by the conformance checker
# (scripts/check_lf_folder.py) that the vitest suite calls.
#
# Idempotent and quick when already set up: a stamp file (.venv/.prefpipe-requirements.sha256)
# records the sha256 of requirements.txt + the interpreter version; pip runs only when it differs.
#
# Env:
#   PYTHON=python3.11   interpreter used to create the venv (default: python3)
#   PREFPIPE_VENV=path  venv location (default: <repo>/.venv)
#   FORCE=1             reinstall even if the stamp matches
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PREFPIPE_VENV:-$ROOT/.venv}"
REQ="$ROOT/scripts/requirements.txt"
PY="${PYTHON:-python3}"
STAMP="$VENV/.prefpipe-requirements.sha256"

if ! "$VENV/bin/python" -c '' 2>/dev/null; then
  # missing, or its interpreter is gone (e.g. a pyenv version was removed): (re)create it
  echo "python-venv: creating $VENV with $("$PY" --version 2>&1)" >&2
  "$PY" -m venv --clear "$VENV"
fi

want="$( { sha256sum "$REQ" | cut -d' ' -f1; "$VENV/bin/python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"

if [ "${FORCE:-0}" != "1" ] && [ "$want" = "$have" ]; then
  exit 0
fi

echo "python-venv: installing pinned requirements into $VENV" >&2
# --retries 0: this machine kind reaches only the local wheel mirror (pip config: find-links +
# extra-index-url); without it pip backs off ~5 minutes on the unreachable default index.
"$VENV/bin/python" -m pip install -q --retries 0 --disable-pip-version-check -r "$REQ" \
  2> >(grep -v -e 'Retrying' -e 'Could not fetch URL' -e 'NewConnectionError' -e 'is ignored: it is neither a file nor a directory' >&2 || true)
# Fail loudly if an import is broken (a half-finished install must not get a stamp).
"$VENV/bin/python" -c 'import pyarrow, datasets, PIL; print("python-venv: pyarrow", pyarrow.__version__, "datasets", datasets.__version__, "pillow", PIL.__version__)' >&2
echo "$want" > "$STAMP"
