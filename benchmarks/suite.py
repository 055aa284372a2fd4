"""The whole benchmark suite in one command: every quality and cost benchmark, then the results table.

    bash scripts/benchmark.sh suite                          # every step (about a day on 2 cores)
    bash scripts/benchmark.sh suite --only serving,pipeline  # some steps
    bash scripts/benchmark.sh suite --list                   # the steps and their commands
    bash scripts/benchmark.sh suite --report-only            # only regenerate the table

Each step is one ``python -m benchmarks.<name> ...`` in its own process (fresh memory; a failed
step is reported and the others still run) writing its JSON + PNG under ``benchmarks/results/``.
Then ``benchmarks.report`` writes ``benchmarks/results/summary.md`` and the results sections of
``docs/benchmarks.md`` from those files. Run it on an otherwise idle machine: the cost figures are wall times.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

from benchmarks import report

_LONG = ["--dataset", "synthetic", "--mean-history", "3000", "--targets-per-user", "60", "--batch-size", "128"]
_EVERY_OTHER_ENCODER = "mean,din_last_n,din_full,sim_hard,global_clusters,hisac"

# Step name -> the benchmark module and its arguments.
STEPS = {
    "quality_ml-100k": ["quality"],
    "quality_synthetic": ["quality", "--dataset", "synthetic", "--history-length", "200"],
    "quality_synthetic_L1000": ["quality", *_LONG, "--history-length", "1000", "--tag", "L1000"],
    "quality_synthetic_L10000": ["quality", *_LONG, "--history-length", "10000", "--tag", "L10000",
                                 "--encoders", _EVERY_OTHER_ENCODER],
    "long_history": ["long_history", "--blocks", "synthetic_base_L1000,synthetic_base_L10000,synthetic_base_L1000_small,"
                     "synthetic_fine_L1000,ml-1m_L1000,synthetic_distant_L1000,ml-1m_L200,synthetic_fine_L10000,"
                     "synthetic_distant_L10000"],
    "latency": ["latency"],
    "serving": ["serving"],
    "codebook": ["codebook"],
    "pipeline": ["pipeline"],
    "pipeline_long": ["pipeline", "--configurations", "ml-1m_hisac_L1000,ml-1m_iat_L1000", "--skip-rerun"],
    # Soft routing's distances, before (f58379b: the [B, L, K, d] differences) and after.
    "hot_path": ["hot_path", "--before", "f58379b"],
    # One long-history run's peak memory by phase, each encoder in a fresh process; then HiSAC and SIM-hard on
    # TensorFlow's plain allocator. The second command appends its rows to the first one's file.
    "memory_profile": ["memory_profile"],
    "memory_profile_onednn_off": ["memory_profile", "--encoders", "hisac,sim_hard", "--onednn", "off"],
}
# What the suite does not run, and why, lives with the tables that show it (``report.NOT_RUN``).
NOT_RUN = report.NOT_RUN


def run_step(name: str) -> bool:
    command = [sys.executable, "-m", f"benchmarks.{STEPS[name][0]}", *STEPS[name][1:]]
    print(f"[suite] {name}: {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    ok = subprocess.run(command).returncode == 0
    print(f"[suite] {name}: {'done' if ok else 'FAILED'} in {time.perf_counter() - started:.0f} s", flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated steps (default: all of {list(STEPS)})")
    parser.add_argument("--list", action="store_true", help="print the steps and exit")
    parser.add_argument("--report-only", action="store_true", help="only regenerate the table from the results")
    args = parser.parse_args(argv)
    if args.list:
        for name, (module, *arguments) in STEPS.items():
            print(f"{name}: python -m benchmarks.{module} {' '.join(arguments)}")
        return 0
    steps = [] if args.report_only else (args.only.split(",") if args.only else list(STEPS))
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        parser.error(f"unknown step(s) {unknown}; expected some of {list(STEPS)}")
    failed = [name for name in steps if not run_step(name)]
    report.main(not_run=NOT_RUN)
    if failed:
        print(f"[suite] failed steps: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
