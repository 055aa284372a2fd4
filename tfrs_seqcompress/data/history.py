"""Leakage-safe history examples: turns an interaction log into one example per target event.

The history of a target holds only the same user's events **strictly before** the target's
timestamp (events sharing the target's timestamp are excluded too), at most the last L of them,
time ascending and right-aligned (padding first, most recent at index L-1; see ``features``).
Events of one user are ordered stably by (timestamp, item_id) so that sequences are deterministic
when timestamps tie.

``user_history_examples`` is the single implementation; ``build_history_examples`` applies it to a
whole in-memory log, and ``history_beam.BuildHistoryExamples`` applies it per user inside Beam.

Example::

    log = movielens.load_movielens_100k().log
    examples = build_history_examples(log, schema)        # dict of [N] / [N, L] int64 arrays
    train, test = split_by_time(examples, time_cutoff(log["timestamp"], eval_fraction=0.2))
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from tfrs_seqcompress import features as F


def sort_user_events(events: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Orders one user's events by (timestamp, item_id), stably."""
    order = np.lexsort((events[F.ITEM_ID], events[F.TIMESTAMP]))
    return {name: np.asarray(values)[order] for name, values in events.items()}


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


def user_history_examples(events: Mapping[str, np.ndarray], schema: F.DataSchema) -> dict[str, np.ndarray]:
    """Builds one history example per event of a single user.

    Args:
      events: one user's log columns (any order), each ``[n]``.
      schema: gives L (``history_length``), the event features and the context features.

    Returns:
      Example columns: target fields ``[n]`` and ``hist_*`` arrays ``[n, L]``, sorted by target time.
    """
    events = sort_user_events(events)
    timestamps = events[F.TIMESTAMP]
    length = schema.history_length
    # Number of events strictly earlier than each target; rows [start - L, start) form its history.
    start = np.searchsorted(timestamps, timestamps, side="left")
    gather, mask = last_positions(start, length)
    examples = {name: events[name].astype(np.int64) for name in F.TARGET_FIELDS + schema.context_features}
    examples[F.LABEL] = events[F.LABEL].astype(np.int64)
    for field in schema.history_fields:
        examples[F.history_name(field)] = np.where(mask, events[field][gather], 0).astype(np.int64)
    examples[F.HISTORY_MASK] = mask.astype(np.int64)
    return examples


def concat_examples(parts: list[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenates example column dicts along the batch axis."""
    if not parts:
        raise ValueError("No examples to concatenate.")
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


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
    columns = F.validate_log(log, schema)
    order = np.lexsort((columns[F.ITEM_ID], columns[F.TIMESTAMP], columns[F.USER_ID]))
    users = columns[F.USER_ID][order]
    boundaries = np.flatnonzero(np.diff(users)) + 1
    parts = []
    for user_rows in np.split(order, boundaries):
        part = user_history_examples({name: values[user_rows] for name, values in columns.items()}, schema)
        parts.append(part)
    examples = concat_examples(parts)
    if min_history:
        examples = select(examples, examples[F.HISTORY_MASK].sum(axis=1) >= min_history)
    return examples


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
