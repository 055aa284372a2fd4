"""Serving benchmark: latency (p50 / p99) and throughput of the exported SavedModels.

One request = one user and 100 candidates as production sends it: 100 serialized ``tf.Example``s
(``serving_client.candidate_examples``; for the precomputed-agents paths ``*_agents`` of global
clusters, HiSAC and HiSAC over IAT tokens, ``agent_examples`` with the user's agents instead of
the history). Each model (untrained: the cost does not depend on the
weights) is exported with ``serving.export_serving_model`` into ``<tmp>/<model>/1/`` and called

* through the SavedModel directly (``signatures[...]`` in this process: parsing + compute), and
* through TF Serving's gRPC API on loopback (``serving_harness``: the same ``PredictRequest`` a
  ``tensorflow_model_server`` receives — adds protobuf encoding and the gRPC round trip),

for history lengths L = 100 -> 10,000. Throughput: ``--concurrency`` client threads sending
requests for ``--seconds`` over gRPC. IAT runs up to L = 1,000 (its self-attention is O(L^2));
token-reading models get random tokens of dim 16 (cost does not depend on their values).

    python -m benchmarks.serving                       # L = 100, 1,000, 10,000
    python -m benchmarks.serving --lengths 100,1000 --calls 10 --seconds 3

Writes ``benchmarks/results/serving.json`` and ``.png``.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import pathlib
import platform
import tempfile
import time

import numpy as np

import tfrs_seqcompress  # noqa: F401  (sets Keras 2 before TensorFlow loads)
import grpc
import tensorflow as tf
from tensorflow_serving.apis import prediction_service_pb2_grpc

from benchmarks import plotting
from benchmarks.latency import CANDIDATES, RESULTS_DIR, request_for, timed
from tfrs_seqcompress import features as F
from tfrs_seqcompress import layers, models, serving, serving_client
from tfrs_seqcompress.data import synthetic
from tfrs_seqcompress.hisac import semantic
from tfrs_seqcompress.hisac.codebook import fit_residual_kmeans
from tfrs_seqcompress.testing import serving_harness

# Every encoder; ``*_agents``: the precomputed-agents path (``score_with_agents``) of that encoder.
MODELS = ("mean", "din_last_n", "din_full", "sim_hard", "global_clusters", "global_clusters_agents", "hisac",
          "hisac_agents", "hisac_iat", "hisac_iat_agents", "iat")
IAT_MAX_LENGTH = 1_000
TOKEN_DIM = 16


@dataclasses.dataclass
class Servable:
    """One exported model and one request to it."""
    name: str
    base_path: str
    signature: str
    serialized: list[bytes]


def _user_and_candidates(world, schema: F.DataSchema, length: int) -> tuple[dict, dict]:
    columns = request_for(world, length)
    user = {name: values[0] for name, values in columns.items() if name.startswith("hist_") or name == F.HISTORY_MASK}
    user[F.USER_ID] = columns[F.USER_ID][0]
    candidates = {name: columns[name] for name in serving_client.CANDIDATE_FIELDS + schema.context_features}
    if schema.token_dim:
        user[F.history_name("token")] = np.random.default_rng(0).random((length, schema.token_dim), np.float32)
        user["token_version"] = np.int64(F.token_version_id(schema.token_version))
    return user, candidates


def export(name: str, world, semantic_tables: dict, length: int, directory: str) -> Servable:
    """Builds and exports the model ``name`` at history length ``length``; returns it with a request.

    ``semantic_tables``: encoder name -> its codebook arguments (semantic encoders only)."""
    schema = world.dataset.schema.with_history_length(length)
    encoder = name.removesuffix("_agents")
    if encoder in layers.TOKEN_ENCODERS:
        schema = dataclasses.replace(schema, token_dim=TOKEN_DIM, token_version="benchmark")
    model = models.build_ranking_model(schema, encoder, **semantic_tables.get(encoder, {}))
    user, candidates = _user_and_candidates(world, schema, length)
    serialized = serving_client.candidate_examples(user, candidates, schema)
    base_path = os.path.join(directory, name)
    serving.export_serving_model(model, os.path.join(base_path, "1"), schema)
    if not name.endswith("_agents"):
        return Servable(name, base_path, serving.SIGNATURE_NAME, serialized)
    one_user = serving_client.candidate_examples(user, {key: values[:1] for key, values in candidates.items()}, schema)
    agents = tf.saved_model.load(os.path.join(base_path, "1")).signatures["compute_agents"](
        examples=tf.constant(one_user))
    agents = {key: value.numpy()[0] for key, value in agents.items()}
    return Servable(name, base_path, "score_with_agents",
                    serving_client.agent_examples(agents, int(user[F.USER_ID]), candidates, schema))


def _throughput(stub, request, concurrency: int, seconds: float) -> float:
    """Requests per second with ``concurrency`` clients sending back to back for ``seconds``."""
    deadline = time.perf_counter() + seconds

    def client() -> int:
        sent = 0
        while time.perf_counter() < deadline:
            stub.Predict(request, timeout=600)
            sent += 1
        return sent

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        total = sum(pool.map(lambda _: client(), range(concurrency)))
    return total / (time.perf_counter() - started)


def measure(servable: Servable, calls: int, concurrency: int, seconds: float) -> dict:
    loaded = tf.saved_model.load(os.path.join(servable.base_path, "1")).signatures[servable.signature]
    examples = tf.constant(servable.serialized)
    direct = timed(lambda: loaded(examples=examples)[serving.SCORE_KEY], calls=calls)
    server, port = serving_harness.start_server(servable.name, servable.base_path, workers=concurrency + 2)
    try:
        options = [("grpc.max_send_message_length", serving_harness.MAX_MESSAGE_BYTES),
                   ("grpc.max_receive_message_length", serving_harness.MAX_MESSAGE_BYTES)]
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = serving_client.grpc_request(servable.serialized, servable.name, servable.signature)
            scores = serving_client.response_scores(stub.Predict(request, timeout=600))
            assert scores.shape == (CANDIDATES,), scores.shape
            over_grpc = timed(lambda: serving_client.response_scores(stub.Predict(request, timeout=600)), calls=calls)
            rate = _throughput(stub, request, concurrency, seconds)
    finally:
        server.stop(None)
    return {"request_bytes": sum(map(len, servable.serialized)),
            "savedmodel": {"p50_ms": direct[0], "p99_ms": direct[1]},
            "grpc": {"p50_ms": over_grpc[0], "p99_ms": over_grpc[1], "requests_per_s": rate,
                     "candidates_per_s": rate * CANDIDATES, "concurrency": concurrency}}


def plot(report: dict, path: pathlib.Path) -> None:
    figure, (latency, throughput) = plotting.subplots(1, 2, figsize=(11, 4))
    for index, name in enumerate(report["models"]):
        rows = [row for row in report["rows"] if row["model"] == name]
        lengths = [row["history_length"] for row in rows]
        color = f"C{index}"
        latency.loglog(lengths, [row["grpc"]["p50_ms"] for row in rows], "o-", color=color, label=f"{name} gRPC p50")
        latency.loglog(lengths, [row["grpc"]["p99_ms"] for row in rows], ":", color=color)
        latency.loglog(lengths, [row["savedmodel"]["p50_ms"] for row in rows], "x--", color=color)
        throughput.loglog(lengths, [row["grpc"]["candidates_per_s"] for row in rows], "o-", color=color, label=name)
    latency.set(xlabel="history length L", ylabel="ms per request (100 candidates)",
                title="latency: gRPC p50 (solid), p99 (dotted), SavedModel p50 (dashed)")
    throughput.set(xlabel="history length L", ylabel="candidates scored per second",
                   title=f"gRPC throughput, {report['concurrency']} concurrent clients")
    latency.legend(fontsize=7)
    throughput.legend(fontsize=7)
    plotting.save(figure, path)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="100,1000,10000")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--calls", type=int, default=20, help="timed calls per latency figure")
    parser.add_argument("--concurrency", type=int, default=4, help="gRPC client threads for throughput")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each throughput run")
    parser.add_argument("--output-dir", default=str(RESULTS_DIR))
    args = parser.parse_args(argv)
    names = [name for name in args.models.split(",") if name]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; expected some of {list(MODELS)}")
    world = synthetic.generate(synthetic.SyntheticConfig(num_users=20, mean_history=50, seed=0))
    vectors = semantic.content_vectors(world.dataset)
    known = semantic.known_rows(vectors)
    hisac = {"codebook": fit_residual_kmeans(vectors[known], (16, 8), keys=known), "item_vectors": vectors,
             "fanouts": (4, 2)}
    clusters = {"codebook": fit_residual_kmeans(vectors[known], (8,), keys=known), "item_vectors": vectors}
    tables = {"hisac": hisac, "hisac_iat": hisac, "global_clusters": clusters}  # 8 agents each
    report = {"candidates": CANDIDATES, "calls": args.calls, "concurrency": args.concurrency,
              "throughput_seconds": args.seconds, "models": names, "agents": 8,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "rows": [], "not_run": []}
    with tempfile.TemporaryDirectory(prefix="serving_benchmark_") as directory:
        for length in (int(value) for value in args.lengths.split(",")):
            for name in names:
                if name == "iat" and length > IAT_MAX_LENGTH:
                    report["not_run"].append({"model": name, "history_length": length,
                                              "why": "self-attention over L = 10,000 is O(L^2) per candidate"})
                    continue
                servable = export(name, world, tables, length, os.path.join(directory, str(length)))
                row = {"model": name, "history_length": length,
                       **measure(servable, args.calls, args.concurrency, args.seconds)}
                report["rows"].append(row)
                print(f"[serving] L={length:>6,} {name:>12}: gRPC p50 {row['grpc']['p50_ms']:.1f} ms "
                      f"p99 {row['grpc']['p99_ms']:.1f} ms, {row['grpc']['requests_per_s']:.1f} req/s; "
                      f"SavedModel p50 {row['savedmodel']['p50_ms']:.1f} ms; request "
                      f"{row['request_bytes'] / 1e6:.2f} MB", flush=True)
                tf.keras.backend.clear_session()
    output_dir = pathlib.Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "serving.json").write_text(json.dumps(report, indent=2))
    plot(report, output_dir / "serving.png")
    print("| model | L | request MB | gRPC p50 / p99 ms | SavedModel p50 / p99 ms | gRPC req/s |")
    print("|---|---|---|---|---|---|")
    for row in report["rows"]:
        print(f"| {row['model']} | {row['history_length']:,} | {row['request_bytes'] / 1e6:.2f} | "
              f"{row['grpc']['p50_ms']:.1f} / {row['grpc']['p99_ms']:.1f} | "
              f"{row['savedmodel']['p50_ms']:.1f} / {row['savedmodel']['p99_ms']:.1f} | "
              f"{row['grpc']['requests_per_s']:.1f} |")
    return report


if __name__ == "__main__":
    main()
