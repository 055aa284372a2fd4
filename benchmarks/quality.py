"""Quality benchmark: every history encoder, same data, split, budget and seeds.

IAT encoders (``iat_temporal_order``, ``iat_user_order``) first train their source model on the
training period (seeded like the ranking model), store every event's token and fetch each
example's history tokens; the source-training time and the fetch throughput are reported too.
``iat_user_order_transfer`` trains its source model on half of the users only (odd IDs) and feeds
its tokens to a ranking model trained on all users: tokens transferred to users it never saw.
``hisac_iat`` composes the two methods (``layers.composed``): HiSAC's voting and soft routing by
item semantic IDs, with the user-order tokens added to the routed ranking values.

Trains the library's ranking model with each encoder on MovieLens-100K (or the synthetic world)
and reports AUC / GAUC / LogLoss on the time-split test set as mean ± std over seeds, plus the
training throughput and the serving latency of one request (``serving_default`` over 100 serialized
candidates of a history) measured in the same run (compare ratios, not absolute times across runs).
By default every encoder sees the history's outcome features (``--no-outcomes``: the label only).
HiSAC and the global clusters fit their codebook (seeded, timed) on the items' frozen content
vectors (``hisac.semantic``); the clusters get as many codes as HiSAC has agents (same budget). On
the synthetic world, ``AUC long-tail`` is the AUC on the targets outside the users' planted major
interests: rare-interest targets (mostly liked) against non-interest ones (mostly disliked).
For agent-based encoders the serving latency is also measured on the precomputed-agents path
(``score_with_agents``, 100 candidates against agents computed once for the user).

    python -m benchmarks.quality                              # MovieLens-100K, 3 seeds
    python -m benchmarks.quality --dataset synthetic --history-length 200
    python -m benchmarks.quality --encoders din_full,iat_user_order --seeds 0
    python -m benchmarks.quality --dataset synthetic --mean-history 3000 --targets-per-user 60 \
        --history-length 10000 --batch-size 128 --tag L10000     # long histories

Histories are built batch by batch from the log (``data.history.HistoryIndex``), so L = 10,000 fits
in memory; ``--targets-per-user`` samples each user's ranking targets (seeded) when every event of
a long log would be too many.

Writes ``benchmarks/results/quality_<dataset>.json`` and ``.png``, and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import gc
import dataclasses
import json
import os
import pathlib
import platform
import time

import numpy as np

import tfrs_seqcompress  # noqa: F401  (sets Keras 2 before TensorFlow loads)
import tensorflow as tf

from benchmarks import memory, plotting
from benchmarks.latency import timed
from tfrs_seqcompress import features as F
from tfrs_seqcompress import layers, metrics, models, serving
from tfrs_seqcompress.data import history, movielens, synthetic, tf_data
from tfrs_seqcompress.hisac import codebook, semantic
from tfrs_seqcompress.iat import source_models

# Benchmark rows that read instance tokens -> the source model's scheme. ``hisac_iat`` (HiSAC
# routing the tokens, ``layers.composed``) uses user-order tokens, the better IAT scheme here.
IAT_ENCODERS = {"iat_temporal_order": "temporal_order", "iat_user_order": "user_order",
                "iat_user_order_transfer": "user_order", "hisac_iat": "user_order"}
# Transfer: the source model only ever sees these users (odd IDs); the ranking model uses all.
TRANSFER_ENCODERS = {"iat_user_order_transfer"}
SERVING_CANDIDATES = 100
SERVING_CALLS = 30

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
METRICS = ("auc", "gauc", "logloss")
OPTIONAL_METRICS = ("auc_long_tail", "quantisation_error")
COSTS = ("train_examples_per_second", "serving_ms_p50", "serving_ms_p99", "source_train_seconds",
         "fetch_examples_per_second", "codebook_fit_seconds", "serving_agents_ms_p50", "serving_agents_ms_p99",
         "peak_rss_mb")


@dataclasses.dataclass
class Benchmark:
    """One dataset, built once, shared by every encoder and seed."""

    log: dict
    schema: F.DataSchema
    index: history.HistoryIndex                # builds any target's history on demand
    rows: np.ndarray                           # the ranking targets: rows of index's sorted log
    cutoff: int
    epochs: int
    batch_size: int
    token_dim: int
    embed_outcomes: bool = True
    source_epochs: int | None = None           # IAT source model (default: epochs)
    iat_overrides: dict = dataclasses.field(default_factory=dict)  # e.g. {"base_last_n": 20}
    item_vectors: np.ndarray | None = None     # frozen semantic vectors (HiSAC, global clusters)
    level_sizes: tuple[int, ...] = (16, 8)     # HiSAC's codebook
    fanouts: tuple[int, ...] = (4, 2)          # HiSAC's voting; the global clusters get prod(fanouts) codes
    long_tail: np.ndarray | None = None        # [num_examples] targets from a planted rare interest
    codebook_seed: int | None = None           # None: each run fits its codebook with the run's seed


    @property
    def targets(self) -> dict:
        """The targets' own columns (user, item, time, label, context): ``[N]`` each."""
        return {name: self.index.events[name][self.rows]
                for name in F.TARGET_FIELDS + self.schema.context_features + (F.LABEL,)}

    def split_rows(self) -> tuple[np.ndarray, np.ndarray]:
        is_train = self.index.events[F.TIMESTAMP][self.rows] < self.cutoff
        return self.rows[is_train], self.rows[~is_train]


