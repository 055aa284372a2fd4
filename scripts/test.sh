#!/usr/bin/env bash
# The test command: set-up if needed, then the whole pytest suite (unit tests + the end-to-end
# pipeline tests). `--fast` first leaves out the tests marked `slow` (TFX runs, the examples).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/layers -k din`.
# Tests run in TEST_WORKERS processes (default 2, one per core of the CI machine; 0: in this
# process), a test file's tests in the same one, so a module's pipeline run is made once.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
export TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2 PYTHONDONTWRITEBYTECODE=1
fast=()
if [ "${1:-}" = "--fast" ]; then fast=(-m "not slow"); shift; fi
workers=(-n "${TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder)
exec "$ROOT/.venv/bin/python" -m pytest -p no:cacheprovider -W ignore::DeprecationWarning "${workers[@]}" \
  ${fast[@]+"${fast[@]}"} "${@:-tests}"
