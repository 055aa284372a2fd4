"""Leakage-safe history examples: turns an interaction log into one example per target event.

The history of a target holds only the same user's events **strictly before** the target's
timestamp (events sharing the target's timestamp are excluded too), at most the last L of them,
time ascending and right-aligned (padding first, most recent at index L-1; see ``features``).
Events of one user are ordered stably by (timestamp, item_id) so that sequences are deterministic
when timestamps tie.

``HistoryIndex`` is the single implementation: ``build_history_examples`` applies it to a whole
in-memory log, ``history_beam.BuildHistoryExamples`` to each user's chosen targets inside Beam, and ``tf_data.dataset_from_history_index`` to a batch of targets at a
time (long histories, where every example's ``[L]`` arrays would not fit in memory).

Example::

    log = movielens.load_movielens_100k().log
    examples = build_history_examples(log, schema)        # dict of [N] / [N, L] int64 arrays
    train, test = split_by_time(examples, time_cutoff(log["timestamp"], eval_fraction=0.2))
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

from tfrs_seqcompress import features as F


def last_positions(end: np.ndarray, length: int, first: np.ndarray | int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The right-aligned window of the last ``length`` rows before each ``end``.

    Args:
      end: ``[N]`` index one past each history's most recent row.
      length: L.
      first: ``[N]`` (or scalar) first row each history may use (its user's first row).

    Returns:
      ``gather [N, L]`` row indices (0 on padding, safe to index with) and ``mask [N, L]`` bool,
      padding first. Shared by the history builder and the IAT token store so that their
      histories line up position by position.
    """
    positions = np.asarray(end)[:, None] - length + np.arange(length)[None, :]
    first = np.asarray(first)
    mask = positions >= (first[:, None] if first.ndim else first)
    return np.where(mask, positions, 0), mask


