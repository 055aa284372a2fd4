"""The history-example builder as an Apache Beam ``PTransform``, so it scales past one machine.

It groups events by user (one user's history must fit one worker: 10^4-10^5 events is fine) and
builds each user's chosen targets with the same ``history.HistoryIndex`` as the in-memory path, so
both give identical examples. The time cutoff comes from two global combiners (min/max timestamp), as a side input.

Example::

    with beam.Pipeline() as pipeline:
        events = pipeline | beam.io.ReadFromTFRecord(pattern) | beam.Map(parse_log_example, columns)
        outputs = events | BuildHistoryExamples(schema, eval_fraction=0.2)
        outputs["train"] | beam.io.WriteToTFRecord(...)   # serialized tf.Example
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping

import apache_beam as beam
import numpy as np

from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import history


def parse_log_example(serialized: bytes, columns: tuple[str, ...]) -> dict[str, int]:
    """One log event from a serialized ``tf.Example`` (as CsvExampleGen / ImportExampleGen write).

    Raises:
      ValueError: a contract column is missing or is not a single int64 value.
    """
    import tensorflow as tf

    example = tf.train.Example.FromString(serialized)
    feature_map = example.features.feature
    event = {}
    for name in columns:
        if name not in feature_map:
            raise ValueError(f"Interaction log event is missing column {name!r}; expected columns {list(columns)}, "
                             f"got {sorted(feature_map)}.")
        values = feature_map[name].int64_list.value
        if len(values) != 1:
            kind = feature_map[name].WhichOneof("kind")
            raise ValueError(f"Interaction log column {name!r} must be one int64 per event, got {kind} "
                             f"with {len(values) or 'no'} int64 value(s).")
        event[name] = int(values[0])
    return event


def event_columns(event_features: tuple[str, ...], target_column: str | None = None) -> tuple[str, ...]:
    """The log columns the history builder reads: the contract's, the event features and, when
    given, the 0/1 column marking the ranking targets."""
    return F.LOG_COLUMNS + tuple(event_features) + ((target_column,) if target_column else ())


def sampled_targets(user: int, count: int, per_user: int | None, seed: int = 0) -> np.ndarray:
    """Which of a user's ``count`` events (in target-time order) are ranking targets: all of them,
    or ``per_user`` drawn uniformly, seeded by (seed, user) so every run draws the same ones."""
    if not per_user or count <= per_user:
        return np.arange(count)
    return np.sort(np.random.default_rng([seed, int(user)]).choice(count, per_user, replace=False))


def _user_examples(grouped: tuple[int, Iterable[Mapping[str, int]], Iterable[tuple]], spec: F.ExampleSpec,
                   columns: tuple[str, ...], token_rows=None, targets_per_user: int | None = None,
                   seed: int = 0, target_column: str | None = None,
                   search: tuple[int, int, int] | None = None,
                   user_eval_fraction: float | None = None) -> Iterable[tuple[int, int | None, bytes]]:
    user, events, tokens = grouped
    events = list(events)
    if not events:
        return
    log = {name: np.array([event[name] for event in events], dtype=np.int64) for name in columns}
    F.validate_log(log, event_features=tuple(spec.event_features))
    index = history.HistoryIndex(log, spec if search is None else dataclasses.replace(spec, history_length=search[2]))
    candidates = (np.flatnonzero(index.events[target_column] == 1) if target_column  # in target-time order
                  else np.arange(len(index)))
    rows = candidates[sampled_targets(user, len(candidates), targets_per_user, seed)]
    if not len(rows):
        return
    arrays = {"token": token_rows(user, index.events, list(tokens), spec.token_dim)} if spec.token_dim else None
    if search is None:
        examples = index.examples(rows, arrays)
    else:  # the latest events plus the latest earlier ones of the target's category, within the last L
        examples = index.search_examples(rows, search[0], search[1], index.events[F.CATEGORY], arrays)
    if spec.token_dim:
        examples[F.TOKEN_VERSION] = np.full(len(rows), F.token_version_id(spec.token_version), np.int64)
    # The user's own cutoff (split rule "user_time"), else None: the global one applies.
    cutoff = (None if user_eval_fraction is None else
              history.cutoff_from_range(int(log[F.TIMESTAMP].min()), int(log[F.TIMESTAMP].max()), user_eval_fraction))
    for timestamp, serialized in zip(examples[F.TIMESTAMP], F.to_tf_examples(examples)):
        yield int(timestamp), cutoff, serialized


class _MaxId(beam.CombineFn):
    """Per-column maximum ID over all events (vocabulary size = max + 1)."""

    def __init__(self, columns: tuple[str, ...]):
        self._columns = columns

    def create_accumulator(self):
        return {name: 0 for name in self._columns}

    def add_input(self, accumulator, event):
        return {name: max(accumulator[name], event[name]) for name in self._columns}

    def merge_accumulators(self, accumulators):
        merged = self.create_accumulator()
        for accumulator in accumulators:
            merged = {name: max(merged[name], accumulator[name]) for name in self._columns}
        return merged

    def extract_output(self, accumulator):
        return accumulator


class BuildHistoryExamples(beam.PTransform):
    """Event dicts -> ``{"train": serialized tf.Example, "eval": ..., "max_ids": {column: max}}``.

    For IAT (``schema.token_dim > 0``) the input is ``{"events": ..., "tokens": ...}`` with token
    records ``(user_id, (timestamp, item_id, token))`` (``token_beam.parse_token_record``); each
    example then carries ``hist_token``, gathered at the same positions as the history, and
    ``token_version`` (of ``schema.token_version``). ``token_rows`` puts a user's records in the
    order of the user's events (IAT's ``iat.token_beam.user_token_rows``: this data-layer module
    does not import the methods).

    Args:
      schema: an ``F.ExampleSpec`` (L, event and context features, tokens), or a ``DataSchema``
        (its ``example_spec`` is used: ``max_ids`` reports the vocabularies the data holds).
      eval_fraction: the last fraction of the time range whose targets go to ``"eval"``.
      token_rows: ``(user, sorted_events, token_records, token_dim) -> [num_events, token_dim]``,
        needed when ``schema.token_dim > 0``.
      targets_per_user: rank at most this many of each user's events (``sampled_targets``; the
        same draw in every run and in both splits' periods); None or 0 ranks every event. Each
        target's history is still every earlier event (the last L).
      seed: of that draw.
      target_column: a 0/1 column of the events marking the ranking targets (the others are
        history only); sampling then draws among the marked events. None: every event.
      search_window: ``(recent, retrieved)``: bounded histories instead of the last L. Each
        example holds the ``recent`` latest events plus the ``retrieved`` latest earlier events of
        the target's category (SIM's hard search), searched over the last ``search_depth`` events
        (``HistoryIndex.search_examples``); ``schema.history_length`` must be ``recent + retrieved``.
      search_depth: the L the search reaches back over (>= ``recent + retrieved``).
      split_rule: ``"time"`` (the last ``eval_fraction`` of the log's time range is eval) or
        ``"user_time"`` (the last ``eval_fraction`` of each user's own range: ``history.SPLIT_RULES``).
    """

    def __init__(self, schema: F.ExampleSpec | F.DataSchema, eval_fraction: float, token_rows=None,
                 targets_per_user: int | None = None, seed: int = 0, target_column: str | None = None,
                 search_window: tuple[int, int] | None = None, search_depth: int | None = None,
                 split_rule: str = "time"):
        super().__init__()
        history.check_eval_fraction(eval_fraction)
        history.check_split_rule(split_rule)
        self._split_rule = split_rule
        if schema.token_dim and token_rows is None:
            raise ValueError("schema.token_dim > 0: pass token_rows (iat.token_beam.user_token_rows).")
        self._token_rows = token_rows
        self._search = None
        if search_window is not None:
            window = tuple(search_window)
            if len(window) != 2 or not all(isinstance(size, (int, np.integer)) for size in window):
                raise ValueError(f"search_window must be two ints (recent, retrieved), got {search_window!r}.")
            recent, retrieved = window
            depth = search_depth or schema.history_length
            if recent < 0 or retrieved < 0 or recent + retrieved != schema.history_length or depth < recent + retrieved:
                raise ValueError(f"search_window (recent, retrieved) = {tuple(search_window)} must be >= 0 and add up "
                                 f"to the examples' L = {schema.history_length}, within search_depth = {depth}.")
            self._search = (int(recent), int(retrieved), int(depth))
        if targets_per_user is not None and targets_per_user < 0:
            raise ValueError(f"targets_per_user must be >= 0 (0: every event), got {targets_per_user}.")
        self._targets_per_user, self._seed = targets_per_user, seed
        self._spec = schema.example_spec if isinstance(schema, F.DataSchema) else schema
        self._eval_fraction = eval_fraction
        self._target_column = target_column or None
        self._columns = event_columns(tuple(schema.event_features), target_column)

    def expand(self, inputs):
        events, tokens = (inputs["events"], inputs.get("tokens")) if isinstance(inputs, dict) else (inputs, None)
        if self._spec.token_dim and tokens is None:
            raise ValueError(f"schema.token_dim is {self._spec.token_dim}: pass {{'events': ..., 'tokens': ...}} "
                             "with the token records keyed by user.")
        timestamps = events | "Timestamps" >> beam.Map(lambda event: event[F.TIMESTAMP])
        min_timestamp = timestamps | "MinTime" >> beam.CombineGlobally(min)
        max_timestamp = timestamps | "MaxTime" >> beam.CombineGlobally(max)
        id_columns = (F.USER_ID, F.ITEM_ID, F.CATEGORY) + tuple(self._spec.event_features)
        max_ids = events | "MaxIds" >> beam.CombineGlobally(_MaxId(id_columns))
        keyed = events | "KeyByUser" >> beam.Map(lambda event: (event[F.USER_ID], event))
        if tokens is None:
            grouped = (keyed | "GroupByUser" >> beam.GroupByKey()
                       | "NoTokens" >> beam.Map(lambda user_events: (user_events[0], user_events[1], [])))
        else:
            grouped = ({"events": keyed, "tokens": tokens} | "GroupByUser" >> beam.CoGroupByKey()
                       | "Unpack" >> beam.Map(lambda kv: (kv[0], kv[1]["events"], kv[1]["tokens"])))
        eval_fraction_of_users = self._eval_fraction if self._split_rule == "user_time" else None
        examples = grouped | "BuildPerUser" >> beam.FlatMap(_user_examples, self._spec, self._columns,
                                                            self._token_rows, self._targets_per_user, self._seed,
                                                            self._target_column, self._search,
                                                            eval_fraction_of_users)
        eval_fraction = self._eval_fraction

        def which_split(timestamped, num_partitions, min_ts, max_ts):
            timestamp, user_cutoff, _ = timestamped
            cutoff = history.cutoff_from_range(min_ts, max_ts, eval_fraction) if user_cutoff is None else user_cutoff
            return history.SPLITS.index(history.split_name(timestamp, cutoff))

        train, evaluation = examples | "SplitByTime" >> beam.Partition(
            which_split, len(history.SPLITS),
            min_ts=beam.pvalue.AsSingleton(min_timestamp), max_ts=beam.pvalue.AsSingleton(max_timestamp))
        return {
            "train": train | "DropTimeTrain" >> beam.Map(lambda timestamped: timestamped[2]),
            "eval": evaluation | "DropTimeEval" >> beam.Map(lambda timestamped: timestamped[2]),
            "max_ids": max_ids,
        }
