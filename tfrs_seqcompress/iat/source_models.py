"""IAT stage 1: source models that learn an instance token from every request-time feature.

Two schemes with one output contract (``SourceModel.tokens(features) -> [..., d]``):

* ``temporal_order``: a ranking model trained on the log in global time order, one instance at a
  time; ``h`` -> token bottleneck -> decompression -> click head.
* ``user_order``: instances grouped by user and time-ordered in windows of T; a strictly causal
  Source Instance Transformer reads each instance's predecessors (their tokens *and* outcomes)
  and its output joins the decompressed token before the head, so tokens are learned to be useful
  inside a causal sequence model — how stage 2 uses them. The stored token is the one *before*
  the SIT, as in the paper.

Tokens never carry their own instance's outcome (see ``layers.iat``). A model's ``fingerprint``
(scheme, token size and every weight) is the token store's version.

Example::

    model = train_source_model(train_log, schema, "user_order", token_dim=16, epochs=2)
    store = build_token_store(model, full_log)           # tokens for every event, versioned
"""
from __future__ import annotations

import hashlib
from typing import Mapping

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrs_seqcompress import features as F
from tfrs_seqcompress.iat.store import TokenStore
from tfrs_seqcompress.layers.iat import SourceInstanceTransformer, TokenBottleneck
from tfrs_seqcompress.layers.base import event_feature_ids, safe_ids

SCHEMES = ("temporal_order", "user_order")
SEQUENCE_MASK = "mask"