def sample_targets(index: history.HistoryIndex, per_user: int | None, seed: int = 0) -> np.ndarray:
    """Every row of the index, or at most ``per_user`` of each user's events (seeded, uniform)."""
    rows = np.arange(len(index))
    if per_user is None:
        return rows
    keys = np.random.default_rng(seed).random(len(rows))
    users = index.events[F.USER_ID]
    order = np.lexsort((keys, users))  # each user's rows in a random order
    rank = np.arange(len(rows)) - np.searchsorted(users[order], users[order], side="left")
    return np.sort(order[rank < per_user])


def load_dataset(dataset: str, history_length: int, mean_history: int | None = None):
    """(dataset, world): the synthetic world also gives the planted interests (long-tail targets)."""
    if dataset == "ml-100k":
        return movielens.load_movielens_100k(history_length=history_length), None
    if dataset == "synthetic":
        sizes = {"mean_history": mean_history} if mean_history else {}
        world = synthetic.generate(synthetic.SyntheticConfig(history_length=history_length, seed=0, **sizes))
        return world.dataset, world
    raise ValueError(f"Unknown dataset {dataset!r}; expected 'ml-100k' or 'synthetic'.")


def long_tail_targets(world: synthetic.SyntheticWorld | None, targets: dict) -> np.ndarray | None:
    """Examples whose target is from one of the user's planted rare interests (mostly liked) or from
    none of the user's interests (mostly disliked): telling them apart needs the rare interest,
    which only a few, often old, history events reveal. Targets of major interests are left out."""
    if world is None:
        return None
    subcategory = world.dataset.items["subcategory"][targets[F.ITEM_ID]][:, None]
    users = targets[F.USER_ID]
    return ~np.any(world.major_interests[users] == subcategory, axis=1)


def semantic_arguments(bench: Benchmark, encoder: str, seed: int, result: dict) -> dict:
    """Fits the encoder's codebook on the items' frozen semantic vectors (timed) for build_ranking_model."""
    if encoder not in layers.SEMANTIC_ENCODERS:
        return {}
    known = semantic.known_rows(bench.item_vectors)
    sizes = bench.level_sizes if encoder in layers.VOTING_ENCODERS else (int(np.prod(bench.fanouts)),)
    started = time.perf_counter()
    codebook_seed = seed if bench.codebook_seed is None else bench.codebook_seed
    fitted = codebook.fit_residual_kmeans(bench.item_vectors[known], sizes, seed=codebook_seed, keys=known)
    result["codebook_fit_seconds"] = time.perf_counter() - started
    result["quantisation_error"] = fitted.statistics["quantisation_error"][-1] / fitted.statistics["total_variance"]
    arguments = {"codebook": fitted, "item_vectors": bench.item_vectors}
    return {**arguments, "fanouts": bench.fanouts} if encoder in layers.VOTING_ENCODERS else arguments


def with_tokens(bench: Benchmark, scheme: str, seed: int, result: dict,
                transfer: bool = False) -> tuple[dict, F.DataSchema]:
    """Trains the source model on the training period (of odd user IDs only if ``transfer``) and
    attaches every example's history tokens."""
    keep = bench.log[F.TIMESTAMP] < bench.cutoff
    if transfer:
        keep &= bench.log[F.USER_ID] % 2 == 1
    train_log = {name: values[keep] for name, values in bench.log.items()}
    started = time.perf_counter()
    source = source_models.train_source_model(train_log, bench.schema, scheme, token_dim=bench.token_dim,
                                              epochs=bench.source_epochs or bench.epochs, seed=seed)
    store = source_models.build_token_store(source, bench.log)
    result["source_train_seconds"] = time.perf_counter() - started
    examples = bench.index.examples(bench.rows)
    started = time.perf_counter()
    examples = store.attach(examples, expected_version=source.fingerprint())
    result["fetch_examples_per_second"] = len(bench.rows) / (time.perf_counter() - started)
    return examples, dataclasses.replace(bench.schema, token_dim=bench.token_dim, token_version=source.fingerprint())


