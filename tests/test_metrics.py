"""AUC, GAUC and LogLoss against hand-computed cases and brute force."""
import itertools

import numpy as np
import pytest

from tfrs_seqcompress import metrics


def brute_force_auc(labels, scores):
    pairs = [(p, n) for p, n in itertools.product(np.flatnonzero(labels), np.flatnonzero(1 - labels))]
    return np.mean([1.0 if scores[p] > scores[n] else 0.5 if scores[p] == scores[n] else 0.0 for p, n in pairs])


def test_auc_matches_brute_force_with_ties():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.random(200), 1)  # many ties
    assert metrics.roc_auc(labels, scores) == pytest.approx(brute_force_auc(labels, scores))


def test_gauc_hand_computed():
    # user 1: 3 impressions, pairs (pos 0.9 vs neg 0.2) win, (pos 0.1 vs neg 0.2) lose -> AUC 0.5
    # user 2: 2 impressions, pos 0.8 > neg 0.3 -> AUC 1.0
    # user 3: one class only -> skipped
    user_ids = [1, 1, 1, 2, 2, 3, 3]
    labels = [1, 0, 1, 1, 0, 1, 1]
    scores = [0.9, 0.2, 0.1, 0.8, 0.3, 0.5, 0.6]
    assert metrics.gauc(user_ids, labels, scores) == pytest.approx((3 * 0.5 + 2 * 1.0) / 5)


def test_gauc_differs_from_auc_when_users_differ_in_base_rate():
    # Within each user ranking is perfect (GAUC 1) but the global AUC is not.
    user_ids = [1, 1, 2, 2]
    labels = [1, 0, 1, 0]
    scores = [0.9, 0.8, 0.3, 0.2]
    assert metrics.gauc(user_ids, labels, scores) == 1.0
    assert metrics.roc_auc(labels, scores) == 0.75


def test_logloss_hand_computed():
    assert metrics.logloss([1, 0], [0.8, 0.4]) == pytest.approx(-(np.log(0.8) + np.log(0.6)) / 2)


def test_single_class_gives_nan_and_bad_inputs_raise():
    assert np.isnan(metrics.roc_auc([1, 1], [0.2, 0.3]))
    assert np.isnan(metrics.gauc([1, 2], [1, 1], [0.2, 0.3]))
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        metrics.roc_auc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="scores contain NaN"):
        metrics.roc_auc([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="differ in size"):
        metrics.gauc([1], [0, 1], [0.1, 0.2])
