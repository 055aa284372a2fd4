"""Target attention (DIN) and the masking helper every encoder shares.

Reference: Zhou et al., "Deep Interest Network for Click-Through Rate Prediction", KDD 2018, §4.3.
"""
from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from tfrs_seqcompress.layers import chunks

_MASKED_SCORE = -1e9
_MIN_PRIOR = 1e-9
# History events TargetAttention's MLP scores at a time in a longer history: [B, 1024, 4D] pairs.
SCORING_CHUNK_SIZE = 1024


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
      chunk_size: a longer history is scored this many events at a time (``scores``); the
        result does not depend on it, up to float rounding.
    """

    def __init__(self, hidden_units: Sequence[int] = (64, 32), activation: str = "relu",
                 chunk_size: int = SCORING_CHUNK_SIZE, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = tuple(hidden_units)
        self.activation, self.chunk_size = activation, chunks.checked_size(chunk_size)
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
        scores = self.scores(history, candidate)
        if prior is not None:
            scores += tf.math.log(tf.maximum(tf.cast(prior, scores.dtype), _MIN_PRIOR))
        return masked_softmax(scores, mask)

    def scores(self, history: tf.Tensor, candidate: tf.Tensor) -> tf.Tensor:
        """``[B, L]`` MLP scores. A history longer than ``chunk_size`` (or of unknown length) is
        scored ``chunk_size`` events at a time and the gradient recomputes each chunk's MLP, so the
        ``[B, L, 4D]`` pairs and the MLP's activations never exist whole."""
        if history.shape[1] is not None and history.shape[1] <= self.chunk_size:
            return self._pair_scores(history, candidate)
        if not self._scorer.built:   # no variable may be created inside the loop
            self._scorer.build(tf.TensorShape([None, None, 4 * history.shape[-1]]))
        # The MLP's variables enter as tensors, so the loops below read no variable (a while loop
        # cannot hand a variable's gradient out of a custom gradient).
        parameters = [tf.convert_to_tensor(weight) for dense in self._scorer.layers for weight in (dense.kernel, dense.bias)]
        return self._chunked_scores(history, candidate, *parameters)

    def _pair_scores(self, history: tf.Tensor, candidate: tf.Tensor, *parameters: tf.Tensor) -> tf.Tensor:
        """The MLP's scores of ``[B, L, D]`` events; with ``parameters`` (kernel, bias per layer) it
        runs on those tensors instead of the layers' variables."""
        candidate = tf.broadcast_to(candidate[:, None, :], tf.shape(history))
        pairs = tf.concat([history, candidate, history - candidate, history * candidate], axis=-1)
        if not parameters:
            return tf.squeeze(self._scorer(pairs), axis=-1)
        for dense, kernel, bias in zip(self._scorer.layers, parameters[::2], parameters[1::2]):
            pairs = dense.activation(tf.tensordot(pairs, kernel, axes=1) + bias)
        return tf.squeeze(pairs, axis=-1)

    @tf.custom_gradient
    def _chunked_scores(self, history: tf.Tensor, candidate: tf.Tensor, *parameters: tf.Tensor):
        size = self.chunk_size
        count = chunks.count(tf.shape(history)[1], size)
        inputs = [tf.stop_gradient(tensor) for tensor in (history, candidate, *parameters)]   # no tape keeps a chunk

        def score_chunk(i, written):                                                       # [size, B] each
            return i + 1, written.write(i, tf.transpose(self._pair_scores(chunks.take(inputs[0], i, size), *inputs[1:])))

        written, = chunks.loop(count, score_chunk, (chunks.pieces(history.dtype, count),))

        def gradient(d_scores):
            def chunk_gradient(i, d_history, *d_rest):
                events = chunks.take(history, i, size)
                with tf.GradientTape() as tape:
                    tape.watch([events, candidate, *parameters])
                    scores = self._pair_scores(events, candidate, *parameters)
                grads = tape.gradient(scores, [events, candidate, *parameters],
                                      output_gradients=chunks.take(d_scores, i, size))
                return (i + 1, d_history.write(i, tf.transpose(grads[0], [1, 0, 2])),
                        *[total + grad for total, grad in zip(d_rest, grads[1:])])

            d_history, *d_rest = chunks.loop(count, chunk_gradient, (chunks.pieces(history.dtype, count),
                                                                     *[tf.zeros_like(t) for t in (candidate, *parameters)]))
            return [chunks.joined(d_history, history.shape), *d_rest]

        return chunks.joined(written, history.shape[:2]), gradient

    def get_config(self):
        return {**super().get_config(), "hidden_units": list(self.hidden_units), "activation": self.activation,
                "chunk_size": self.chunk_size}
