"""Target attention (DIN) and the masking helper every encoder shares.

Reference: Zhou et al., "Deep Interest Network for Click-Through Rate Prediction", KDD 2018, §4.3.
"""
from __future__ import annotations

from typing import Sequence

import tensorflow as tf

_MASKED_SCORE = -1e9
_MIN_PRIOR = 1e-9


def masked_softmax(scores: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Softmax over the last axis that gives padding exactly zero weight.

    Args:
      scores: ``[..., L]`` float.
      mask: ``[..., L]`` bool or 0/1; false on padding.

    Returns:
      ``[..., L]`` weights summing to 1 over real events, and all zeros on a fully masked row
      (an empty history contributes nothing rather than a uniform average of padding).
    """
    mask = tf.cast(mask, tf.bool)
    weights = tf.nn.softmax(tf.where(mask, scores, tf.cast(_MASKED_SCORE, scores.dtype)), axis=-1)
    return weights * tf.cast(mask, weights.dtype)


@tf.keras.utils.register_keras_serializable(package="tfrs_seqcompress")
class TargetAttention(tf.keras.layers.Layer):
    """DIN's local activation unit with softmax-normalised weights.

    Each history event ``h`` is scored against the candidate ``c`` by an MLP over
    ``[h, c, h - c, h * c]``; the weights are a masked softmax; the output is the weighted sum of
    the history. (DIN leaves the weights unnormalised; normalising keeps scale stable across
    history lengths, which matters when the same layer sees L = 50 and L = 10,000.)

    Attributes:
      hidden_units: sizes of the scoring MLP's hidden layers.
      activation: their activation.
    """

    def __init__(self, hidden_units: Sequence[int] = (64, 32), activation: str = "relu", **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = tuple(hidden_units)
        self.activation = activation
        self._scorer = tf.keras.Sequential(
            [tf.keras.layers.Dense(units, activation=activation) for units in self.hidden_units]
            + [tf.keras.layers.Dense(1)])

    def call(self, history: tf.Tensor, mask: tf.Tensor, candidate: tf.Tensor,
             prior: tf.Tensor | None = None) -> tf.Tensor:
        """Args: history ``[B, L, D]``, mask ``[B, L]``, candidate ``[B, D]``, optional ``prior``
        ``[B, L]`` (positive weights on real entries). Returns ``[B, D]``."""
        weights = self.attention_weights(history, mask, candidate, prior)
        return tf.einsum("bl,bld->bd", weights, history)

    def attention_weights(self, history: tf.Tensor, mask: tf.Tensor, candidate: tf.Tensor,
                          prior: tf.Tensor | None = None) -> tf.Tensor:
        """``[B, L]`` masked softmax weights of the history entries for the candidate.

        With a ``prior`` the weights are ``prior * exp(score)``, renormalised: an untrained scorer
        starts from the prior's weighted mean (e.g. HiSAC's agents weighted by their votes)."""
        candidate = tf.broadcast_to(candidate[:, None, :], tf.shape(history))
        pairs = tf.concat([history, candidate, history - candidate, history * candidate], axis=-1)
        scores = tf.squeeze(self._scorer(pairs), axis=-1)
        if prior is not None:
            scores += tf.math.log(tf.maximum(tf.cast(prior, scores.dtype), _MIN_PRIOR))
        return masked_softmax(scores, mask)

    def get_config(self):
        return {**super().get_config(), "hidden_units": list(self.hidden_units), "activation": self.activation}
