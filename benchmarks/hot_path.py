"""Hot path, before and after a change: HiSAC's encoder at long histories, two source trees, one run.

Profiling the in-graph HiSAC request (100 candidates, L = 10,000; per part, on a busy machine)
pointed at Soft-Routing Attention's distances (the ``[B, L, K, d]`` differences, 128 M floats) as
the largest part of the encoder; they are now one batched matmul. This benchmark times the
same workload in two source trees — ``--before`` (a git revision, checked out into a temporary
worktree) and this tree — in fresh processes that alternate ``--rounds`` times, so background
load falls on both alike; the before/after ratio comes from that one run.

Workload per L (one request's shape: 100 rows of an L-event history, a 16 x 8 codebook over 5,000
items, 4 x 2 agents, D = 32): ``compute_agents`` (lookup, voting, soft routing — what an offline
job runs per user) and the full in-graph encode (plus the candidate's attention), median of
``--calls`` calls inside a ``tf.function``.

    python -m benchmarks.hot_path --before 4c2292a                # L = 1,000 and 10,000
    python -m benchmarks.hot_path --before HEAD~1 --lengths 1000 --rounds 2

Writes ``benchmarks/results/hot_path.json`` and ``.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile

import numpy as np

from benchmarks import plotting

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# Runs inside either tree: only APIs both have (the encoder, its tables, the codebook fit).
WORKLOAD = """
import json, sys, time
import numpy as np
import tfrs_seqcompress
import tensorflow as tf
from tfrs_seqcompress.hisac.codebook import fit_residual_kmeans
from tfrs_seqcompress.layers import base, hisac

lengths, calls = json.loads(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
vectors = np.concatenate([np.zeros((1, 16)), rng.normal(size=(5000, 16))]).astype(np.float32)
encoder = hisac.HiSACEncoder(hisac.SemanticIds.from_codebook(fit_residual_kmeans(vectors[1:], (16, 8), seed=0),
                                                             vectors), fanouts=(4, 2))

def median_ms(function):
    function()
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return 1000 * float(np.median(seconds))

results = {}
for length in lengths:
    ids = tf.constant(rng.integers(1, 5001, size=(100, length)), tf.int64)
    inputs = {base.HISTORY_EMBEDDINGS: tf.constant(rng.normal(size=(100, length, 32)), tf.float32),
              base.HISTORY_MASK: tf.ones((100, length), tf.bool), base.HISTORY_ITEM_ID: ids,
              base.CANDIDATE_EMBEDDING: tf.constant(rng.normal(size=(100, 32)), tf.float32),
              base.CANDIDATE_ITEM_ID: ids[:, 0],
              base.HISTORY_TIME_GAP: tf.constant(rng.integers(0, 10**6, size=(100, length)), tf.int64)}
    agents = tf.function(lambda: encoder.compute_agents(inputs)["agent_vectors"])
    encode = tf.function(lambda: encoder(inputs))
    results[length] = {"agents_ms": median_ms(agents), "encode_ms": median_ms(encode)}
print("RESULT " + json.dumps(results))
"""


def measure(tree: pathlib.Path, lengths: list[int], calls: int) -> dict:
    """The workload's medians in a fresh process importing the library from ``tree``."""
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(tree)}
    result = subprocess.run([sys.executable, "-c", WORKLOAD, json.dumps(lengths), str(calls)], cwd=str(tree),
                            env=env, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"workload failed in {tree}:\n{result.stderr[-3000:]}")
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))
    return {int(length): values for length, values in json.loads(line[len("RESULT "):]).items()}


def revision(ref: str) -> str:
    return subprocess.run(["git", "rev-parse", "--short", ref], cwd=REPO_ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


def summarise(rounds: list[dict], lengths: list[int]) -> dict:
    summary = {}
    for length in lengths:
        row = {}
        for tree in ("before", "after"):
            for name in ("agents_ms", "encode_ms"):
                row[f"{tree}_{name}"] = float(np.median([r[name] for r in rounds if r["tree"] == tree
                                                         and r["history_length"] == length]))
        row["agents_speedup"] = row["before_agents_ms"] / row["after_agents_ms"]
        row["encode_speedup"] = row["before_encode_ms"] / row["after_encode_ms"]
        summary[str(length)] = row
    return summary


def plot(report: dict, path: pathlib.Path) -> None:
    figure, axes = plotting.subplots(1, 2, figsize=(10, 4))
    lengths = list(report["summary"])
    positions = np.arange(len(lengths))
    for axis, name, title in zip(axes, ("agents_ms", "encode_ms"), ("compute_agents", "in-graph encode")):
        for offset, tree in ((-0.2, "before"), (0.2, "after")):
            axis.bar(positions + offset, [report["summary"][length][f"{tree}_{name}"] for length in lengths], 0.4,
                     label=f"{tree} ({report[tree]})")
        axis.set_xticks(positions, [f"L={int(length):,}" for length in lengths])
        axis.set_ylabel("ms per request (100 rows), median")
        axis.set_title(f"HiSAC {title}")
        axis.legend()
    plotting.save(figure, path)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the git revision before the speed-up")
    parser.add_argument("--lengths", default="1000,10000")
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output-dir", default=str(RESULTS_DIR))
    args = parser.parse_args(argv)
    lengths = [int(length) for length in args.lengths.split(",")]
    report = {"before": revision(args.before), "after": f"{revision('HEAD')} (this tree)", "lengths": lengths,
              "calls": args.calls, "machine": f"{platform.machine()}, {os.cpu_count()} cores", "rounds": []}
    with tempfile.TemporaryDirectory(prefix="hot_path_before_") as before_tree:
        subprocess.run(["git", "worktree", "add", "--detach", "-f", before_tree, args.before], cwd=REPO_ROOT,
                       check=True, capture_output=True)
        try:
            for round_index in range(args.rounds):
                for tree, path in (("before", pathlib.Path(before_tree)), ("after", REPO_ROOT)):
                    for length, values in measure(path, lengths, args.calls).items():
                        report["rounds"].append({"round": round_index, "tree": tree, "history_length": length,
                                                 **values})
                        print(f"[hot_path] round {round_index} {tree:>6} L={length:>6}: compute_agents "
                              f"{values['agents_ms']:.1f} ms, encode {values['encode_ms']:.1f} ms", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", before_tree], cwd=REPO_ROOT, capture_output=True)
    report["summary"] = summarise(report["rounds"], lengths)
    output_dir = pathlib.Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path = output_dir / "hot_path.json"
    json_path.write_text(json.dumps(report, indent=2))
    plot(report, json_path.with_suffix(".png"))
    for length, row in report["summary"].items():
        print(f"[hot_path] L={int(length):,}: compute_agents {row['before_agents_ms']:.1f} -> "
              f"{row['after_agents_ms']:.1f} ms ({row['agents_speedup']:.2f}x), encode {row['before_encode_ms']:.1f} "
              f"-> {row['after_encode_ms']:.1f} ms ({row['encode_speedup']:.2f}x)")
    print(f"[hot_path] wrote {json_path} and {json_path.with_suffix('.png')}")
    return report


if __name__ == "__main__":
    main()