class EpochTimer(tf.keras.callbacks.Callback):
    """Wall time of every training epoch."""

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._started)


def _scores(signature):
    """A serving signature as a function of the serialized request, returning the scores."""
    return lambda request: signature(examples=request)["score"]


def serving_latency_ms(model: models.RankingModel, schema: F.DataSchema, test: dict) -> dict:
    """Latency of one TF Serving-style request: ``serving_default`` over 100 serialized examples
    (test examples: histories with their candidates), parsing included; median and p99 over 30 calls."""
    rows = {name: values[:SERVING_CANDIDATES] for name, values in test.items() if name != F.LABEL}
    request = tf.constant(F.to_tf_examples(rows))
    serve = serving.serving_function(model, schema)
    p50, p99 = timed(_scores(serve), request, calls=SERVING_CALLS)
    latency = {"serving_ms_p50": p50, "serving_ms_p99": p99}
    if model.supports_agents():  # HiSAC / clusters: agents computed once offline, then O(K) per candidate
        functions = serving.agent_functions(model, schema)
        agents = functions[serving.COMPUTE_AGENTS_SIGNATURE](examples=request[:1])
        targets = {name: rows[name] for name in F.TARGET_FIELDS + schema.context_features}
        recent = model.agent_recent_events()  # a short-term base: the latest N events travel too
        targets.update({name: rows[name][:, -recent:] for name in model.recent_event_features()})
        targets[F.AGENT_VECTORS] = np.repeat(agents[F.AGENT_VECTORS].numpy(), len(request), axis=0)
        targets[F.AGENT_MASK] = np.repeat(agents[F.AGENT_MASK].numpy(), len(request), axis=0)
        targets[F.AGENT_WEIGHTS] = np.repeat(agents[F.AGENT_WEIGHTS].numpy(), len(request), axis=0)
        p50, p99 = timed(_scores(functions[serving.SCORE_WITH_AGENTS_SIGNATURE]),
                         tf.constant(F.to_tf_examples(targets)), calls=SERVING_CALLS)
        latency.update({"serving_agents_ms_p50": p50, "serving_agents_ms_p99": p99})
    return latency



def run_one(bench: Benchmark, encoder: str, seed: int) -> dict:
    tf.keras.backend.clear_session()  # one run's models and traced functions must not pile up in memory
    gc.collect()
    memory.reset_peak()
    result = {}
    schema, name, batch_size = bench.schema, encoder, bench.batch_size
    train_rows, test_rows = bench.split_rows()
    if encoder in IAT_ENCODERS:  # tokens are fetched for every example up front
        examples, schema = with_tokens(bench, IAT_ENCODERS[encoder], seed, result,
                                       transfer=encoder in TRANSFER_ENCODERS)
        train, test = history.split_by_time(examples, bench.cutoff)
        train_data = tf_data.dataset_from_columns(train, batch_size, shuffle_seed=seed)
        test_data = tf_data.dataset_from_columns(test, batch_size)
        serving_rows = history.select(test, np.arange(SERVING_CANDIDATES))
        name = encoder if encoder in layers.ENCODERS else "iat"
    else:
        train_data = tf_data.dataset_from_history_index(bench.index, train_rows, batch_size, shuffle_seed=seed)
        test_data = tf_data.dataset_from_history_index(bench.index, test_rows, batch_size)
        serving_rows = bench.index.examples(test_rows[:SERVING_CANDIDATES])
    tf.keras.utils.set_random_seed(seed)
    model = models.build_ranking_model(schema, name, embed_outcomes=bench.embed_outcomes,
                                       **semantic_arguments(bench, encoder, seed, result),
                                       **(bench.iat_overrides if name == "iat" else {}))
    timer = EpochTimer()
    model.fit(train_data, epochs=bench.epochs, verbose=0, callbacks=[timer])
    predicted = models.predict_probabilities(model, test_data)
    result.update(metrics.ranking_metrics(predicted["user_id"], predicted["label"], predicted["probability"]))
    if bench.long_tail is not None:
        rare = bench.long_tail[bench.index.events[F.TIMESTAMP][bench.rows] >= bench.cutoff]
        result["auc_long_tail"] = metrics.roc_auc(predicted["label"][rare], predicted["probability"][rare])
    # The last epoch only: the first one also pays for tracing and process warm-up.
    result["train_examples_per_second"] = len(train_rows) / timer.seconds[-1]
    result.update(serving_latency_ms(model, schema, serving_rows))
    result["peak_rss_mb"] = memory.peak_rss_mb()  # the run's peak, the shared dataset included
    return result


