"""Where a long-history run's peak memory goes: one encoder's run of the long-history benchmark, phase by phase.

``benchmarks.long_history`` reports one peak RSS per run: the process's high-water mark over
training, evaluation and the serving measurement, on top of whatever the process already held.
This benchmark takes such a run apart. Each encoder runs in a fresh process (nothing is left from
an earlier run), on one of the long-history blocks, and the process's RSS is read after each
phase, with the peak (``VmHWM``) reset at each phase's start:

- ``runtime``: Python, TensorFlow and this library imported;
- ``data``: the block loaded (its whole event log, history index, splits and analysis);
- ``fit``: training steps at the block's batch size and L, in rounds of ``--steps`` steps (the peak
  of each round, to see whether it levels off);
- ``predict``: scoring ``--steps`` batches (the evaluation's forward pass);
- ``serving``: the benchmark's serving measurement (a 100-candidate request through
  ``serving_default``, and the agents path where the model has one).

A phase's peak includes what the process still holds from the phases before it; ``held after``
says how much that is. TensorFlow's oneDNN build keeps freed tensor memory in a pool for reuse
(``TF_ENABLE_ONEDNN_OPTS=1``, TensorFlow's default on x86 Linux), so the pool of the largest
phase so far stays resident: ``--onednn off`` runs the same workload on TensorFlow's plain
allocator for comparison.

    python -m benchmarks.memory_profile                                   # synthetic_fine_L10000
    python -m benchmarks.memory_profile --encoders hisac,sim_hard --onednn off

Writes ``benchmarks/results/memory_profile.json`` (after every encoder) and ``.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULT_FILE = "memory_profile.json"
PHASES = ("runtime", "data", "fit", "predict", "serving")


def profile(block_name: str, encoder: str, steps: int, rounds: int) -> dict:
    """One encoder's phases in this (fresh) process: ``{phase: {"peak_mb", "held_after_mb"}, ...}``."""
    from benchmarks import long_history, memory  # imported here: the runtime phase measures the imports
    from benchmarks.quality import serving_latency_ms
    from tfrs_seqcompress import models
    from tfrs_seqcompress.data import tf_data

    result = {"runtime": {"peak_mb": memory.peak_rss_mb(), "held_after_mb": memory.rss_mb()}}

    def phase(name: str, work):
        memory.reset_peak()
        started = time.perf_counter()
        value = work()
        result[name] = {"peak_mb": memory.peak_rss_mb(), "held_after_mb": memory.rss_mb(),
                        "seconds": time.perf_counter() - started}
        print(f"[memory_profile] {encoder}: {name} peak {result[name]['peak_mb']:,.0f} MB, held after "
              f"{result[name]['held_after_mb']:,.0f} MB ({result[name]['seconds']:.0f} s)", file=sys.stderr, flush=True)
        return value

    block = long_history.BLOCKS[block_name]
    data = phase("data", lambda: long_history.load_block(block))
    row = long_history.ROWS[encoder]
    setting = long_history.settings_of(row, block, encoder, levels=data.codebook_levels)[0]
    fitted = long_history.fit_codebook(data, data.codebook_levels, 0)
    schema, build = long_history.example_builder(data, row, setting, fitted, 0, {})
    model = long_history.build_model(data, row, setting, fitted, schema, semantic_codebook=fitted)
    rows = data.splits["train"][:steps * block.batch_size]

    def batches(shuffle_seed=None):
        return tf_data.dataset_from_history_index(data.index, rows, block.batch_size, shuffle_seed=shuffle_seed,
                                                  build=build)

    result["fit_rounds_mb"] = []
    for round_ in range(rounds):
        phase("fit", lambda: model.fit(batches(round_), epochs=1, verbose=0))
        result["fit_rounds_mb"].append(result["fit"]["peak_mb"])
    result["fit"]["peak_mb"] = max(result["fit_rounds_mb"])
    phase("predict", lambda: models.predict_probabilities(model, batches()))
    phase("serving", lambda: serving_latency_ms(model, schema, build(data.splits["test"][:100])))
    result["setting"] = setting
    return result


def run_child(block: str, encoder: str, onednn: str, steps: int, rounds: int) -> dict:
    """``profile`` in a fresh process with oneDNN ``on`` or ``off``."""
    environment = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1" if onednn == "on" else "0",
                   "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    completed = subprocess.run([sys.executable, "-m", "benchmarks.memory_profile", "--child", "--blocks", block,
                                "--encoders", encoder, "--steps", str(steps), "--rounds", str(rounds)],
                               env=environment, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def plot(report: dict, path: pathlib.Path) -> None:
    from benchmarks import plotting

    runs = [(key, run) for key, run in report["runs"].items()]
    figure, axis = plotting.subplots(figsize=(1.6 * len(runs) + 2, 4.2))
    for offset, name in enumerate(PHASES):
        axis.bar([i + (offset - 2) * 0.15 for i in range(len(runs))], [run[name]["peak_mb"] / 1024 for _, run in runs],
                 width=0.15, label=name)
    axis.axhline(3.0, color="grey", linestyle="--", linewidth=1)
    axis.set_xticks(range(len(runs)), [key.replace(" ", "\n", 1) for key, _ in runs], fontsize=8)
    axis.set_ylabel("peak RSS of the phase (GB)")
    axis.set_title(f"{report['block']}: peak RSS by phase (fresh process per encoder)", fontsize=9)
    axis.legend(fontsize=8)
    plotting.save(figure, path)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", default="synthetic_fine_L10000", help="one long-history block")
    parser.add_argument("--encoders", default="hisac,sim_hard,din_full,din_last_n")
    parser.add_argument("--onednn", choices=("on", "off"), default="on")
    parser.add_argument("--steps", type=int, default=8, help="training steps per fit round (and predict batches)")
    parser.add_argument("--rounds", type=int, default=3, help="fit rounds")
    parser.add_argument("--output-dir", default=str(RESULTS_DIR))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(profile(args.blocks, args.encoders, args.steps, args.rounds)))
        return {}
    path = pathlib.Path(args.output_dir) / RESULT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    report = json.loads(path.read_text()) if path.exists() else {}
    if report.get("block") != args.blocks:
        report = {"block": args.blocks, "runs": {}}
    report.update(steps=args.steps, rounds=args.rounds)
    for encoder in args.encoders.split(","):
        report["runs"][f"{encoder} oneDNN {args.onednn}"] = run_child(args.blocks, encoder, args.onednn, args.steps,
                                                                      args.rounds)
        path.write_text(json.dumps(report, indent=1))
    plot(report, path.with_suffix(".png"))
    print(f"[memory_profile] wrote {path} and {path.with_suffix('.png')}")
    return report


if __name__ == "__main__":
    main()
