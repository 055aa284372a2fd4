"""The Evaluator's GAUC (a TFMA query-based metric) equals the library's GAUC."""
import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing import util as beam_testing
from tensorflow_model_analysis.metrics import metric_util
from tensorflow_model_analysis.utils import util as tfma_util

from pipelines import gauc_metric
from tfrs_seqcompress import metrics


def _query_extracts(user_ids, labels, scores) -> list[dict]:
    """One merged extract per user, as TFMA builds them for a MetricsSpec with a query_key."""
    queries = []
    for user in np.unique(user_ids):
        rows = np.flatnonzero(user_ids == user)
        queries.append(tfma_util.merge_extracts([
            {"labels": np.array([labels[row]]), "predictions": np.array([scores[row]]),
             "example_weights": np.array([1.0]), "features": {"user_id": np.array([user])}} for row in rows]))
    return queries


def test_group_auc_matches_the_library_gauc_in_a_beam_pipeline():
    rng = np.random.default_rng(0)
    user_ids = rng.integers(0, 30, size=600)
    labels = (rng.random(600) < 0.3).astype(float)
    scores = np.clip(0.3 * labels + rng.random(600), 0, 1)
    user_ids[:5] = 99
    labels[:5] = 1.0                      # a user with one class only: skipped by both
    computation = gauc_metric.GroupAUC().computations(query_key="user_id")[0]
    expected = metrics.gauc(user_ids, labels, scores)

    with beam.Pipeline() as pipeline:
        result = (pipeline
                  | beam.Create(_query_extracts(user_ids, labels, scores))
                  | beam.Map(metric_util.to_standard_metric_inputs)
                  | beam.Map(lambda inputs: ((), inputs))
                  | beam.CombinePerKey(computation.combiner)
                  | beam.Map(lambda sliced: round(list(sliced[1].values())[0], 9)))
        beam_testing.assert_that(result, beam_testing.equal_to([round(expected, 9)]))
    assert 0.6 < expected < 0.9


def test_group_auc_without_a_query_key_names_what_it_needs():
    with pytest.raises(ValueError, match="query_key"):
        gauc_metric.GroupAUC().computations()
