"""GAUC as a TFMA metric, so the Evaluator can bless (or refuse) a model on it.

TFMA's query-based metrics receive all examples of one query together when the ``MetricsSpec``
names a ``query_key``; with ``query_key="user_id"`` a query is one user's eval impressions. Each
user's AUC (``tfrs_seqcompress.metrics.roc_auc``) is weighted by the user's impression count;
users whose impressions are all of one class are skipped, exactly as ``metrics.gauc`` does.

Example (inside a ``tfma.EvalConfig``)::

    tfma.MetricsSpec(query_key="user_id", metrics=[
        tfma.MetricConfig(class_name="GroupAUC", module="pipelines.gauc_metric",
                          threshold=tfma.MetricThreshold(...))])
"""
from __future__ import annotations

from typing import Iterable

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

from tfrs_seqcompress import metrics

GROUP_AUC_NAME = "group_auc"


class GroupAUC(metric_types.Metric):
    """Impression-weighted mean of per-query AUC (GAUC); needs a ``query_key`` in its spec."""

    def __init__(self, name: str = GROUP_AUC_NAME):
        super().__init__(_group_auc_computations, name=name)


metric_types.register_metric(GroupAUC)


def _group_auc_computations(name: str = GROUP_AUC_NAME, eval_config=None, model_names=None, output_names=None,
                            example_weighted: bool = False, query_key: str = "") -> metric_types.MetricComputations:
    if not query_key:
        raise ValueError("GroupAUC needs the query_key of its MetricsSpec (the user-id feature, e.g. 'user_id').")
    computations = []
    for model_name in model_names or [""]:
        for output_name in output_names or [""]:
            key = metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name,
                                         example_weighted=example_weighted)
            computations.append(metric_types.MetricComputation(
                keys=[key], preprocessors=None, combiner=_GroupAUCCombiner(key, eval_config)))
    return computations


class _GroupAUCCombiner(beam.CombineFn):
    """Accumulates (sum of impressions x AUC, sum of impressions) over queries."""

    def __init__(self, key: metric_types.MetricKey, eval_config):
        self._key = key
        self._eval_config = eval_config

    def create_accumulator(self) -> np.ndarray:
        return np.zeros(2)

    def add_input(self, accumulator: np.ndarray, element: metric_types.StandardMetricInputs) -> np.ndarray:
        labels, predictions, _ = next(metric_util.to_label_prediction_example_weight(
            element, eval_config=self._eval_config, model_name=self._key.model_name,
            output_name=self._key.output_name, flatten=False, allow_none=True, require_single_example_weight=True))
        if labels is None:
            return accumulator
        user_auc = metrics.roc_auc(np.asarray(labels).ravel(), np.asarray(predictions).ravel())
        if not np.isnan(user_auc):
            impressions = np.asarray(labels).size
            accumulator += (impressions * user_auc, impressions)
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[np.ndarray]) -> np.ndarray:
        return np.sum(list(accumulators), axis=0)

    def extract_output(self, accumulator: np.ndarray) -> dict:
        weighted, impressions = accumulator
        return {self._key: weighted / impressions if impressions else float("nan")}