class HistoryIndex:
    """History examples built on demand for any target rows of a log (the single implementation).

    Sorts the log once by (user, timestamp, item) and records, for every event, the row of its
    user's first event and the row one past its history (the user's events strictly earlier than
    it). ``examples(rows)`` then gathers the right-aligned last-L histories of just those targets —
    so a long-history dataset (L = 10,000) can feed training batch by batch (``tf_data.
    dataset_from_history_index``) instead of materialising ``[N, L]`` arrays for every event.

    Args:
      log: interaction log columns (one user or many; already validated).
      schema: gives L, the event features and the context features.

    Example::

        index = HistoryIndex(log, schema)
        batch = index.examples(np.arange(512))   # the first 512 events in (user, time) order
    """

    def __init__(self, log: Mapping[str, np.ndarray], schema: F.DataSchema | F.ExampleSpec):
        self.schema = schema
        order = np.lexsort((log[F.ITEM_ID], log[F.TIMESTAMP], log[F.USER_ID]))
        self.events = {name: np.asarray(values)[order] for name, values in log.items()}
        users, timestamps = self.events[F.USER_ID].astype(np.int64), self.events[F.TIMESTAMP].astype(np.int64)
        # (user, time) as one sortable key: rows of a user with a smaller time come first.
        keys = users * (int(timestamps.max(initial=0)) - int(timestamps.min(initial=0)) + 1) \
            + (timestamps - timestamps.min(initial=0))
        self.first = np.searchsorted(users, users, side="left")
        self.start = np.searchsorted(keys, keys, side="left")

    def __len__(self) -> int:
        return len(self.start)

    def examples(self, rows: np.ndarray | None = None, event_arrays: Mapping[str, np.ndarray] | None = None,
                 length: int | None = None) -> dict[str, np.ndarray]:
        """Example columns of the targets at ``rows`` (indices into the sorted log; None: all).

        Args:
          rows: target rows of the sorted log (``self.events``).
          event_arrays: optional per-event arrays ``[num_events, ...]`` in the sorted log's row
            order (e.g. IAT tokens), gathered like the history as ``hist_<name>`` ``[n, L, ...]``.
          length: the window, when shorter than the schema's L (e.g. the last 50 events for an
            encoder that reads no more): the same last events, built at that cost.

        Returns:
          Target fields ``[n]`` and ``hist_*`` / ``hist_mask`` arrays ``[n, L]`` (``[n, length]``), int64.
        """
        rows = np.arange(len(self)) if rows is None else np.asarray(rows)
        if length is not None and not 1 <= length <= self.schema.history_length:
            raise ValueError(f"length must lie in [1, L = {self.schema.history_length}], got {length}.")
        gather, mask = last_positions(self.start[rows], length or self.schema.history_length, first=self.first[rows])
        return self._gathered(rows, gather, mask, event_arrays)

    def search_examples(self, rows: np.ndarray, recent: int, retrieved: int, event_keys: np.ndarray,
                        event_arrays: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Bounded histories: each target's ``recent`` latest events plus the ``retrieved`` latest
        earlier events that share the target's key (SIM's hard search, e.g. by semantic ID).

        The search reaches back over the target's last ``schema.history_length`` events (L); the
        result is an ordinary history example of length ``recent + retrieved`` — time ascending,
        right-aligned, padding first — so any encoder reads it. Its cost per target does not grow
        with L: the search is two binary searches in a (user, key, time)-sorted copy of the rows.

        Args:
          rows: target rows of the sorted log.
          recent, retrieved: window sizes (>= 0, not both 0).
          event_keys: ``[num_events]`` int key of every event in the sorted log's order (the
            target's own key is its event's: a candidate's key must be known at request time).
          event_arrays: as in ``examples``.
        """
        if recent < 0 or retrieved < 0 or recent + retrieved < 1:
            raise ValueError(f"recent ({recent}) and retrieved ({retrieved}) must be >= 0 and not both 0.")
        rows = np.asarray(rows)
        start, first = self.start[rows], self.first[rows]
        recent_gather, recent_mask = last_positions(start, recent, first=first)
        search_first = np.maximum(first, start - self.schema.history_length)
        by_key, keys_sorted = self._key_order(np.asarray(event_keys))
        target_key = self._composite(rows, np.asarray(event_keys)[rows], 0)
        end = np.searchsorted(keys_sorted, target_key + np.maximum(start - recent, search_first), side="left")
        begin = np.searchsorted(keys_sorted, target_key + search_first, side="left")
        found, found_mask = last_positions(end, retrieved, first=begin)
        gather = np.concatenate([by_key[found], recent_gather], axis=1)
        mask = np.concatenate([found_mask, recent_mask], axis=1)
        order = np.argsort(mask, axis=1, kind="stable")  # padding first, events keep their time order
        return self._gathered(rows, np.take_along_axis(gather, order, 1), np.take_along_axis(mask, order, 1),
                              event_arrays)

    def _composite(self, rows: np.ndarray, keys: np.ndarray, position) -> np.ndarray:
        """``(user, key)`` group of ``rows`` times the event count, plus ``position``: one int64
        that sorts by user, then key, then row (rows are time-ordered within a user)."""
        groups = np.searchsorted(self._groups, self.events[F.USER_ID][rows].astype(np.int64) * self._key_span
                                 + (keys.astype(np.int64) - self._key_min))
        return groups * len(self) + position

    def _key_order(self, event_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows sorted by (user, key, row) and their composite keys; cached for the last keys given."""
        if getattr(self, "_cached_keys", None) is not event_keys:
            if event_keys.shape != (len(self),) or not np.issubdtype(event_keys.dtype, np.integer):
                raise ValueError(f"event_keys must be [num_events={len(self)}] integers, got "
                                 f"{event_keys.shape} {event_keys.dtype}.")
            self._key_min = int(event_keys.min(initial=0))
            self._key_span = int(event_keys.max(initial=0)) - self._key_min + 1
            pair = self.events[F.USER_ID].astype(np.int64) * self._key_span + (event_keys.astype(np.int64) - self._key_min)
            self._groups = np.unique(pair)
            by_key = np.lexsort((np.arange(len(self)), pair))
            self._by_key = by_key
            self._keys_sorted = self._composite(by_key, event_keys[by_key], by_key)
            self._cached_keys = event_keys
        return self._by_key, self._keys_sorted

    def _gathered(self, rows, gather, mask, event_arrays) -> dict[str, np.ndarray]:
        examples = {name: self.events[name][rows].astype(np.int64)
                    for name in F.TARGET_FIELDS + self.schema.context_features}
        examples[F.LABEL] = self.events[F.LABEL][rows].astype(np.int64)
        for field in self.schema.history_fields:
            examples[F.history_name(field)] = np.where(mask, self.events[field][gather], 0).astype(np.int64)
        examples[F.HISTORY_MASK] = mask.astype(np.int64)
        for name, values in (event_arrays or {}).items():
            picked = values[gather]
            examples[F.history_name(name)] = np.where(mask.reshape(mask.shape + (1,) * (picked.ndim - 2)), picked,
                                                      0).astype(values.dtype)
        return examples


