"""Ranking quality metrics over NumPy arrays: AUC, GAUC and LogLoss.

GAUC (group AUC, Zhou et al. DIN §6.1 / Zhu et al. 2017) is the per-user AUC averaged with each
user's number of impressions as weight; users whose impressions are all of one class have no AUC
and are skipped. Keras' streaming ``tf.keras.metrics.AUC`` serves training-time AUC; GAUC needs
the user of every prediction, so it is computed here from collected predictions.

Example::

    ranking_metrics(user_ids, labels, scores)   # {"auc": .., "gauc": .., "logloss": .., ...}
"""
from __future__ import annotations

import numpy as np

_EPSILON = 1e-7


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    _, inverse, counts = np.unique(values[order], return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average = ends - (counts - 1) / 2.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = average[inverse]
    return ranks


def _binary_labels(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    labels, scores = np.asarray(labels).ravel(), np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels and scores differ in size: {labels.shape} vs {scores.shape}.")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0 or 1, got {np.unique(labels)[:10].tolist()}.")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinity.")
    return labels.astype(bool), scores


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve (ties count one half). NaN when only one class is present."""
    labels, scores = _binary_labels(labels, scores)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = _average_ranks(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def gauc(user_ids, labels, scores) -> float:
    """Impression-weighted mean of per-user AUC, skipping users with one class. NaN if none remain."""
    user_ids = np.asarray(user_ids).ravel()
    labels, scores = _binary_labels(labels, scores)
    if user_ids.shape != labels.shape:
        raise ValueError(f"user_ids and labels differ in size: {user_ids.shape} vs {labels.shape}.")
    order = np.argsort(user_ids, kind="mergesort")
    boundaries = np.flatnonzero(np.diff(user_ids[order])) + 1
    weighted, weights = 0.0, 0
    for rows in np.split(order, boundaries):
        user_auc = roc_auc(labels[rows], scores[rows])
        if not np.isnan(user_auc):
            weighted += user_auc * len(rows)
            weights += len(rows)
    return weighted / weights if weights else float("nan")


def logloss(labels, probabilities) -> float:
    """Mean binary cross-entropy of probabilities (clipped to [1e-7, 1 - 1e-7])."""
    labels, probabilities = _binary_labels(labels, probabilities)
    probabilities = np.clip(probabilities, _EPSILON, 1 - _EPSILON)
    return float(-np.mean(np.where(labels, np.log(probabilities), np.log(1 - probabilities))))


def ranking_metrics(user_ids, labels, probabilities) -> dict[str, float]:
    """AUC, GAUC, LogLoss and the example count of one evaluation."""
    return {"auc": roc_auc(labels, probabilities), "gauc": gauc(user_ids, labels, probabilities),
            "logloss": logloss(labels, probabilities), "examples": int(np.size(labels))}
