"""The one interface every history encoder shares, so the ranking model never special-cases one.

An encoder is a Keras layer called with a dict of tensors (keys below) and returning the
user-interest vector ``[batch_size, output_dim]``. It declares the keys it needs in
``required_inputs``; ``check_inputs`` raises a ``ValueError`` naming a missing key or a wrong rank
before any graph is built.

Keys (batch ``B``, history length ``L``, embedding size ``D``):

* ``history_embeddings``: ``[B, L, D]`` float, the ranking embeddings of the history events;
* ``history_mask``: ``[B, L]`` bool (or 0/1), true on real events, false on padding;
* ``candidate_embedding``: ``[B, D]`` float, the ranking embedding of the candidate item;
* ``history_category``: ``[B, L]`` int, each event's category (SIM-hard);
* ``candidate_category``: ``[B]`` int, the candidate's category (SIM-hard);
* ``history_tokens``: ``[B, L, d]`` float, IAT instance tokens of the history events;
* ``history_time_gap``: ``[B, L]`` int, seconds from each event to the request;
* ``history_item_id``: ``[B, L]`` int, each event's item ID (HiSAC looks up semantic IDs);
* ``candidate_item_id``: ``[B]`` int, the candidate's item ID.
"""
from __future__ import annotations

from typing import Mapping

import tensorflow as tf

HISTORY_EMBEDDINGS = "history_embeddings"
HISTORY_MASK = "history_mask"
CANDIDATE_EMBEDDING = "candidate_embedding"
HISTORY_CATEGORY = "history_category"
CANDIDATE_CATEGORY = "candidate_category"
HISTORY_TOKENS = "history_tokens"
HISTORY_TIME_GAP = "history_time_gap"
HISTORY_ITEM_ID = "history_item_id"
CANDIDATE_ITEM_ID = "candidate_item_id"
TIME_GAP_BUCKETS = 40

EXPECTED_RANKS = {HISTORY_EMBEDDINGS: 3, HISTORY_MASK: 2, CANDIDATE_EMBEDDING: 2,
                  HISTORY_CATEGORY: 2, CANDIDATE_CATEGORY: 1, HISTORY_TOKENS: 3, HISTORY_TIME_GAP: 2,
                  HISTORY_ITEM_ID: 2, CANDIDATE_ITEM_ID: 1}
SHAPE_NAMES = {HISTORY_EMBEDDINGS: "[batch, history_length, dim]", HISTORY_MASK: "[batch, history_length]",
               CANDIDATE_EMBEDDING: "[batch, dim]", HISTORY_CATEGORY: "[batch, history_length]",
               CANDIDATE_CATEGORY: "[batch]", HISTORY_TOKENS: "[batch, history_length, token_dim]",
               HISTORY_TIME_GAP: "[batch, history_length]", HISTORY_ITEM_ID: "[batch, history_length]",
               CANDIDATE_ITEM_ID: "[batch]"}


def safe_ids(ids: tf.Tensor, vocabulary_size: int) -> tf.Tensor:
    """IDs outside ``[0, vocabulary_size)`` become 0, the unknown ID (a documented serving
    fallback for items newer than the model; offline data is checked by ``features``)."""
    ids = tf.cast(ids, tf.int64)
    return tf.where((ids >= 0) & (ids < vocabulary_size), ids, tf.zeros_like(ids))


def event_feature_ids(values: tf.Tensor, vocabulary_size: int) -> tf.Tensor:
    """Embedding rows of an event feature's values (``hour``, ``device``, ``rating``, ...): value v
    at row v + 1, so a real 0 (an hour of 0) keeps a row of its own, and anything outside
    ``[0, vocabulary_size)`` (a value newer than the model) at row 0, unknown. The embedding has
    ``vocabulary_size + 1`` rows; history padding (0 under ``hist_mask`` 0) is masked by the encoders."""
    values = tf.cast(values, tf.int64)
    return tf.where((values >= 0) & (values < vocabulary_size), values + 1, tf.zeros_like(values))


def time_gap_buckets(seconds: tf.Tensor, buckets: int = TIME_GAP_BUCKETS) -> tf.Tensor:
    """``floor(log2(1 + seconds))`` clipped to ``[0, buckets)``; negative gaps count as 0.

    The time-decay signal of IAT's and HiSAC's history events (embedded per bucket)."""
    seconds = tf.maximum(tf.cast(seconds, tf.float32), 0.0)
    values = tf.floor(tf.math.log1p(seconds) / tf.math.log(2.0))
    return tf.cast(tf.minimum(values, buckets - 1), tf.int32)


class HistoryEncoder(tf.keras.layers.Layer):
    """Base class: ``call(inputs: dict[str, Tensor]) -> Tensor[batch_size, output_dim]``.

    Subclasses set ``required_inputs`` and implement ``encode``; ``call`` checks the inputs first.
    """

    required_inputs: tuple[str, ...] = (HISTORY_EMBEDDINGS, HISTORY_MASK, CANDIDATE_EMBEDDING)

    def check_inputs(self, inputs: Mapping[str, tf.Tensor]) -> None:
        """Raises ``ValueError`` naming the missing input or the one with the wrong rank / width."""
        if not isinstance(inputs, Mapping):
            raise ValueError(f"{type(self).__name__} takes a dict with keys {list(self.required_inputs)}, "
                             f"got {type(inputs).__name__}.")
        missing = [key for key in self.required_inputs if key not in inputs]
        if missing:
            raise ValueError(f"{type(self).__name__} needs input(s) {missing}; got {sorted(inputs)}.")
        for key in self.required_inputs:
            rank = inputs[key].shape.rank
            if rank is not None and rank != EXPECTED_RANKS[key]:
                raise ValueError(f"{type(self).__name__}: input {key!r} must have shape {SHAPE_NAMES[key]}, "
                                 f"got shape {inputs[key].shape}.")
        history_dim = inputs[HISTORY_EMBEDDINGS].shape[-1]
        candidate_dim = inputs[CANDIDATE_EMBEDDING].shape[-1]
        if history_dim is not None and candidate_dim is not None and history_dim != candidate_dim:
            raise ValueError(f"{type(self).__name__}: 'history_embeddings' dim {history_dim} differs from "
                             f"'candidate_embedding' dim {candidate_dim}; expected the same D.")

    def call(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        self.check_inputs(inputs)
        return self.encode(inputs)

    def encode(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        raise NotImplementedError


def computes_agents(encoder: object) -> bool:
    """Whether ``encoder`` compresses a history into agents (``compute_agents`` / ``attend_agents``); a
    wrapper such as ``WithShortTermBase`` answers for the encoder it wraps."""
    return encoder is not None and hasattr(encoder, "compute_agents") and bool(getattr(encoder, "computes_agents", True))