def summarise(runs: list[dict]) -> dict:
    summary = {}
    for name in METRICS + OPTIONAL_METRICS + COSTS:
        if name not in runs[0]:
            continue
        values = np.array([run[name] for run in runs], dtype=float)
        summary[name] = {"mean": float(values.mean()), "std": float(values.std(ddof=1) if len(values) > 1 else 0.0)}
    return summary


def markdown_table(report: dict) -> str:
    long_tail = any("auc_long_tail" in summary for summary in report["encoders"].values())
    lines = ["| encoder | AUC | GAUC | LogLoss | " + ("AUC long-tail | " if long_tail else "")
             + "train examples/s | serving ms p50 / p99 (100 candidates) | precomputed agents ms p50 / p99 "
             "| source model train s "
             "| token fetch examples/s | codebook fit s | peak RSS MB |",
             "|---|---|---|---|" + ("---|" if long_tail else "") + "---|---|---|---|---|---|---|"]
    for encoder, summary in report["encoders"].items():
        shown = METRICS + (("auc_long_tail",) if long_tail else ())
        cells = [f"{summary[m]['mean']:.4f} ± {summary[m]['std']:.4f}" for m in shown]
        number = lambda m, digits=0: f"{summary[m]['mean']:,.{digits}f}" if m in summary else "–"  # noqa: E731
        extra = [number("train_examples_per_second"),
                 f"{number('serving_ms_p50', 1)} / {number('serving_ms_p99', 1)}",
                 f"{number('serving_agents_ms_p50', 1)} / {number('serving_agents_ms_p99', 1)}",
                 number("source_train_seconds"), number("fetch_examples_per_second"),
                 number("codebook_fit_seconds", 1), number("peak_rss_mb")]
        lines.append(f"| {encoder} | " + " | ".join(cells + extra) + " |")
    return "\n".join(lines)


def plot(report: dict, path: pathlib.Path) -> None:
    encoders = list(report["encoders"])
    figure, axes = plotting.subplots(1, 2, figsize=(10, 4))
    for axis, name in zip(axes, ("auc", "gauc")):
        means = [report["encoders"][e][name]["mean"] for e in encoders]
        stds = [report["encoders"][e][name]["std"] for e in encoders]
        axis.bar(encoders, means, yerr=stds, capsize=4, color="#4c72b0")
        low = min(m - s for m, s in zip(means, stds))
        axis.set_ylim(max(0.0, low - 0.02), max(m + s for m, s in zip(means, stds)) + 0.01)
        axis.set_title(f"{name.upper()} on {report['dataset']} (mean ± std, {len(report['seeds'])} seeds)")
        axis.tick_params(axis="x", rotation=30)
    plotting.save(figure, path)


SETTINGS = ("dataset", "history_length", "epochs", "batch_size", "token_dim", "seeds", "codebook", "fanouts",
            "codebook_seed", "source_epochs", "iat_overrides", "outcome_side_information", "mean_history",
            "targets_per_user", "train_examples", "test_examples")


