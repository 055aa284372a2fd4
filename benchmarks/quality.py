"""Quality benchmark: every history encoder, same data, split, budget and seeds.

Trains the library's ranking model with each encoder on MovieLens-100K (or the synthetic world)
and reports AUC / GAUC / LogLoss on the time-split test set as mean ± std over seeds, plus the
training throughput measured in the same run (compare ratios, not absolute times across runs).

    python -m benchmarks.quality                              # MovieLens-100K, 3 seeds
    python -m benchmarks.quality --dataset synthetic --history-length 200

Writes ``benchmarks/results/quality_<dataset>.json`` and ``.png``, and prints a Markdown table.
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

from tfrs_seqcompress import features as F
from tfrs_seqcompress import layers, metrics, models
from tfrs_seqcompress.data import history, movielens, synthetic, tf_data

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
METRICS = ("auc", "gauc", "logloss")


def load_examples(dataset: str, history_length: int, seed: int = 0):
    if dataset == "ml-100k":
        data = movielens.load_movielens_100k(history_length=history_length)
    elif dataset == "synthetic":
        data = synthetic.generate(synthetic.SyntheticConfig(history_length=history_length, seed=seed)).dataset
    else:
        raise ValueError(f"Unknown dataset {dataset!r}; expected 'ml-100k' or 'synthetic'.")
    examples = history.build_history_examples(data.log, data.schema)
    train, test = history.split_by_time(examples, history.time_cutoff(data.log[F.TIMESTAMP], 0.2))
    return data.schema, train, test


class EpochTimer(tf.keras.callbacks.Callback):
    """Wall time of every training epoch."""

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._started)


def run_one(schema, train, test, encoder: str, seed: int, epochs: int, batch_size: int) -> dict:
    tf.keras.utils.set_random_seed(seed)
    model = models.build_ranking_model(schema, encoder)
    timer = EpochTimer()
    model.fit(tf_data.dataset_from_columns(train, batch_size, shuffle_seed=seed), epochs=epochs, verbose=0,
              callbacks=[timer])
    predicted = models.predict_probabilities(model, tf_data.dataset_from_columns(test, 2048))
    result = metrics.ranking_metrics(predicted["user_id"], predicted["label"], predicted["probability"])
    # The last epoch only: the first one also pays for tracing and process warm-up.
    result["train_examples_per_second"] = len(train[F.LABEL]) / timer.seconds[-1]
    return result


def summarise(runs: list[dict]) -> dict:
    summary = {}
    for name in METRICS + ("train_examples_per_second",):
        values = np.array([run[name] for run in runs], dtype=float)
        summary[name] = {"mean": float(values.mean()), "std": float(values.std(ddof=1) if len(values) > 1 else 0.0)}
    return summary


def markdown_table(report: dict) -> str:
    lines = ["| encoder | AUC | GAUC | LogLoss | train examples/s |", "|---|---|---|---|---|"]
    for encoder, summary in report["encoders"].items():
        cells = [f"{summary[m]['mean']:.4f} ± {summary[m]['std']:.4f}" for m in METRICS]
        lines.append(f"| {encoder} | " + " | ".join(cells) + f" | {summary['train_examples_per_second']['mean']:,.0f} |")
    return "\n".join(lines)


def plot(report: dict, path: pathlib.Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    encoders = list(report["encoders"])
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, name in zip(axes, ("auc", "gauc")):
        means = [report["encoders"][e][name]["mean"] for e in encoders]
        stds = [report["encoders"][e][name]["std"] for e in encoders]
        axis.bar(encoders, means, yerr=stds, capsize=4, color="#4c72b0")
        low = min(m - s for m, s in zip(means, stds))
        axis.set_ylim(max(0.0, low - 0.02), max(m + s for m, s in zip(means, stds)) + 0.01)
        axis.set_title(f"{name.upper()} on {report['dataset']} (mean ± std, {len(report['seeds'])} seeds)")
        axis.tick_params(axis="x", rotation=20)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k", choices=["ml-100k", "synthetic"])
    parser.add_argument("--encoders", default=",".join(layers.ENCODERS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--history-length", type=int, default=100)
    parser.add_argument("--output-dir", default=str(RESULTS_DIR))
    args = parser.parse_args(argv)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    encoders = args.encoders.split(",")
    schema, train, test = load_examples(args.dataset, args.history_length)
    print(f"[quality] {args.dataset}: {len(train[F.LABEL]):,} train / {len(test[F.LABEL]):,} test examples, "
          f"L={args.history_length}, encoders {encoders}, seeds {seeds}, {args.epochs} epochs", flush=True)
    report = {"dataset": args.dataset, "history_length": args.history_length, "epochs": args.epochs,
              "batch_size": args.batch_size, "seeds": seeds, "train_examples": len(train[F.LABEL]),
              "test_examples": len(test[F.LABEL]), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "runs": {}, "encoders": {}}
    for encoder in encoders:
        runs = []
        for seed in seeds:
            result = run_one(schema, train, test, encoder, seed, args.epochs, args.batch_size)
            print(f"[quality] {encoder:>10} seed {seed}: AUC {result['auc']:.4f} GAUC {result['gauc']:.4f} "
                  f"LogLoss {result['logloss']:.4f} ({result['train_examples_per_second']:,.0f} ex/s)", flush=True)
            runs.append(result)
        report["runs"][encoder] = runs
        report["encoders"][encoder] = summarise(runs)
    output_dir = pathlib.Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path = output_dir / f"quality_{args.dataset}.json"
    json_path.write_text(json.dumps(report, indent=2))
    plot(report, output_dir / f"quality_{args.dataset}.png")
    print(markdown_table(report))
    print(f"[quality] wrote {json_path} and {json_path.with_suffix('.png')}")
    return report


if __name__ == "__main__":
    main()
