"""Leakage-safe history examples: turns an interaction log into one example per target event.

The history of a target holds only the same user's events **strictly before** the target's
timestamp (events sharing the target's timestamp are excluded too), at most the last L of them,
time ascending and right-aligned (padding first, most recent at index L-1; see ``features``).
Events of one user are ordered stably by (timestamp, item_id) so that sequences are deterministic
when timestamps tie.

``HistoryIndex`` is the single implementation: ``build_history_examples`` applies it to a whole
in-memory log, ``history_beam.BuildHistoryExamples`` to each user inside Beam (through
``user_history_examples``), and ``tf_data.dataset_from_history_index`` to a batch of targets at a
time (long histories, where every example's ``[L]`` arrays would not fit in memory).

Example::

    log = movielens.load_movielens_100k().log
    examples = build_history_examples(log, schema)        # dict of [N] / [N, L] int64 arrays
    train, test = split_by_time(examples, time_cutoff(log["timestamp"], eval_fraction=0.2))
"""
from __future__ import annotations

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

    def __init__(self, log: Mapping[str, np.ndarray], schema: F.DataSchema):
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

    def examples(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Example columns of the targets at ``rows`` (indices into the sorted log; None: all).

        Returns:
          Target fields ``[n]`` and ``hist_*`` / ``hist_mask`` arrays ``[n, L]``, int64.
        """
        rows = np.arange(len(self)) if rows is None else np.asarray(rows)
        gather, mask = last_positions(self.start[rows], self.schema.history_length, first=self.first[rows])
        examples = {name: self.events[name][rows].astype(np.int64)
                    for name in F.TARGET_FIELDS + self.schema.context_features}
        examples[F.LABEL] = self.events[F.LABEL][rows].astype(np.int64)
        for field in self.schema.history_fields:
            examples[F.history_name(field)] = np.where(mask, self.events[field][gather], 0).astype(np.int64)
        examples[F.HISTORY_MASK] = mask.astype(np.int64)
        return examples


def user_history_examples(events: Mapping[str, np.ndarray], schema: F.DataSchema) -> dict[str, np.ndarray]:
    """Builds one history example per event of a single user (what the Beam job calls per user).

    Args:
      events: one user's log columns (any order), each ``[n]``.
      schema: gives L (``history_length``), the event features and the context features.

    Returns:
      Example columns: target fields ``[n]`` and ``hist_*`` arrays ``[n, L]``, sorted by target time.
    """
    return HistoryIndex(events, schema).examples()


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


def cutoff_from_range(min_timestamp: int, max_timestamp: int, eval_fraction: float) -> int:
    """``time_cutoff`` from the range alone (what the Beam job computes with two combiners)."""
    return int(round(max_timestamp - eval_fraction * (max_timestamp - min_timestamp)))


SPLITS = ("train", "eval")


def split_name(target_timestamp: int, cutoff: int) -> str:
    """``"train"`` for targets before ``cutoff``, else ``"eval"``."""
    return SPLITS[0] if target_timestamp < cutoff else SPLITS[1]


def split_by_time(examples: Mapping[str, np.ndarray], cutoff: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(train, eval): targets before ``cutoff`` train, the rest evaluate. Histories may reach
    back into the training period (that is the past, not leakage)."""
    is_train = examples[F.TIMESTAMP] < cutoff
    return select(examples, is_train), select(examples, ~is_train)