def updatable_report(json_path: pathlib.Path, report: dict) -> dict:
    """The existing report at ``json_path``, whose rows this run will replace.

    Raises:
      ValueError: no such file, or it was made with other settings (its rows would not compare).
    """
    if not json_path.exists():
        raise ValueError(f"--update: no earlier results at {json_path}.")
    earlier = json.loads(json_path.read_text())
    differing = [name for name in SETTINGS if earlier.get(name) != report.get(name)]
    if differing:
        raise ValueError(f"--update: {json_path} was made with other settings {differing}: "
                         + ", ".join(f"{name} {earlier.get(name)!r} vs {report.get(name)!r}" for name in differing))
    return {**earlier, "machine": report["machine"]}


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(value) for value in text.split(","))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k", choices=["ml-100k", "synthetic"])
    parser.add_argument("--encoders", default=",".join([name for name in layers.ENCODERS if name != "iat"]
                                                       + [name for name in IAT_ENCODERS if name not in layers.ENCODERS]))
    parser.add_argument("--token-dim", type=int, default=8)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--history-length", type=int, default=100)
    parser.add_argument("--mean-history", type=int, help="synthetic: mean events per user (default: the config's)")
    parser.add_argument("--targets-per-user", type=int,
                        help="rank at most this many of each user's events (seeded sample; default: all)")
    parser.add_argument("--output-dir", default=str(RESULTS_DIR))
    parser.add_argument("--no-outcomes", action="store_true",
                        help="embed only the past label on the history, not the outcome features (ablation)")
    parser.add_argument("--codebook", default="16,8", help="HiSAC's codebook level sizes")
    parser.add_argument("--fanouts", default="4,2", help="HiSAC's voting fan-outs (K = their product)")
    parser.add_argument("--codebook-seed", type=int,
                        help="fit every run's codebook with this seed (default: the run's seed)")
    parser.add_argument("--source-epochs", type=int, help="IAT source-model epochs (default: --epochs)")
    parser.add_argument("--iat-base-last-n", type=int, help="IAT's DIN base over the last N events (default: all)")
    parser.add_argument("--tag", default="", help="suffix of the result file names, e.g. 'label_only'")
    parser.add_argument("--update", action="store_true",
                        help="re-run only --encoders and replace their rows in the existing result file "
                             "(refused if it was made with other settings)")
    args = parser.parse_args(argv)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    encoders = args.encoders.split(",")
    data, world = load_dataset(args.dataset, args.history_length, args.mean_history)
    cutoff = history.time_cutoff(data.log[F.TIMESTAMP], 0.2)
    index = history.HistoryIndex(data.log, data.schema)
    rows = sample_targets(index, args.targets_per_user)
    bench = Benchmark(log=data.log, schema=data.schema, index=index, rows=rows,
                      cutoff=cutoff, epochs=args.epochs, batch_size=args.batch_size, token_dim=args.token_dim,
                      embed_outcomes=not args.no_outcomes, item_vectors=semantic.content_vectors(data),
                      level_sizes=_ints(args.codebook), fanouts=_ints(args.fanouts),
                      long_tail=None, source_epochs=args.source_epochs, codebook_seed=args.codebook_seed,
                      iat_overrides={"base_last_n": args.iat_base_last_n} if args.iat_base_last_n else {})
    bench.long_tail = long_tail_targets(world, bench.targets)
    train_rows, test_rows = bench.split_rows()
    train_count, test_count = len(train_rows), len(test_rows)
    print(f"[quality] {args.dataset}: {train_count:,} train / {test_count:,} test examples, "
          f"L={args.history_length}, encoders {encoders}, seeds {seeds}, {args.epochs} epochs", flush=True)
    report = {"dataset": args.dataset, "history_length": args.history_length, "epochs": args.epochs,
              "batch_size": args.batch_size, "token_dim": args.token_dim, "seeds": seeds,
              "codebook": list(bench.level_sizes), "fanouts": list(bench.fanouts),
              "codebook_seed": args.codebook_seed,
              "source_epochs": bench.source_epochs or bench.epochs, "iat_overrides": bench.iat_overrides,
              "outcome_side_information": list(bench.schema.outcome_features) if bench.embed_outcomes else [],
              "mean_history": args.mean_history, "targets_per_user": args.targets_per_user,
              "events": len(data.log[F.LABEL]),
              "train_examples": train_count, "test_examples": test_count, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "runs": {}, "encoders": {}}
    output_dir = pathlib.Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path = output_dir / f"quality_{args.dataset}{'_' + args.tag if args.tag else ''}.json"
    if args.update:
        report = updatable_report(json_path, report)
    for encoder in encoders:
        runs = []
        for seed in seeds:
            result = run_one(bench, encoder, seed)
            print(f"[quality] {encoder:>10} seed {seed}: AUC {result['auc']:.4f} GAUC {result['gauc']:.4f} "
                  f"LogLoss {result['logloss']:.4f} ({result['train_examples_per_second']:,.0f} ex/s, "
                  f"serving {result['serving_ms_p50']:.1f} ms)"
                  + (f" long-tail AUC {result['auc_long_tail']:.4f}" if "auc_long_tail" in result else ""), flush=True)
            runs.append(result)
        report["runs"][encoder] = runs
        report["encoders"][encoder] = summarise(runs)
        json_path.write_text(json.dumps(report, indent=2))  # after every encoder: a crash loses one at most
    plot(report, json_path.with_suffix(".png"))
    print(markdown_table(report))
    print(f"[quality] wrote {json_path} and {json_path.with_suffix('.png')}")
    return report


if __name__ == "__main__":
    main()
