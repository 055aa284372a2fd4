#!/usr/bin/env bash
# The main job: set-up if needed, then the TFX pipeline end to end (default data: MovieLens-100K),
# pushing a model to saved_models/<model_name>/<version>/. Flags go to pipelines.local_runner (--help).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
export TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-1}"
exec "$ROOT/.venv/bin/python" -m pipelines.local_runner "$@"
