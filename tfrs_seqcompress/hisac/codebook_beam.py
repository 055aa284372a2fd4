"""The residual k-means codebook fitted by an Apache Beam job, for item sets beyond one machine.

``FitResidualKMeans`` runs the same steps as ``codebook.fit_residual_kmeans`` (k-means++ on the
same hash-chosen candidates, then Lloyd iterations, level by level on the residuals), but every
pass over the vectors is a distributed map over batches of points followed by a global sum of
per-code statistics; only the codewords (``[K, dim]``) travel as side inputs. On the same vectors,
keys, seed and iterations it gives the in-memory codebook up to float summation order.

Example::

    with beam.Pipeline() as pipeline:
        codebook = (pipeline | beam.Create(zip(item_ids, vectors))
                    | FitResidualKMeans(level_sizes=(256, 64), seed=0)
                    | beam.Map(lambda fitted: fitted.save("codebook/")))
"""
from __future__ import annotations

from typing import Iterable, Sequence

import apache_beam as beam
import numpy as np

from tfrs_seqcompress.hisac import codebook as C

_MIN_BATCH, _MAX_BATCH = 256, 8192


def _as_batch(elements: list) -> tuple[np.ndarray, np.ndarray]:
    keys = np.array([int(key) for key, _ in elements], np.int64)
    return keys, C.check_vectors(np.stack([np.asarray(vector, np.float64) for _, vector in elements]))


def _candidates(batch, seed: int, level: int, limit: int) -> Iterable[tuple[int, int, np.ndarray]]:
    keys, points = batch
    chosen = C.init_candidates(keys, seed, level, limit)
    for row in chosen:
        yield C.init_priority(keys[row], seed, level), int(keys[row]), points[row]


def _initial_codewords(top: list, size: int, seed: int, level: int) -> np.ndarray:
    return C.kmeans_plus_plus(np.stack([point for _, _, point in sorted(top, key=lambda t: t[0])]), size, seed, level)


def _partial_sums(batch, codewords: np.ndarray):
    return C.cluster_sums(batch[1], codewords)




def _lloyd_update(previous: np.ndarray, sums_counts) -> np.ndarray:
    sums, counts = sums_counts
    return C.updated_codewords(sums, counts, previous)


def _residual(batch, codewords: np.ndarray):
    keys, points = batch
    return keys, points - codewords[C.nearest(points, codewords)]


def _level_statistics(batch, codewords: np.ndarray):
    """Per batch: code counts, summed squared residual norm, and the point count."""
    codes = C.nearest(batch[1], codewords)
    residual = batch[1] - codewords[codes]
    return np.bincount(codes, minlength=len(codewords)), float((residual ** 2).sum()), len(codes)


def _moments(batch):
    return batch[1].sum(axis=0), float((batch[1] ** 2).sum()), len(batch[1])


def _sum_tuples(tuples):
    """Element-wise sum of tuples of arrays / numbers (a Beam combiner: it also sums its own sums)."""
    tuples = [values for values in tuples if values is not None]
    return tuple(sum(values) for values in zip(*tuples)) if tuples else None


class FitResidualKMeans(beam.PTransform):
    """``(key: int, vector)`` pairs -> a PCollection holding one fitted ``codebook.Codebook``.

    Args:
      level_sizes: codes per level (1 to 4 levels).
      seed: as for the in-memory fitter (same seed and keys, same starting codewords).
      iterations: Lloyd iterations per level.
      max_init_candidates: how many hash-chosen points seed each level's k-means++.
    """

    def __init__(self, level_sizes: Sequence[int], seed: int = 0, iterations: int = 20,
                 max_init_candidates: int = C.MAX_INIT_CANDIDATES):
        super().__init__()
        C.check_level_sizes(level_sizes)
        self._sizes, self._seed, self._iterations = tuple(int(s) for s in level_sizes), int(seed), int(iterations)
        self._limit = int(max_init_candidates)

    def expand(self, keyed_vectors):
        single = beam.pvalue.AsSingleton
        batches = (keyed_vectors
                   | "Batch" >> beam.BatchElements(min_batch_size=_MIN_BATCH, max_batch_size=_MAX_BATCH)
                   | "Stack" >> beam.Map(_as_batch))
        moments = (batches | "Moments" >> beam.Map(_moments)
                   | "SumMoments" >> beam.CombineGlobally(_sum_tuples).without_defaults())
        levels, errors = [], []
        for level, size in enumerate(self._sizes):
            name = f"Level{level + 1}"
            codewords = (batches
                         | f"{name}Candidates" >> beam.FlatMap(_candidates, self._seed, level, self._limit)
                         | f"{name}TopCandidates" >> beam.combiners.Top.Of(self._limit, key=lambda t: -t[0])
                         | f"{name}KMeansPlusPlus" >> beam.Map(_initial_codewords, size, self._seed, level))
            for step in range(self._iterations):
                sums = (batches | f"{name}Assign{step}" >> beam.Map(_partial_sums, single(codewords))
                        | f"{name}Sum{step}" >> beam.CombineGlobally(_sum_tuples).without_defaults())
                codewords = codewords | f"{name}Update{step}" >> beam.Map(_lloyd_update, single(sums))
            errors.append(batches | f"{name}Statistics" >> beam.Map(_level_statistics, single(codewords))
                          | f"{name}SumStatistics" >> beam.CombineGlobally(_sum_tuples).without_defaults())
            levels.append(codewords)
            batches = batches | f"{name}Residual" >> beam.Map(_residual, single(codewords))
        seed, iterations = self._seed, self._iterations
        first = levels[0] | "Codewords1" >> beam.Map(lambda codewords: [codewords])
        for level, codewords in enumerate(levels[1:], start=2):
            first = first | f"Codewords{level}" >> beam.Map(lambda done, more: done + [more], single(codewords))
        statistics = [single(stat) for stat in errors]
        return first | "Codebook" >> beam.Map(_codebook, single(moments), *statistics, seed=seed, iterations=iterations)


def _codebook(codewords: list, moments, *level_statistics, seed: int, iterations: int) -> C.Codebook:
    total, squared, count = moments
    variance = squared / count - float((total / count) @ (total / count))
    errors = [error / points for _, error, points in level_statistics]
    used = [int((counts > 0).sum()) for counts, _, _ in level_statistics]
    return C.Codebook(tuple(codewords), C.fit_statistics(variance, errors, used, seed, iterations, num_vectors=count))
