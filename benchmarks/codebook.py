"""Codebook benchmark: residual k-means fit time and quantisation error, ours vs scikit-learn.

Fits the same H-level residual codebook three ways on seeded clustered vectors ``[N, 64]``
(a two-level Gaussian mixture, like item content embeddings): the library's in-memory fitter,
its Beam fitter (DirectRunner, for N up to ``--beam-max``), and scikit-learn's ``KMeans`` (Lloyd,
one initialisation, same iterations) applied level by level to the residuals. Reports seconds and
the relative quantisation error (mean squared residual / total variance) after the last level.

    python -m benchmarks.codebook                                  # N = 10^4, 10^5, 10^6
    python -m benchmarks.codebook --sizes 10000 --levels 64,16

Writes ``benchmarks/results/codebook.json`` and ``.png``, and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import tempfile
import time

import numpy as np

from benchmarks import plotting
from tfrs_seqcompress.hisac import codebook as C

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"


def clustered_vectors(count: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    """Vectors around 64 coarse centres, each with 16 finer offsets, plus noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=(64, dim)) * 3.0
    fine = rng.normal(size=(64, 16, dim))
    first, second = rng.integers(0, 64, size=count), rng.integers(0, 16, size=count)
    return (coarse[first] + fine[first, second] + 0.3 * rng.normal(size=(count, dim))).astype(np.float32)


def relative_error(codebook: C.Codebook) -> float:
    return codebook.statistics["quantisation_error"][-1] / codebook.statistics["total_variance"]


def fit_ours(vectors, levels, iterations, seed) -> tuple[float, float]:
    started = time.perf_counter()
    fitted = C.fit_residual_kmeans(vectors, levels, seed=seed, iterations=iterations)
    return time.perf_counter() - started, relative_error(fitted)


def fit_beam(vectors, levels, iterations, seed) -> tuple[float, float]:
    import apache_beam as beam

    from tfrs_seqcompress.hisac.codebook_beam import FitResidualKMeans

    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        with beam.Pipeline() as pipeline:
            _ = (pipeline | beam.Create(list(enumerate(vectors)))
                 | FitResidualKMeans(levels, seed=seed, iterations=iterations)
                 | beam.Map(lambda fitted: fitted.save(directory)))
        seconds = time.perf_counter() - started
        return seconds, relative_error(C.Codebook.load(directory))


def fit_sklearn(vectors, levels, iterations, seed) -> tuple[float, float]:
    from sklearn.cluster import KMeans

    started = time.perf_counter()
    residual = vectors.astype(np.float64)
    for level, size in enumerate(levels):
        kmeans = KMeans(size, init="k-means++", n_init=1, max_iter=iterations, tol=0.0, algorithm="lloyd",
                        random_state=seed + level).fit(residual)
        residual = residual - kmeans.cluster_centers_[kmeans.labels_]
    seconds = time.perf_counter() - started
    centred = vectors - vectors.mean(axis=0)
    return seconds, float((residual ** 2).sum(axis=1).mean() / (centred.astype(np.float64) ** 2).sum(axis=1).mean())


def plot(report: dict, path: pathlib.Path) -> None:
    figure, axes = plotting.subplots(1, 2, figsize=(10, 4))
    for method, style in (("ours", "o-"), ("beam", "s--"), ("sklearn", "^-")):
        rows = [row for row in report["rows"] if method in row]
        if rows:
            axes[0].loglog([r["n"] for r in rows], [r[method]["seconds"] for r in rows], style, label=method)
            axes[1].semilogx([r["n"] for r in rows], [r[method]["relative_error"] for r in rows], style, label=method)
    axes[0].set(xlabel="vectors", ylabel="fit seconds", title=f"codebook fit time ({report['levels']} codes)")
    axes[1].set(xlabel="vectors", ylabel="quantisation error / variance", title="quantisation error")
    for axis in axes:
        axis.legend()
    plotting.save(figure, path)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--levels", default="256,64")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--beam-max", type=int, default=100_000, help="largest N also fitted with Beam")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=str(RESULTS_DIR))
    args = parser.parse_args(argv)
    levels = tuple(int(size) for size in args.levels.split(","))
    report = {"levels": list(levels), "dim": args.dim, "iterations": args.iterations, "seed": args.seed,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "rows": []}
    for count in (int(size) for size in args.sizes.split(",")):
        vectors = clustered_vectors(count, args.dim, args.seed)
        row = {"n": count}
        methods = [("ours", fit_ours), ("sklearn", fit_sklearn)] + ([("beam", fit_beam)] if count <= args.beam_max else [])
        for name, fit in methods:
            seconds, error = fit(vectors, levels, args.iterations, args.seed)
            row[name] = {"seconds": seconds, "relative_error": error}
            print(f"[codebook] N={count:,} {name:>7}: {seconds:8.1f} s, error/variance {error:.4f}", flush=True)
        report["rows"].append(row)
    output_dir = pathlib.Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "codebook.json").write_text(json.dumps(report, indent=2))
    plot(report, output_dir / "codebook.png")
    lines = ["| vectors | ours s | ours error | scikit-learn s | scikit-learn error | Beam (DirectRunner) s | Beam error |",
             "|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        cell = lambda name: (f"{row[name]['seconds']:.1f} | {row[name]['relative_error']:.4f}"  # noqa: E731
                             if name in row else "– | –")
        lines.append(f"| {row['n']:,} | {cell('ours')} | {cell('sklearn')} | {cell('beam')} |")
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
