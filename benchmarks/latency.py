"""Serving latency vs history length: DIN-full and HiSAC in-graph vs HiSAC with precomputed agents.

One request = one user's history and 100 candidates. For each history length L (100 -> 10,000)
and encoder, the ranking model (untrained: cost does not depend on the weights) scores the request
from tensors inside a ``tf.function`` — the model's compute, without protobuf parsing:

* ``din_full`` / ``hisac`` in-graph: every candidate row carries the full history ``[100, L]``;
* ``hisac_precomputed``: ``score_with_agents`` over the user's K agents, computed once offline
  (``compute_agents``, also timed, per user) — online cost O(K) per candidate.

    python -m benchmarks.latency                                   # L = 100, 1,000, 10,000
    python -m benchmarks.latency --lengths 100,1000 --calls 20

Writes ``benchmarks/results/latency.json`` and ``.png`` (median and p99 over ``--calls`` calls).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import time

import numpy as np

import tfrs_seqcompress  # noqa: F401  (sets Keras 2 before TensorFlow loads)
import tensorflow as tf

from benchmarks import plotting
from tfrs_seqcompress import features as F
from tfrs_seqcompress import models
from tfrs_seqcompress.data import synthetic
from tfrs_seqcompress.hisac import semantic
from tfrs_seqcompress.hisac.codebook import fit_residual_kmeans

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
CANDIDATES = 100


def request_for(world: synthetic.SyntheticWorld, length: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A full-length random history (the cost does not depend on which items) and 100 candidates."""
    rng = np.random.default_rng(seed)
    schema = world.dataset.schema.with_history_length(length)
    items = rng.integers(1, schema.num_items, size=length)
    history = {F.history_name(F.ITEM_ID): items, F.history_name(F.CATEGORY): world.dataset.items[F.CATEGORY][items],
               F.history_name(F.TIMESTAMP): np.sort(rng.integers(0, 10**7, size=length)),
               F.history_name(F.LABEL): rng.integers(0, 2, size=length), F.HISTORY_MASK: np.ones(length, np.int64)}
    for name, size in schema.event_features.items():
        history[F.history_name(name)] = rng.integers(0, size, size=length)
    request = {name: np.repeat(values[None], CANDIDATES, axis=0) for name, values in history.items()}
    candidates = rng.integers(1, schema.num_items, size=CANDIDATES)
    request.update({F.USER_ID: np.ones(CANDIDATES, np.int64), F.ITEM_ID: candidates,
                    F.CATEGORY: world.dataset.items[F.CATEGORY][candidates],
                    F.TIMESTAMP: np.full(CANDIDATES, 10**7 + 1)})
    for name in schema.context_features:
        request[name] = rng.integers(0, schema.event_features[name], size=CANDIDATES)
    return {name: np.asarray(values, np.int64) for name, values in request.items()}


def timed(function, *args, calls: int) -> tuple[float, float]:
    """Median and p99 milliseconds of ``function(*args)`` over ``calls`` calls, after 3 warm-up calls."""
    for _ in range(3):
        function(*args)
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        np.asarray(function(*args))
        seconds.append(time.perf_counter() - started)
    return 1e3 * float(np.median(seconds)), 1e3 * float(np.quantile(seconds, 0.99))


def measure(world, codebook, vectors, length: int, calls: int) -> dict:
    schema = world.dataset.schema.with_history_length(length)
    request = {name: tf.constant(values) for name, values in request_for(world, length).items()}
    din = models.build_ranking_model(schema, "din_full")
    hisac = models.build_ranking_model(schema, "hisac", codebook=codebook, item_vectors=vectors, fanouts=(4, 2))
    one_user = {name: values[:1] for name, values in request.items()}
    compute_agents = tf.function(lambda features: hisac.compute_agents(features))
    agents = compute_agents(one_user)
    targets = {name: request[name] for name in F.TARGET_FIELDS + schema.context_features}
    targets[F.AGENT_VECTORS] = tf.repeat(agents[F.AGENT_VECTORS], CANDIDATES, axis=0)
    targets[F.AGENT_MASK] = tf.repeat(agents[F.AGENT_MASK], CANDIDATES, axis=0)
    targets[F.AGENT_WEIGHTS] = tf.repeat(agents[F.AGENT_WEIGHTS], CANDIDATES, axis=0)
    rows = {"din_full": timed(tf.function(din.call), request, calls=calls),
            "hisac": timed(tf.function(hisac.call), request, calls=calls),
            "hisac_precomputed": timed(tf.function(hisac.score_with_agents), targets, calls=calls),
            "hisac_compute_agents_per_user": timed(lambda f: compute_agents(f)[F.AGENT_MASK], one_user, calls=calls)}
    return {name: {"p50_ms": p50, "p99_ms": p99} for name, (p50, p99) in rows.items()}


def plot(report: dict, path: pathlib.Path) -> None:
    figure, axis = plotting.subplots(figsize=(6, 4))
    lengths = [row["history_length"] for row in report["rows"]]
    for name in report["rows"][0]["latency"]:
        axis.loglog(lengths, [row["latency"][name]["p50_ms"] for row in report["rows"]], "o-", label=name)
    axis.set(xlabel="history length L", ylabel="median ms per request (100 candidates)",
             title="serving compute vs history length")
    axis.legend(fontsize=8)
    plotting.save(figure, path)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="100,1000,10000")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--output-dir", default=str(RESULTS_DIR))
    args = parser.parse_args(argv)
    world = synthetic.generate(synthetic.SyntheticConfig(num_users=20, mean_history=50, seed=0))
    vectors = semantic.content_vectors(world.dataset)
    known = semantic.known_rows(vectors)
    codebook = fit_residual_kmeans(vectors[known], (16, 8), keys=known)
    report = {"candidates": CANDIDATES, "calls": args.calls, "agents": 8,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "rows": []}
    for length in (int(value) for value in args.lengths.split(",")):
        latency = measure(world, codebook, vectors, length, args.calls)
        report["rows"].append({"history_length": length, "latency": latency})
        print(f"[latency] L={length:>6,}: " + ", ".join(f"{name} {value['p50_ms']:.1f} ms"
                                                         for name, value in latency.items()), flush=True)
    output_dir = pathlib.Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "latency.json").write_text(json.dumps(report, indent=2))
    plot(report, output_dir / "latency.png")
    names = list(report["rows"][0]["latency"])
    print("| L | " + " | ".join(f"{name} ms p50 / p99" for name in names) + " |")
    print("|---|" + "---|" * len(names))
    for row in report["rows"]:
        print(f"| {row['history_length']:,} | " + " | ".join(
            f"{row['latency'][n]['p50_ms']:.1f} / {row['latency'][n]['p99_ms']:.1f}" for n in names) + " |")
    return report


if __name__ == "__main__":
    main()