class SourceModel(tfrs.models.Model):
    """A source model of either scheme (see module docstring).

    Attributes:
      schema: the data contract's schema (vocabularies, context and outcome features).
      scheme: ``"temporal_order"`` or ``"user_order"``.
      token_dim: d.
      embedding_dim: size of the ID embeddings forming ``h``.
      hidden_dim: the decompression / SIT width.

    ``call(features)`` returns click logits of the same shape as ``features["item_id"]``: ``[B]``
    for temporal order, ``[B, T]`` (with ``features["mask"]`` and ``features["timestamp"]``) for
    user order.
    """

    def __init__(self, schema: F.DataSchema, scheme: str, token_dim: int = 16, embedding_dim: int = 16,
                 hidden_dim: int = 64, sit_layers: int = 2, sit_heads: int = 2, **kwargs):
        super().__init__(**kwargs)
        if scheme not in SCHEMES:
            raise ValueError(f"Unknown IAT scheme {scheme!r}; expected one of {list(SCHEMES)}.")
        self.schema, self.scheme, self.token_dim = schema, scheme, token_dim
        self.embeddings = {name: tf.keras.layers.Embedding(self._vocabulary(name), embedding_dim, name=f"{name}_embedding")
                           for name in self.request_features()}
        self.bottleneck = TokenBottleneck(token_dim)
        self.decompression = tf.keras.layers.Dense(hidden_dim, activation="relu", name="decompression")
        self.head = tf.keras.Sequential([tf.keras.layers.Dense(hidden_dim // 2, activation="relu"),
                                         tf.keras.layers.Dense(1)], name="head")
        if scheme == "user_order":
            self.outcome_embeddings = {name: tf.keras.layers.Embedding(self._vocabulary(name), 8, name=f"{name}_outcome")
                                       for name in self.outcome_features()}
            self.sit_values = tf.keras.layers.Dense(hidden_dim, name="sit_values")
            self.sit_queries = tf.keras.layers.Dense(hidden_dim, name="sit_queries")
            self.sit = SourceInstanceTransformer(num_layers=sit_layers, num_heads=sit_heads, hidden_dim=hidden_dim)
        self.task = tfrs.tasks.Ranking(loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
                                       metrics=[tf.keras.metrics.AUC(from_logits=True, name="auc"),
                                                tf.keras.metrics.BinaryCrossentropy(from_logits=True, name="logloss")])

    def _vocabulary(self, name: str) -> int:
        """Embedding rows of ``name``: an event feature's values keep 0 as a real value (one row more)."""
        return self.schema.vocabulary_size(name) + (name in self.schema.event_features)

    def _ids(self, name: str, values: tf.Tensor) -> tf.Tensor:
        if name in self.schema.event_features:
            return event_feature_ids(values, self.schema.event_features[name])
        return safe_ids(values, self._vocabulary(name))

    def request_features(self) -> tuple[str, ...]:
        """What the token compresses: everything known when the instance was requested."""
        return (F.ITEM_ID, F.CATEGORY) + self.schema.context_features

    def outcome_features(self) -> tuple[str, ...]:
        """What happened after: the label and the outcome event features (side information)."""
        return (F.LABEL,) + self.schema.outcome_features

    def tokens(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """``[..., d]`` tokens of the instances in ``features``."""
        missing = [name for name in self.request_features() if name not in features]
        if missing:
            raise ValueError(f"Source model needs instance feature(s) {missing}; got {sorted(features)}.")
        parts = [self.embeddings[name](self._ids(name, features[name]))
                 for name in self.request_features()]
        return self.bottleneck(tf.concat(parts, axis=-1))

    def call(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        token = self.tokens(features)
        hidden = self.decompression(token)
        if self.scheme == "user_order":
            outcomes = [self.outcome_embeddings[name](self._ids(name, features[name]))
                        for name in self.outcome_features()]
            values = self.sit_values(tf.concat([token] + outcomes, axis=-1))
            context = self.sit(values, features[F.TIMESTAMP], features[SEQUENCE_MASK],
                               queries=self.sit_queries(token), training=training)
            hidden = tf.concat([hidden, context], axis=-1)
        return tf.squeeze(self.head(hidden), axis=-1)

    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        logits = self(features, training=training)
        labels = tf.cast(features[F.LABEL], tf.float32)
        weights = tf.cast(features[SEQUENCE_MASK], tf.float32) if SEQUENCE_MASK in features else tf.ones_like(labels)
        # [N, 1]: Keras' cross-entropy averages over the last axis; padding gets weight 0.
        return self.task(labels=tf.reshape(labels, [-1, 1]), predictions=tf.reshape(logits, [-1, 1]),
                         sample_weight=tf.reshape(weights, [-1]))

    def fingerprint(self) -> str:
        """The token version: a digest of scheme, d, schema and every weight."""
        digest = hashlib.sha256(f"{self.scheme}|{self.token_dim}|{self.schema.to_json()}".encode())
        for weight in self.weights:  # In creation order; names are left out (Keras numbers them per process).
            digest.update(str(weight.shape).encode())
            digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
        return digest.hexdigest()[:16]


def instance_columns(log: Mapping[str, np.ndarray], schema: F.DataSchema) -> dict[str, np.ndarray]:
    """The log columns a source model reads, in global time order (temporal-order training)."""
    log = F.validate_log(log, schema)
    order = np.lexsort((log[F.ITEM_ID], log[F.USER_ID], log[F.TIMESTAMP]))
    return {name: values[order] for name, values in log.items()}


def user_order_sequences(log: Mapping[str, np.ndarray], schema: F.DataSchema, window: int) -> dict[str, np.ndarray]:
    """Each user's instances in (timestamp, item) order, cut into windows of T = ``window``.

    Returns ``[num_windows, window]`` columns plus ``mask`` (1 on real instances, padding last).
    """
    if window < 2:
        raise ValueError(f"window must be >= 2 instances, got {window}.")
    log = F.validate_log(log, schema)
    order = np.lexsort((log[F.ITEM_ID], log[F.TIMESTAMP], log[F.USER_ID]))
    users = log[F.USER_ID][order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    window_id = np.cumsum(np.r_[True, (users[1:] != users[:-1]) | (rank[1:] % window == 0)]) - 1
    slot = rank % window
    sequences = {name: np.zeros((window_id[-1] + 1, window), np.int64) for name in log}
    for name, values in log.items():
        sequences[name][window_id, slot] = values[order]
    sequences[SEQUENCE_MASK] = np.zeros((window_id[-1] + 1, window), np.int64)
    sequences[SEQUENCE_MASK][window_id, slot] = 1
    return sequences


def train_source_model(log: Mapping[str, np.ndarray], schema: F.DataSchema, scheme: str, token_dim: int = 16,
                       epochs: int = 2, batch_size: int = 512, window: int = 64, learning_rate: float = 1e-3,
                       seed: int = 0, verbose: int = 0) -> SourceModel:
    """Trains a source model on ``log`` (give it the training period only).

    Temporal order sees instances in global time order (no shuffling); user order sees shuffled
    windows of each user's time-ordered instances (``batch_size // window`` windows a batch).
    """
    tf.keras.utils.set_random_seed(seed)
    model = SourceModel(schema, scheme, token_dim=token_dim)
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate))
    if scheme == "temporal_order":
        data = tf.data.Dataset.from_tensor_slices(instance_columns(log, schema)).batch(batch_size)
    else:
        sequences = user_order_sequences(log, schema, window)
        data = (tf.data.Dataset.from_tensor_slices(sequences)
                .shuffle(len(sequences[SEQUENCE_MASK]), seed=seed).batch(max(batch_size // window, 1)))
    model.fit(data.prefetch(tf.data.AUTOTUNE), epochs=epochs, verbose=verbose)
    return model


def compute_tokens(model: SourceModel, log: Mapping[str, np.ndarray], batch_size: int = 4096) -> np.ndarray:
    """``[num_events, d]`` tokens of every log event, in the log's row order."""
    columns = {name: np.asarray(log[name]) for name in model.request_features()}
    tokens_of = tf.function(model.tokens)
    data = tf.data.Dataset.from_tensor_slices(columns).batch(batch_size)
    return np.concatenate([tokens_of(batch).numpy() for batch in data]).astype(np.float32)


def build_token_store(model: SourceModel, log: Mapping[str, np.ndarray]) -> TokenStore:
    """A versioned token store holding the token of every event of ``log``."""
    return TokenStore.build(log, compute_tokens(model, log), version=model.fingerprint(), scheme=model.scheme)
