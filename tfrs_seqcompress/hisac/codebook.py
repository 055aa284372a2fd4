"""HiSAC's global hierarchical codebook: residual k-means over frozen item semantic vectors.

Level 1 clusters the vectors; level h clusters what levels 1..h-1 left unexplained (the
residuals), so an item's semantic ID ``(c1, ..., cH)`` is a path in a global tree and the sum of
its codewords approximates its vector (the RQ idea of the paper, without the VAE; docs/methods.md).

Fitting is seeded and deterministic. Each level starts from k-means++ on a bounded, seeded
candidate set chosen by a hash of each vector's key (``init_candidates``), then runs Lloyd
iterations (ties go to the lower code; an empty code keeps its codeword). The Beam fitter
(``codebook_beam``) runs the very same steps as distributed passes, so both give the same codebook
up to float summation order.

A ``Codebook`` is an artefact: its ``version`` is a digest of the codewords, and it carries its
fitting statistics (quantisation error after each level, code usage). ``load`` refuses a
truncated file, another version, or another shape than expected.

Example::

    codebook = fit_residual_kmeans(item_vectors[1:], level_sizes=(16, 8), seed=0)
    codes = codebook.assign(item_vectors)            # [num_items, 2] semantic IDs
    codebook.save("codebook/"); Codebook.load("codebook/", expected_version=codebook.version)
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pathlib
import zipfile
from typing import Sequence

import numpy as np
import tensorflow as tf

CODEWORDS_FILE = "codewords.npz"
METADATA_FILE = "metadata.json"
MAX_INIT_CANDIDATES = 20_000


class CodebookError(ValueError):
    """A codebook file that is missing, truncated or inconsistent, or of another version or shape."""


@dataclasses.dataclass(frozen=True)
class Codebook:
    """H levels of codewords; level h holds ``[level_sizes[h], dim]`` float32.

    Attributes:
      codewords: one array per level.
      statistics: how the fit went (``quantisation_error`` per level: mean squared norm of what
        levels 1..h leave unexplained; ``total_variance``; ``used_codes`` per level; ``seed``,
        ``iterations``, ``num_vectors``).
    """

    codewords: tuple[np.ndarray, ...]
    statistics: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        codewords = tuple(np.asarray(level, np.float32) for level in self.codewords)
        if not codewords or any(level.ndim != 2 or len(level) == 0 for level in codewords):
            raise CodebookError("A codebook needs at least one level of codewords shaped [codes, dim].")
        if len({level.shape[1] for level in codewords}) != 1:
            raise CodebookError(f"All levels must share one dim, got {[level.shape for level in codewords]}.")
        if not all(np.isfinite(level).all() for level in codewords):
            raise CodebookError("Codewords contain NaN or infinity.")
        object.__setattr__(self, "codewords", codewords)

    @property
    def level_sizes(self) -> tuple[int, ...]:
        return tuple(len(level) for level in self.codewords)

    @property
    def dim(self) -> int:
        return int(self.codewords[0].shape[1])

    @property
    def num_levels(self) -> int:
        return len(self.codewords)

    @property
    def version(self) -> str:
        """A digest of every codeword: two codebooks share a version iff they quantise alike."""
        digest = hashlib.sha256(json.dumps(self.level_sizes).encode())
        for level in self.codewords:
            digest.update(np.ascontiguousarray(level).tobytes())
        return digest.hexdigest()[:16]

    def assign(self, vectors: np.ndarray) -> np.ndarray:
        """Semantic IDs ``[N, H]`` (int64) of ``vectors`` ``[N, dim]``: the nearest codeword level by level.

        Raises:
          ValueError: wrong dim, or NaN / infinite vectors (named by row).
        """
        residual = check_vectors(vectors, self.dim).astype(np.float64)
        codes = np.zeros((len(residual), self.num_levels), np.int64)
        for level, codewords in enumerate(self.codewords):
            codes[:, level] = nearest(residual, codewords)
            residual -= codewords[codes[:, level]]
        return codes

    def reconstruct(self, codes: np.ndarray) -> np.ndarray:
        """``[N, dim]``: the sum of the codewords on each path (an agent's prototype)."""
        codes = np.asarray(codes, np.int64)
        return sum(self.codewords[level][codes[:, level]] for level in range(codes.shape[1]))

    def save(self, directory: str | pathlib.Path) -> str:
        """Writes ``codewords.npz`` and ``metadata.json`` (any ``tf.io.gfile`` path: local, gs://, hdfs://)."""
        directory = str(directory)
        tf.io.gfile.makedirs(directory)
        buffer = io.BytesIO()
        np.savez(buffer, **{f"level_{h}": level for h, level in enumerate(self.codewords)})
        with tf.io.gfile.GFile(os.path.join(directory, CODEWORDS_FILE), "wb") as handle:
            handle.write(buffer.getvalue())
        metadata = {"version": self.version, "level_sizes": list(self.level_sizes), "dim": self.dim,
                    "statistics": self.statistics}
        with tf.io.gfile.GFile(os.path.join(directory, METADATA_FILE), "w") as handle:
            handle.write(json.dumps(metadata, indent=2))
        return directory

    @classmethod
    def load(cls, directory: str | pathlib.Path, expected_version: str | None = None,
             expected_level_sizes: Sequence[int] | None = None, expected_dim: int | None = None) -> "Codebook":
        """Reads a saved codebook and checks it is whole and the one expected.

        Raises:
          CodebookError: missing or truncated files, codewords that disagree with the metadata,
            or a version / level sizes / dim other than expected.
        """
        directory = str(directory)
        try:
            with tf.io.gfile.GFile(os.path.join(directory, METADATA_FILE), "r") as handle:
                metadata = json.loads(handle.read())
            with tf.io.gfile.GFile(os.path.join(directory, CODEWORDS_FILE), "rb") as handle:
                with np.load(io.BytesIO(handle.read())) as arrays:
                    codewords = tuple(arrays[f"level_{h}"] for h in range(len(metadata["level_sizes"])))
            version = metadata["version"]
        except (OSError, tf.errors.OpError, KeyError, TypeError, ValueError, zipfile.BadZipFile, EOFError) as error:
            raise CodebookError(f"Codebook at {directory} is missing, truncated or lacks metadata "
                                f"({type(error).__name__}: {error}).") from error
        codebook = cls(codewords, metadata.get("statistics", {}))
        if codebook.version != version:
            raise CodebookError(f"Codebook at {directory}: codewords hash to {codebook.version!r} but the metadata "
                                f"says {version!r} (modified or partly written).")
        codebook.check(expected_version, expected_level_sizes, expected_dim)
        return codebook

    def check(self, expected_version: str | None = None, expected_level_sizes: Sequence[int] | None = None,
              expected_dim: int | None = None) -> None:
        """Raises ``CodebookError`` if this is not the codebook a model was built with."""
        if expected_level_sizes is not None and tuple(expected_level_sizes) != self.level_sizes:
            raise CodebookError(f"Codebook has level sizes {self.level_sizes}; expected {tuple(expected_level_sizes)}.")
        if expected_dim is not None and expected_dim != self.dim:
            raise CodebookError(f"Codebook has dim {self.dim}; expected {expected_dim}.")
        if expected_version is not None and expected_version != self.version:
            raise CodebookError(f"Codebook version {self.version!r} differs from the expected {expected_version!r}: "
                                "it was fitted on other data or with other settings.")


# ----------------------------------------------------------------------------- fitting steps
# Each step is shared by the in-memory fitter below and the Beam fitter (codebook_beam).


def check_vectors(vectors: np.ndarray, dim: int | None = None) -> np.ndarray:
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or not np.issubdtype(vectors.dtype, np.number):
        raise ValueError(f"Semantic vectors must be a numeric array [num_vectors, dim], got shape {vectors.shape} "
                         f"and dtype {vectors.dtype}.")
    if dim is not None and vectors.shape[1] != dim:
        raise ValueError(f"Semantic vectors have dim {vectors.shape[1]}; the codebook expects dim {dim}.")
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if len(bad):
        raise ValueError(f"Semantic vectors contain NaN or infinity in {len(bad)} row(s), first rows {bad[:5].tolist()}.")
    return vectors


def nearest(points: np.ndarray, codewords: np.ndarray, chunk: int = 32_768) -> np.ndarray:
    """Index of the nearest codeword of every point (squared L2; ties go to the lower index).

    Works in chunks of rows so 10^6 points never build a 10^6 x K distance matrix at once."""
    points = np.asarray(points, np.float64)
    codewords = np.asarray(codewords, np.float64)
    squared_norms = np.einsum("kd,kd->k", codewords, codewords)[None, :]
    codes = np.empty(len(points), np.int64)
    for start in range(0, len(points), chunk):
        block = points[start:start + chunk]
        codes[start:start + chunk] = np.argmin(squared_norms - 2.0 * block @ codewords.T, axis=1)
    return codes


def init_priority(key: int, seed: int, level: int) -> int:
    """A seeded pseudo-random rank of a vector's key; the lowest ranks seed a level's k-means++."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{level}:{int(key)}".encode()).digest()[:8], "big")


def init_candidates(keys: np.ndarray, seed: int, level: int, limit: int = MAX_INIT_CANDIDATES) -> np.ndarray:
    """Row indices of the (at most ``limit``) keys with the lowest ``init_priority``, in that order."""
    priorities = np.array([init_priority(key, seed, level) for key in keys], dtype=np.uint64)
    return np.argsort(priorities, kind="stable")[:limit]


def kmeans_plus_plus(candidates: np.ndarray, size: int, seed: int, level: int) -> np.ndarray:
    """k-means++ initial codewords ``[size, dim]`` from candidate points (in priority order)."""
    if len(candidates) < size:
        raise ValueError(f"Codebook level {level + 1} has {size} codes but only {len(candidates)} vectors to fit "
                         "them on; lower the level size.")
    rng = np.random.default_rng([seed, level])
    candidates = np.asarray(candidates, np.float64)
    chosen = [int(rng.integers(len(candidates)))]
    distances = ((candidates - candidates[chosen[0]]) ** 2).sum(axis=1)
    for _ in range(1, size):
        total = distances.sum()
        index = int(rng.choice(len(candidates), p=distances / total)) if total > 0 else int(np.argmax(distances))
        chosen.append(index)
        distances = np.minimum(distances, ((candidates - candidates[index]) ** 2).sum(axis=1))
    return candidates[chosen]


def cluster_sums(points: np.ndarray, codewords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-code sums ``[K, dim]`` and counts ``[K]`` of the points nearest to each codeword."""
    codes = nearest(points, codewords)
    sums = np.zeros(codewords.shape, np.float64)
    np.add.at(sums, codes, points)
    return sums, np.bincount(codes, minlength=len(codewords)).astype(np.int64)


def updated_codewords(sums: np.ndarray, counts: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Lloyd's update: each code moves to its points' mean; an empty code keeps its codeword."""
    means = sums / np.maximum(counts, 1)[:, None]
    return np.where(counts[:, None] > 0, means, previous)


def fit_residual_kmeans(vectors: np.ndarray, level_sizes: Sequence[int], seed: int = 0, iterations: int = 20,
                        keys: np.ndarray | None = None, verbose: bool = False) -> Codebook:
    """Fits an H-level residual k-means codebook in memory.

    Args:
      vectors: ``[N, dim]`` semantic vectors (e.g. item content embeddings, no padding row).
      level_sizes: codes per level, e.g. ``(16, 8)``; 1 to 4 levels.
      seed: makes the fit deterministic.
      iterations: Lloyd iterations per level.
      keys: ``[N]`` int IDs of the vectors (default ``0..N-1``); they choose the k-means++
        candidates, so the Beam fitter given the same keys starts from the same codewords.
      verbose: print the quantisation error after each level.
    """
    points = check_vectors(vectors).astype(np.float64)
    check_level_sizes(level_sizes)
    keys = np.arange(len(points)) if keys is None else np.asarray(keys)
    residual, codewords, errors, used = points.copy(), [], [], []
    for level, size in enumerate(level_sizes):
        level_codewords = kmeans_plus_plus(residual[init_candidates(keys, seed, level)], size, seed, level)
        for _ in range(iterations):
            sums, counts = cluster_sums(residual, level_codewords)
            level_codewords = updated_codewords(sums, counts, level_codewords)
        codes = nearest(residual, level_codewords)
        residual -= level_codewords[codes]
        codewords.append(level_codewords)
        errors.append(float((residual ** 2).sum(axis=1).mean()))
        used.append(int(len(np.unique(codes))))
        if verbose:
            print(f"[codebook] level {level + 1}/{len(level_sizes)}: {size} codes, {used[-1]} used, "
                  f"quantisation error {errors[-1]:.4f}", flush=True)
    centred = points - points.mean(axis=0)
    total_variance = float((centred ** 2).sum(axis=1).mean())
    statistics = fit_statistics(total_variance, errors, used, seed, iterations, num_vectors=len(points))
    return Codebook(tuple(codewords), statistics)


ELBOW_SIZES = (8, 16, 32, 64, 128, 256)


def elbow_level_sizes(vectors: np.ndarray, leaves: int = 256, sizes: Sequence[int] = ELBOW_SIZES,
                      min_gain: float = 0.5, seed: int = 0, iterations: int = 20,
                      keys: np.ndarray | None = None) -> tuple[tuple[int, int], dict[int, float]]:
    """Label-free level sizes of a two-level codebook: level 1 at the elbow of its quantisation error.

    Level 1 takes the largest of ``sizes`` that cut the level-1 error by at least ``min_gain`` (a
    fraction) from the size before it; the smallest size if no step cuts that much. On
    structureless d-dim data, doubling the codes cuts the error by about ``1 - 2**(-2/d)`` (16% at
    d = 8), so a cut of half means the larger size separated clusters the smaller one merged, while
    the cuts after the last such step only split clusters. Level 2 fills the leaf budget:
    ``max(1, leaves // level_1)`` codes, so the number of leaves (HiSAC's agent budget when every
    leaf is a candidate) stays about ``leaves``.

    Args:
      vectors: ``[N, dim]`` semantic vectors (no padding row).
      leaves: the leaf budget (codes at level 1 x codes at level 2).
      sizes: the level-1 sizes tried, ascending; those over ``N / 4`` are skipped (near one vector
        per code every doubling cuts the error steeply, clusters or not).
      min_gain: the error cut (from the size before) that makes a size a candidate, in (0, 1).
      seed, iterations, keys: as ``fit_residual_kmeans``.

    Returns:
      ``((level_1, level_2), {size: level-1 quantisation error})``.

    Example::

        levels, errors = elbow_level_sizes(item_vectors[known], keys=known)   # e.g. (128, 2)
        codebook = fit_residual_kmeans(item_vectors[known], levels, keys=known)
    """
    points = check_vectors(vectors)
    if not 0.0 < min_gain < 1.0:
        raise ValueError(f"min_gain must be a fraction in (0, 1), got {min_gain}.")
    if int(leaves) < 1:
        raise ValueError(f"leaves must be a positive number of codebook leaves, got {leaves}.")
    tried = [int(size) for size in sizes if 1 <= int(size) <= len(points) // 4]
    if not tried or tried != sorted(set(tried)):
        raise ValueError(f"sizes must be ascending level-1 sizes, at least one of them at most a quarter of the "
                         f"{len(points)} vectors; got {tuple(sizes)}.")
    errors = {size: fit_residual_kmeans(points, (size,), seed=seed, iterations=iterations,
                                        keys=keys).statistics["quantisation_error"][0] for size in tried}
    cut = [larger for smaller, larger in zip(tried, tried[1:]) if errors[larger] <= (1.0 - min_gain) * errors[smaller]]
    level_1 = cut[-1] if cut else tried[0]
    return (level_1, max(1, int(leaves) // level_1)), errors


def check_level_sizes(level_sizes: Sequence[int]) -> None:
    if not 1 <= len(level_sizes) <= 4 or any(int(size) < 1 for size in level_sizes):
        raise ValueError(f"level_sizes must hold 1 to 4 positive code counts, got {tuple(level_sizes)}.")


def fit_statistics(total_variance: float, errors: list[float], used: list[int], seed: int, iterations: int,
                   num_vectors: int) -> dict:
    """The statistics a fitted codebook carries (shared by both fitters)."""
    return {"quantisation_error": errors, "total_variance": float(total_variance), "used_codes": used,
            "num_vectors": int(num_vectors), "seed": int(seed), "iterations": int(iterations)}