def request_history(events: Mapping[str, np.ndarray], user_id: int, request_time: int, schema: F.DataSchema,
                    event_arrays: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """A user's history at request time, built from raw events exactly as training histories are.

    Takes the user's events strictly before ``request_time`` (events at that second are left out,
    as for a training target), orders them by (timestamp, item ID), keeps the last L and
    right-aligns them. What a serving request needs besides its candidates.

    Args:
      events: log columns (any users, any order): at least the contract's columns and the
        schema's event features.
      user_id, request_time: whose history, as of when.
      schema: gives L and the event features.
      event_arrays: optional per-event arrays aligned with ``events`` (e.g. tokens ``[n, d]``),
        returned as ``hist_<name>``.

    Returns:
      ``user_id`` and every ``hist_*`` / ``hist_mask`` array ``[L]`` (``[L, ...]`` for event arrays).

    Example::

        user = request_history(log, user_id=7, request_time=1_700_000_000, schema=schema)
        serialized = serving_client.candidate_examples(user, candidates, schema)
    """
    missing = [name for name in schema.history_fields + (F.USER_ID,) if name not in events]
    if missing:
        raise ValueError(f"request_history needs event column(s) {missing}; got {sorted(events)}.")
    rows = np.flatnonzero((np.asarray(events[F.USER_ID]) == user_id)
                          & (np.asarray(events[F.TIMESTAMP]) < request_time))
    rows = rows[np.lexsort((np.asarray(events[F.ITEM_ID])[rows], np.asarray(events[F.TIMESTAMP])[rows]))]
    rows = rows[len(rows) - min(len(rows), schema.history_length):]
    length, count = schema.history_length, len(rows)
    user = {F.USER_ID: np.int64(user_id)}
    for field in schema.history_fields:
        column = np.zeros(length, np.int64)
        column[length - count:] = np.asarray(events[field])[rows]
        user[F.history_name(field)] = column
    user[F.HISTORY_MASK] = (np.arange(length) >= length - count).astype(np.int64)
    for name, values in (event_arrays or {}).items():
        values = np.asarray(values)
        column = np.zeros((length,) + values.shape[1:], values.dtype)
        column[length - count:] = values[rows]
        user[F.history_name(name)] = column
    return user


def request_search_history(events: Mapping[str, np.ndarray], user_id: int, request_time: int,
                           schema: F.DataSchema, recent: int, retrieved: int, event_keys: np.ndarray,
                           candidate_key: int, event_arrays: Mapping[str, np.ndarray] | None = None,
                           within_last: int | None = None) -> dict[str, np.ndarray]:
    """``request_history`` for a model trained on ``HistoryIndex.search_examples`` windows: the
    user's ``recent`` latest events before ``request_time`` plus the ``retrieved`` latest earlier
    events (within the last L) whose key equals the candidate's. The window depends on the
    candidate, so build one per candidate key.

    Args:
      events, user_id, request_time, schema, event_arrays: as ``request_history``.
      recent, retrieved: the window the model was trained with.
      event_keys: ``[n]`` key of every event of ``events`` (e.g. its item's semantic ID).
      candidate_key: the candidate's key.
      within_last: how many of the latest events the search reaches back over, as in training
        (the L of ``search_examples``; the pipeline records it as the schema artefact's
        ``search_window["within_last"]``). Default ``schema.history_length``: pass it whenever
        the model's schema is the window's (L = ``recent + retrieved``, as the pipeline's is).

    Returns:
      ``user_id`` and the ``hist_*`` / ``hist_mask`` arrays ``[recent + retrieved]``.
    """
    if within_last is not None:
        schema = dataclasses.replace(schema, history_length=within_last)
    window = request_history(events, user_id, request_time, schema,
                             {**(event_arrays or {}), "_key": np.asarray(event_keys)})
    mask = window[F.HISTORY_MASK].astype(bool)
    positions = np.flatnonzero(mask)
    newest = positions[len(positions) - min(len(positions), recent):]
    older = positions[:len(positions) - len(newest)]
    older = older[window[F.history_name("_key")][older] == candidate_key]
    chosen = np.concatenate([older[len(older) - min(len(older), retrieved):], newest])
    length = recent + retrieved
    user = {F.USER_ID: np.int64(user_id)}
    for name, values in window.items():
        if name == F.USER_ID or name == F.history_name("_key"):
            continue
        column = np.zeros((length,) + values.shape[1:], values.dtype)
        column[length - len(chosen):] = values[chosen]
        user[name] = column
    return user


def build_history_examples(log: Mapping[str, np.ndarray], schema: F.DataSchema,
                           min_history: int = 0) -> dict[str, np.ndarray]:
    """Builds history examples for every event of an in-memory log.

    Args:
      log: interaction log columns (validated against ``schema``).
      schema: the dataset's schema (L, vocabularies, event and context features).
      min_history: drop targets with fewer earlier events than this (0 keeps every event,
        including each user's first, whose history is fully masked).

    Returns:
      Example columns sorted by (user, target time).
    """
    index = HistoryIndex(F.validate_log(log, schema), schema)
    rows = np.arange(len(index))
    if min_history:
        rows = rows[index.start - index.first >= min_history]
    return index.examples(rows)


def select(examples: Mapping[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """Rows of every column (a boolean mask or index array)."""
    return {name: values[rows] for name, values in examples.items()}


def time_cutoff(timestamps: np.ndarray, eval_fraction: float) -> int:
    """The time splitting train from eval: the last ``eval_fraction`` of the time range is eval.

    Raises:
      ValueError: ``eval_fraction`` outside (0, 1) or no timestamps.
    """
    check_eval_fraction(eval_fraction)
    timestamps = np.asarray(timestamps)
    if timestamps.size == 0:
        raise ValueError("Cannot split an empty log by time.")
    return cutoff_from_range(int(timestamps.min()), int(timestamps.max()), eval_fraction)


def check_eval_fraction(eval_fraction: float) -> None:
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must lie in (0, 1), got {eval_fraction}.")


def cutoff_from_range(min_timestamp: int | np.ndarray, max_timestamp: int | np.ndarray,
                      eval_fraction: float) -> int | np.ndarray:
    """``time_cutoff`` from the range alone (what the Beam job computes with two combiners); given
    arrays of ranges (one per user), an array of cutoffs."""
    low, high = np.asarray(min_timestamp, np.int64), np.asarray(max_timestamp, np.int64)
    cutoff = np.round(high - eval_fraction * (high - low)).astype(np.int64)
    return int(cutoff) if cutoff.ndim == 0 else cutoff


SPLITS = ("train", "eval")
# How targets are split: "time", the last eval fraction of the log's time range is eval (one cutoff
# for everyone: no training target is later than an eval one); "user_time", the last eval fraction of
# each user's own time range (every user is in both splits, as in leave-last-out evaluation).
SPLIT_RULES = ("time", "user_time")


def check_split_rule(rule: str) -> None:
    if rule not in SPLIT_RULES:
        raise ValueError(f"Unknown split rule {rule!r}; expected one of {list(SPLIT_RULES)}.")


def user_time_cutoffs(user_ids: np.ndarray, timestamps: np.ndarray, eval_fraction: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``(users, cutoffs)``: each user's own cutoff (``cutoff_from_range`` over the user's events),
    users sorted; look one up with ``cutoffs[np.searchsorted(users, user)]``."""
    check_eval_fraction(eval_fraction)
    users, inverse = np.unique(np.asarray(user_ids, np.int64), return_inverse=True)
    timestamps = np.asarray(timestamps, np.int64)
    first = np.full(len(users), np.iinfo(np.int64).max)
    last = np.full(len(users), np.iinfo(np.int64).min)
    np.minimum.at(first, inverse, timestamps)
    np.maximum.at(last, inverse, timestamps)
    return users, cutoff_from_range(first, last, eval_fraction)


def event_cutoffs(log_user_ids: np.ndarray, log_timestamps: np.ndarray, eval_fraction: float, rule: str = "time",
                  user_ids: np.ndarray | None = None) -> np.ndarray | int:
    """The cutoff that applies to each of ``user_ids`` (default: the log's events) under ``rule``:
    one int for ``"time"``, an array for ``"user_time"``; a target trains iff its time < its cutoff
    (``split_by_time``), an event belongs to the training period likewise."""
    check_split_rule(rule)
    if rule == "time":
        return time_cutoff(log_timestamps, eval_fraction)
    users, cutoffs = user_time_cutoffs(log_user_ids, log_timestamps, eval_fraction)
    query = np.asarray(log_user_ids if user_ids is None else user_ids, np.int64)
    position = np.minimum(np.searchsorted(users, query), len(users) - 1)
    if not np.array_equal(users[position], query):
        raise ValueError("event_cutoffs: some user_ids have no event in the log (no time range to split).")
    return cutoffs[position]


def split_name(target_timestamp: int, cutoff: int) -> str:
    """``"train"`` for targets before ``cutoff``, else ``"eval"``."""
    return SPLITS[0] if target_timestamp < cutoff else SPLITS[1]


def split_by_time(examples: Mapping[str, np.ndarray], cutoff: int | np.ndarray
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(train, eval): targets before ``cutoff`` train, the rest evaluate. Histories may reach
    back into the training period (that is the past, not leakage). ``cutoff``: one time, or one
    per example (``event_cutoffs(..., rule="user_time", user_ids=examples["user_id"])``)."""
    is_train = examples[F.TIMESTAMP] < cutoff
    return select(examples, is_train), select(examples, ~is_train)
