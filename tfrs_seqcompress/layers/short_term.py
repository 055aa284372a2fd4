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

    Inputs: whatever ``long_term`` needs (``required_inputs`` is its). Returns ``[B, D]``.

    Over an agent encoder (HiSAC, global clusters) the wrapper serves like it: ``compute_agents``
    once per user, then ``attend_agents`` per candidate with the user's latest ``recent_events``
    (= N) events beside the agents, O(K + N) per candidate whatever the history's length.

    Example::

        encoder = WithShortTermBase(HiSACEncoder.from_codebook(codebook, item_vectors), last_n=20)
        interest = encoder(inputs)                       # [batch_size, dim]
        agents = encoder.compute_agents(inputs)          # offline, once per user
        interest = encoder.attend_agents(agents["agent_vectors"], agents["agent_mask"], agents["agent_weights"],
                                         candidate, candidate_item_id, recent_embeddings=recent, recent_mask=mask)
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
        recent = self.recent_interest(inputs[base.HISTORY_EMBEDDINGS], inputs[base.HISTORY_MASK],
                                      inputs[base.CANDIDATE_EMBEDDING])
        return self.long_term(inputs) + recent

    def recent_interest(self, history: tf.Tensor, mask: tf.Tensor, candidate: tf.Tensor) -> tf.Tensor:
        """``[B, D]``: DIN over the last N of ``history`` ``[B, >= N, D]`` (``mask`` ``[B, >= N]``)."""
        return self.short_term(history[:, -self.last_n:], tf.cast(mask, tf.bool)[:, -self.last_n:], candidate)

    # ------------------------------------------------------------------ the agents path (agent encoders)

    @property
    def computes_agents(self) -> bool:
        """Whether the long-term encoder compresses the history into agents."""
        return base.computes_agents(self.long_term)

    @property
    def recent_events(self) -> int:
        """N: the latest events ``attend_agents`` reads beside the agents."""
        return self.last_n

    @property
    def num_agents(self) -> int:
        """K, the long-term encoder's agents (an ``AttributeError`` when it has none)."""
        if not self.computes_agents:
            raise AttributeError(f"{type(self.long_term).__name__} has no agents.")
        return self.long_term.num_agents

    def agent_dim(self, ranking_dim: int) -> int:
        """The width of one agent vector (the long-term encoder's)."""
        return self._agent_encoder().agent_dim(ranking_dim)

    def compute_agents(self, inputs: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """The long-term encoder's agents of the whole history (offline, once per user)."""
        return self._agent_encoder().compute_agents(inputs)

    def attend_agents(self, agent_vectors: tf.Tensor, agent_mask: tf.Tensor, agent_weights: tf.Tensor,
                      candidate_embedding: tf.Tensor, candidate_item_id: tf.Tensor,
                      recent_embeddings: tf.Tensor | None = None, recent_mask: tf.Tensor | None = None) -> tf.Tensor:
        """``[B, D]``: the long-term encoder's ``attend_agents`` plus DIN over the user's latest events
        (``recent_embeddings`` ``[B, >= N, D]``, ``recent_mask`` ``[B, >= N]``, right-aligned)."""
        if recent_embeddings is None or recent_mask is None:
            raise ValueError(f"{type(self).__name__} (last_n={self.last_n}) scores agents together with the user's "
                             f"latest {self.last_n} events: pass recent_embeddings and recent_mask.")
        length = recent_embeddings.shape[1]
        if length is not None and length < self.last_n:
            raise ValueError(f"recent_embeddings hold {length} events; {type(self).__name__} was trained on the latest "
                             f"{self.last_n} (pad older positions with a mask of 0).")
        interest = self._agent_encoder().attend_agents(agent_vectors, agent_mask, agent_weights, candidate_embedding,
                                                       candidate_item_id)
        return interest + self.recent_interest(recent_embeddings, recent_mask, candidate_embedding)

    def _agent_encoder(self) -> base.HistoryEncoder:
        """The long-term encoder, refused unless it computes agents."""
        if not self.computes_agents:
            raise ValueError(f"{type(self.long_term).__name__} has no agents to precompute (HiSAC and global "
                             "clusters do).")
        return self.long_term

    def check_codebook(self, codebook) -> None:
        if not hasattr(self.long_term, "check_codebook"):
            raise CodebookError(f"{type(self.long_term).__name__} uses no codebook.")
        self.long_term.check_codebook(codebook)

    def get_config(self):
        return {**super().get_config(), "long_term": tf.keras.layers.serialize(self.long_term),
                "last_n": self.last_n, "hidden_units": list(self.hidden_units)}
