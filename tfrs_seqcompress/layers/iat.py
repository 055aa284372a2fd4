"""IAT (Instance-As-Token) layers: the token bottleneck, the Source Instance Transformer, stage 2.

Reference: "Instance-As-Token" (arXiv 2604.08933, 2026); docs/methods.md. Stage 1 compresses every
feature of a past interaction instance into one dense token ``sigmoid(W h + b)``; stage 2 runs a
sequence model over the user's last L tokens before the request.

Our design, where the paper leaves it open: a token compresses what was known at the instance's
request time (item, category, context features). Its *outcome* (click label, action type, dwell,
rating) cannot be inside it — the token is trained by that very click loss — so outcome features
travel beside the token as per-event side information, in the SIT during user-order training and
in the stage-2 encoder (``history_embeddings`` carries them there, with the item-ID embedding).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import tensorflow as tf

from tfrs_seqcompress.layers import base
from tfrs_seqcompress.layers.attention import TargetAttention

HISTORY_TOKENS = base.HISTORY_TOKENS
HISTORY_TIME_GAP = base.HISTORY_TIME_GAP


@tf.keras.utils.register_keras_serializable(package="tfrs_seqcompress")
class TokenBottleneck(tf.keras.layers.Layer):
    """The instance token: ``sigmoid(W h + b)``, IAT §3.1.

    Attributes:
      token_dim: d, the token size (64 in the paper; smaller for small data).

    ``call(h: [..., F]) -> [..., d]`` with values in (0, 1).
    """

    def __init__(self, token_dim: int = 16, **kwargs):
        super().__init__(**kwargs)
        if token_dim < 1:
            raise ValueError(f"token_dim must be >= 1, got {token_dim}.")
        self.token_dim = token_dim
        self.dense = tf.keras.layers.Dense(token_dim, activation="sigmoid")

    def call(self, instance_representation: tf.Tensor) -> tf.Tensor:
        return self.dense(instance_representation)

    def get_config(self):
        return {**super().get_config(), "token_dim": self.token_dim}


def strictly_earlier_mask(timestamps: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """``[B, T, T]`` bool: query t may attend to key j iff j is real and ``time[j] < time[t]``.

    Ties are excluded on purpose: instances of the same second never see each other, the same
    rule the history builder and the token store apply.
    """
    mask = tf.cast(mask, tf.bool)
    earlier = timestamps[:, None, :] < timestamps[:, :, None]
    return earlier & mask[:, None, :] & mask[:, :, None]


def check_tokens(encoder: base.HistoryEncoder, tokens: tf.Tensor) -> None:
    """Raises ``ValueError`` unless ``tokens`` are float ``[batch, history_length, encoder.token_dim]``."""
    name = type(encoder).__name__
    if tokens.shape[-1] is not None and tokens.shape[-1] != encoder.token_dim:
        raise ValueError(f"{name}: 'history_tokens' must have shape [batch, history_length, {encoder.token_dim}] "
                         f"(token_dim {encoder.token_dim}), got {tokens.shape}. Were the tokens made by another "
                         "source model?")
    if not tokens.dtype.is_floating:
        raise ValueError(f"{name}: 'history_tokens' must be float, got {tokens.dtype.name}.")


@tf.keras.utils.register_keras_serializable(package="tfrs_seqcompress")
class SourceInstanceTransformer(tf.keras.layers.Layer):
    """IAT's Source Instance Transformer (SIT): a strictly causal Transformer over a user's instances.

    Position t attends only to the same user's real instances strictly earlier in time, so
    changing a later instance never changes an earlier output. A position with no earlier instance
    gets a zero context (not a uniform average over padding or the future).

    Attributes:
      num_layers, num_heads, hidden_dim, dropout: the Transformer (2 layers in the paper).

    ``call(sequence [B, T, D], timestamps [B, T], mask [B, T], queries [B, T, D] = sequence)
    -> [B, T, D]``: the context of each instance built from its predecessors. ``sequence`` are the
    keys/values (a predecessor's token *and* its outcome); ``queries`` say what instance t asks
    with, and must hold nothing of t's outcome — otherwise t's own label would steer its attention
    weights. The input is not added back, so output t carries only what ``queries[t]`` selects
    from strictly earlier instances.
    """

    def __init__(self, num_layers: int = 2, num_heads: int = 2, hidden_dim: int = 64, dropout: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_layers, self.num_heads, self.hidden_dim, self.dropout = num_layers, num_heads, hidden_dim, dropout

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self._attention = [tf.keras.layers.MultiHeadAttention(self.num_heads, max(dim // self.num_heads, 1),
                                                              dropout=self.dropout) for _ in range(self.num_layers)]
        self._feed_forward = [tf.keras.Sequential([tf.keras.layers.Dense(self.hidden_dim, activation="relu"),
                                                   tf.keras.layers.Dense(dim)]) for _ in range(self.num_layers)]
        self._norms = [(tf.keras.layers.LayerNormalization(), tf.keras.layers.LayerNormalization())
                       for _ in range(self.num_layers)]
        super().build(input_shape)

    def call(self, sequence: tf.Tensor, timestamps: tf.Tensor, mask: tf.Tensor, queries: tf.Tensor | None = None,
             training: bool = False) -> tf.Tensor:
        queries = sequence if queries is None else queries
        attend = strictly_earlier_mask(timestamps, mask)
        has_past = tf.cast(tf.reduce_any(attend, axis=-1, keepdims=True), sequence.dtype)
        # Layer 1 reads the instances; later layers refine the per-position context (which, at key j,
        # depends only on instances before j and on queries[j]). Zeroing rows without a past keeps
        # causality: Keras would otherwise spread them uniformly over all keys.
        context = tf.zeros_like(sequence)
        for attention, feed_forward, (norm_1, norm_2) in zip(self._attention, self._feed_forward, self._norms):
            keys = sequence + context
            attended = attention(query=queries + context, value=keys, attention_mask=attend,
                                 training=training) * has_past
            context = norm_1(context + attended)
            context = norm_2(context + feed_forward(context)) * has_past
        return context

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers, "num_heads": self.num_heads,
                "hidden_dim": self.hidden_dim, "dropout": self.dropout}


@tf.keras.utils.register_keras_serializable(package="tfrs_seqcompress")
class IATEncoder(base.HistoryEncoder):
    """IAT stage 2: frozen instance tokens -> adapter (+ side information) -> Transformer -> target attention.

    As in the paper, the token path joins a base sequence model rather than replacing it: the
    output is ``DIN(history_embeddings) + gate * token_path``, with the scalar ``gate`` starting at
    0, so the encoder starts as DIN-full and learns how much the tokens add. (Adding adapted tokens
    straight onto the item embeddings instead spoiled DIN's item-to-candidate matching; see
    docs/methods.md.) ``include_base=False`` keeps the token path only.

    Inputs (besides ``history_mask`` and ``candidate_embedding`` ``[B, D]``):

    * ``history_tokens`` ``[B, L, d]``: the stored tokens of the history's instances (frozen:
      gradients never reach the source model);
    * ``history_embeddings`` ``[B, L, D]``: side information — the event's item-ID/category
      embedding and its outcome (label) embedding, from the ranking model;
    * ``history_time_gap`` ``[B, L]`` (optional): seconds from each event to the request,
      embedded in log2 buckets.

    Attributes:
      token_dim: d the tokens must have (a mismatch is refused before any graph is built).
      num_layers, num_heads: the stage-2 Transformer over the history (0 layers: attention only).
      hidden_units: the target attention MLP.
      use_side_information: add ``history_embeddings`` and the time gap to the adapted tokens.
      include_base: add the DIN base over ``history_embeddings`` (default, the paper's set-up).
      base_last_n: the DIN base attends over the last N events only (None: all of them).

    Returns ``[B, D]``, the same width as the candidate embedding.

    Example::

        encoder = IATEncoder(token_dim=16)
        interest = encoder({"history_tokens": t, "history_embeddings": h, "history_mask": m,
                            "candidate_embedding": c, "history_time_gap": g})
    """

    required_inputs = base.HistoryEncoder.required_inputs + (HISTORY_TOKENS,)
    TIME_GAP_BUCKETS = base.TIME_GAP_BUCKETS

    def __init__(self, token_dim: int = 16, num_layers: int = 1, num_heads: int = 2,
                 hidden_units: Sequence[int] = (64, 32), use_side_information: bool = True,
                 include_base: bool = True, base_last_n: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.token_dim, self.num_layers, self.num_heads = token_dim, num_layers, num_heads
        self.hidden_units = tuple(hidden_units)
        self.use_side_information = use_side_information
        self.include_base = include_base
        if base_last_n is not None and base_last_n < 1:
            raise ValueError(f"base_last_n must be a positive int or None (full history), got {base_last_n}.")
        self.base_last_n = base_last_n
        self.attention = TargetAttention(self.hidden_units)
        self.base_attention = TargetAttention(self.hidden_units) if include_base else None

    def build(self, input_shape):
        dim = int(input_shape[base.CANDIDATE_EMBEDDING][-1])
        self.adapter = tf.keras.layers.Dense(dim, name="token_adapter")
        self.time_gap_embedding = tf.keras.layers.Embedding(self.TIME_GAP_BUCKETS, dim, name="time_gap_embedding")
        self._blocks = [(tf.keras.layers.MultiHeadAttention(self.num_heads, max(dim // self.num_heads, 1)),
                         tf.keras.layers.LayerNormalization()) for _ in range(self.num_layers)]
        if self.include_base:
            self.token_gate = self.add_weight(name="token_gate", shape=(), initializer="zeros")
        super().build(input_shape)

    def check_inputs(self, inputs: Mapping[str, tf.Tensor]) -> None:
        super().check_inputs(inputs)
        check_tokens(self, inputs[HISTORY_TOKENS])

    def encode(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        mask = tf.cast(inputs[base.HISTORY_MASK], tf.bool)
        history = self.adapter(tf.stop_gradient(tf.cast(inputs[HISTORY_TOKENS], tf.float32)))
        if self.use_side_information:
            history += inputs[base.HISTORY_EMBEDDINGS]
            if HISTORY_TIME_GAP in inputs:
                history += self.time_gap_embedding(base.time_gap_buckets(inputs[HISTORY_TIME_GAP]))
        pair_mask = mask[:, None, :] & mask[:, :, None]
        for attention, norm in self._blocks:
            history = norm(history + attention(history, history, attention_mask=pair_mask))
        history *= tf.cast(mask, history.dtype)[..., None]
        token_interest = self.attention(history, mask, inputs[base.CANDIDATE_EMBEDDING])
        if not self.include_base:
            return token_interest
        base_history, base_mask = inputs[base.HISTORY_EMBEDDINGS], mask
        if self.base_last_n is not None:
            base_history, base_mask = base_history[:, -self.base_last_n:], base_mask[:, -self.base_last_n:]
        base_interest = self.base_attention(base_history, base_mask, inputs[base.CANDIDATE_EMBEDDING])
        return base_interest + self.token_gate * token_interest

    def get_config(self):
        return {**super().get_config(), "token_dim": self.token_dim, "num_layers": self.num_layers,
                "num_heads": self.num_heads, "hidden_units": list(self.hidden_units),
                "use_side_information": self.use_side_information, "include_base": self.include_base,
                "base_last_n": self.base_last_n}
