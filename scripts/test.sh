#!/usr/bin/env bash
# The test command: set-up if needed, then the whole pytest suite (unit tests + the end-to-end
# pipeline tests). `--fast` first leaves out the tests marked `slow` (TFX runs, the examples).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/layers -k din`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
export TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2 PYTHONDONTWRITEBYTECODE=1
fast=()
if [ "${1:-}" = "--fast" ]; then fast=(-m "not slow"); shift; fi
exec "$ROOT/.venv/bin/python" -m pytest -p no:cacheprovider -W ignore::DeprecationWarning ${fast[@]+"${fast[@]}"} "${@:-tests}"
