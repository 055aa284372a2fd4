#!/usr/bin/env bash
# Benchmarks: set-up if needed, then `python -m benchmarks.<name>` (default: quality; `suite`: all of them, then
# the results tables of docs/benchmarks.md). Results land in
# benchmarks/results/ as JSON + PNG. Example: bash scripts/benchmark.sh quality --dataset synthetic
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
export TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2
name="${1:-quality}"; shift || true
exec "$ROOT/.venv/bin/python" -m "benchmarks.$name" "$@"
