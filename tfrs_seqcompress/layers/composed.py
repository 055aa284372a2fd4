"""HiSAC over IAT instance tokens: the two methods composed (neither paper does this).

Which role the tokens take. HiSAC decouples a *semantic* space (where voting and routing happen)
from the *ranking* values that get aggregated into the agents. The tokens go on the ranking side:

* voting needs discrete hierarchical codes shared by every user and by the candidate; an instance
  token belongs to one past event, and the candidate, at request time, has no token yet (its
  outcome is what is being predicted), so it could not be routed to an agent in token space;
* the codebook stays a function of item content only, fitted once per catalogue version; a new
  source model (a new token version) does not force a new codebook and new semantic IDs;
* what a token adds is exactly what HiSAC's ranking values lack: the whole instance — context and
  how the user reacted — compressed by a model trained on the click loss.

So each event's routed value is HiSAC's (item + outcome embedding + semantic-ID embedding + time
gap) plus ``gate * adapter(token)``; the gate starts at 0, as in ``IATEncoder``, so training starts
from plain HiSAC and learns how much the tokens add. Agents stay precomputable: ``compute_agents``
reads the history's tokens once per user, ``attend_agents`` (per candidate) never sees them.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import tensorflow as tf

from tfrs_seqcompress import registry
from tfrs_seqcompress.layers import base
from tfrs_seqcompress.layers.hisac import HiSACEncoder, SemanticIds
from tfrs_seqcompress.layers.iat import check_tokens


@tf.keras.utils.register_keras_serializable(package="tfrs_seqcompress")
class HiSACTokenEncoder(HiSACEncoder):
    """HiSAC's voting and soft routing by item semantic IDs, over IAT instance tokens as ranking values.

    Inputs: those of ``HiSACEncoder`` plus ``history_tokens`` ``[B, L, token_dim]`` float (frozen:
    no gradient reaches the source model). Returns ``[B, D]``.

    Attributes:
      token_dim: d the tokens must have (a mismatch is refused before any graph is built).
      semantic_ids, fanouts, temperature, hidden_units: as ``HiSACEncoder``.

    Example::

        encoder = HiSACTokenEncoder(SemanticIds.from_codebook(codebook, item_vectors), token_dim=8)
        interest = encoder({"history_embeddings": h, "history_mask": m, "candidate_embedding": c,
                            "history_item_id": ids, "candidate_item_id": candidate_ids,
                            "history_tokens": tokens})
    """

    required_inputs = HiSACEncoder.required_inputs + (base.HISTORY_TOKENS,)

    def __init__(self, semantic_ids: SemanticIds | dict, token_dim: int = 16,
                 fanouts: Sequence[int] | None = registry.HISAC_FANOUTS, temperature: float = 1.0,
                 hidden_units: Sequence[int] = (64, 32), **kwargs):
        super().__init__(semantic_ids, fanouts=fanouts, temperature=temperature, hidden_units=hidden_units, **kwargs)
        self.token_dim = int(token_dim)

    def build(self, input_shape):
        dim = int(input_shape[base.CANDIDATE_EMBEDDING][-1])
        self.token_adapter = tf.keras.layers.Dense(dim, name="token_adapter")
        self.token_gate = self.add_weight(name="token_gate", shape=(), initializer="zeros")
        super().build(input_shape)

    def check_inputs(self, inputs: Mapping[str, tf.Tensor]) -> None:
        super().check_inputs(inputs)
        check_tokens(self, inputs[base.HISTORY_TOKENS])

    def ranking_values(self, inputs: Mapping[str, tf.Tensor], codes: tf.Tensor, known: tf.Tensor) -> tf.Tensor:
        """HiSAC's ranking values plus each event's gated, adapted instance token."""
        tokens = self.token_adapter(tf.stop_gradient(tf.cast(inputs[base.HISTORY_TOKENS], tf.float32)))
        return super().ranking_values(inputs, codes, known) + self.token_gate * tokens

    def get_config(self):
        return {**super().get_config(), "token_dim": self.token_dim}
