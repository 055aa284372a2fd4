"""Baseline history encoders: mean pooling, DIN over the last N or the full history, SIM-hard.

All share ``base.HistoryEncoder``'s interface and return ``[batch_size, dim]`` (the embedding
size D of the history). They are the yardsticks the compression methods are measured against
(docs/methods.md, "Baselines"): DIN over the full history is the quality ceiling that compression
approximates; DIN over the last N is what production usually affords.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import tensorflow as tf

from tfrs_seqcompress.layers import base
from tfrs_seqcompress.layers.attention import TargetAttention


@tf.keras.utils.register_keras_serializable(package="tfrs_seqcompress")
class MeanPoolingEncoder(base.HistoryEncoder):
    """The average ranking embedding of the real history events (zeros for an empty history).

    Example::

        encoder = MeanPoolingEncoder()
        interest = encoder({"history_embeddings": h, "history_mask": m, "candidate_embedding": c})
    """

    def encode(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        history = inputs[base.HISTORY_EMBEDDINGS]
        mask = tf.cast(inputs[base.HISTORY_MASK], history.dtype)
        total = tf.einsum("bl,bld->bd", mask, history)
        count = tf.reduce_sum(mask, axis=1, keepdims=True)
        return tf.math.divide_no_nan(total, count)


@tf.keras.utils.register_keras_serializable(package="tfrs_seqcompress")
class DINEncoder(base.HistoryEncoder):
    """DIN target attention over the last ``last_n`` history events, or all of them.

    Histories are right-aligned (most recent last, see ``features``), so the last N events are the
    last N positions.

    Attributes:
      last_n: how many of the most recent positions to attend over; None for the full history.
      hidden_units: sizes of the attention MLP.

    Example::

        encoder = DINEncoder(last_n=50)             # DIN last-50; DINEncoder() is DIN-full
        interest = encoder(inputs)                  # [batch_size, dim]
    """

    def __init__(self, last_n: int | None = None, hidden_units: Sequence[int] = (64, 32), **kwargs):
        super().__init__(**kwargs)
        if last_n is not None and last_n < 1:
            raise ValueError(f"last_n must be a positive int or None (full history), got {last_n}.")
        self.last_n = last_n
        self.hidden_units = tuple(hidden_units)
        self.attention = TargetAttention(self.hidden_units)

    def encode(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        history, mask = inputs[base.HISTORY_EMBEDDINGS], inputs[base.HISTORY_MASK]
        if self.last_n is not None:
            history, mask = history[:, -self.last_n:], mask[:, -self.last_n:]
        history, mask = self.attended_events(history, self.restrict_mask(inputs, mask))
        return self.attention(history, mask, inputs[base.CANDIDATE_EMBEDDING])

    def restrict_mask(self, inputs: Mapping[str, tf.Tensor], mask: tf.Tensor) -> tf.Tensor:
        """Which events may be attended to; all real ones here, subclasses narrow it."""
        return tf.cast(mask, tf.bool)

    def attended_events(self, history: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The ``[B, L', D]`` events the attention runs over and their ``[B, L']`` mask: all L here."""
        return history, mask

    def get_config(self):
        return {**super().get_config(), "last_n": self.last_n, "hidden_units": list(self.hidden_units)}


@tf.keras.utils.register_keras_serializable(package="tfrs_seqcompress")
class SimHardEncoder(DINEncoder):
    """SIM's hard search: DIN attention only over history events in the candidate's category.

    Reference: Pi et al., "Search-based User Interest Modeling with Lifelong Sequential Behavior
    Data for CTR Prediction" (SIM), CIKM 2020, §3.2 (hard search). Needs ``history_category``
    ``[B, L]`` and ``candidate_category`` ``[B]``; a user with no event in the category gets zeros.
    """

    required_inputs = base.HistoryEncoder.required_inputs + (base.HISTORY_CATEGORY, base.CANDIDATE_CATEGORY)

    def restrict_mask(self, inputs: Mapping[str, tf.Tensor], mask: tf.Tensor) -> tf.Tensor:
        categories = inputs[base.HISTORY_CATEGORY]
        if self.last_n is not None:
            categories = categories[:, -self.last_n:]
        candidate = tf.cast(inputs[base.CANDIDATE_CATEGORY], categories.dtype)
        return tf.logical_and(tf.cast(mask, tf.bool), tf.equal(categories, candidate[:, None]))

    def attended_events(self, history: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """What the search retrieved, in history order, moved to the front and cut at the batch's
        largest count ``M``: ``[B, M, D]``, ``[B, M]``. The attention is the same as over the masked
        history; its cost grows with the retrieved events, not with L, as SIM's does."""
        count = tf.reduce_max(tf.reduce_sum(tf.cast(mask, tf.int32), axis=1))
        retrieved_first = tf.argsort(tf.cast(tf.logical_not(mask), tf.int32), axis=1, stable=True)[:, :count]
        return tf.gather(history, retrieved_first, batch_dims=1), tf.gather(mask, retrieved_first, batch_dims=1)
