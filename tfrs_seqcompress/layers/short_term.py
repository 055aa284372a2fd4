"""A long-term history encoder added to a short-term base: DIN over the last N events.

Both papers deploy their module *beside* a production model's short-term sequence features, not
instead of them: recent events carry most of the signal on many logs (on MovieLens, DIN over the
last 20-50 events beats attention over the whole history). ``WithShortTermBase`` gives any
encoder that base: its output is ``encoder(inputs) + DIN_last_N(inputs)``, so the long-term module
only has to add what recency misses.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import tensorflow as tf

from tfrs_seqcompress.hisac.codebook import CodebookError
from tfrs_seqcompress.layers import base
from tfrs_seqcompress.layers.attention import TargetAttention


@tf.keras.utils.register_keras_serializable(package="tfrs_seqcompress")
class WithShortTermBase(base.HistoryEncoder):
    """``long_term(inputs) + DIN over the last N events`` (same width D).

    Attributes:
      long_term: any ``HistoryEncoder`` returning ``[B, D]`` (HiSAC, IAT, ...).
      last_n: N, the recent events the base attends over.
      hidden_units: the base's attention MLP.

    Inputs: whatever ``long_term`` needs (``required_inputs`` is its). Returns ``[B, D]``. The
    precomputed-agents serving path needs the whole input here, so a wrapped HiSAC is served
    through ``serving_default`` (its recent events travel in the request).

    Example::

        encoder = WithShortTermBase(HiSACEncoder.from_codebook(codebook, item_vectors), last_n=20)
        interest = encoder(inputs)                       # [batch_size, dim]
    """

    def __init__(self, long_term: base.HistoryEncoder | dict, last_n: int = 20,
                 hidden_units: Sequence[int] = (64, 32), **kwargs):
        super().__init__(**kwargs)
        if isinstance(long_term, dict):
            long_term = tf.keras.layers.deserialize(long_term)
        if not isinstance(long_term, base.HistoryEncoder):
            raise ValueError(f"long_term must be a HistoryEncoder, got {type(long_term).__name__}.")
        if last_n < 1:
            raise ValueError(f"last_n must be a positive int, got {last_n}.")
        self.long_term, self.last_n, self.hidden_units = long_term, int(last_n), tuple(hidden_units)
        self.required_inputs = long_term.required_inputs
        self.short_term = TargetAttention(self.hidden_units, name="short_term_attention")

    @property
    def token_dim(self) -> int:
        return self.long_term.token_dim

    def check_inputs(self, inputs: Mapping[str, tf.Tensor]) -> None:
        self.long_term.check_inputs(inputs)

    def encode(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        history = inputs[base.HISTORY_EMBEDDINGS][:, -self.last_n:]
        mask = tf.cast(inputs[base.HISTORY_MASK], tf.bool)[:, -self.last_n:]
        recent = self.short_term(history, mask, inputs[base.CANDIDATE_EMBEDDING])
        return self.long_term(inputs) + recent

    def check_codebook(self, codebook) -> None:
        if not hasattr(self.long_term, "check_codebook"):
            raise CodebookError(f"{type(self.long_term).__name__} uses no codebook.")
        self.long_term.check_codebook(codebook)

    def get_config(self):
        return {**super().get_config(), "long_term": tf.keras.layers.serialize(self.long_term),
                "last_n": self.last_n, "hidden_units": list(self.hidden_units)}
