"""The TFRS ranking model that takes any history encoder, and helpers to train and score it.

Architecture: item and category embeddings (size E each) form the candidate embedding
``[B, 2E]``; the same tables embed the history events, plus embeddings of each past event's
outcome — its label (the user's feedback) and the schema's outcome features such as
``action_type``, ``dwell`` or ``rating`` (``embed_outcomes``); the encoder turns history +
candidate into a user-interest vector; an MLP over [candidate, interest, candidate * interest,
context-feature embeddings] gives the click logit. Loss and metrics live in a ``tfrs.tasks.Ranking``; training is stock Keras ``fit``.

Example::

    model = RankingModel(schema, layers.make_encoder("din_full"))
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
    model.fit(tf_data.dataset_from_columns(train, 512, shuffle_seed=0), epochs=2)
    probabilities = predict_probabilities(model, tf_data.dataset_from_columns(test, 1024))
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrs_seqcompress import features as F
from tfrs_seqcompress import layers as encoder_layers
from tfrs_seqcompress.agent_model import AgentModel
from tfrs_seqcompress.hisac.codebook import Codebook, CodebookError
from tfrs_seqcompress.layers import base
from tfrs_seqcompress.layers import hisac as hisac_layers
from tfrs_seqcompress.losses import GlobalBatchBinaryCrossentropy


safe_ids = base.safe_ids  # below both the models and the IAT source models (layers.base)


@tf.keras.utils.register_keras_serializable(package="tfrs_seqcompress")
class RankingModel(tfrs.models.Model, AgentModel):
    """A click-through ranking model over history examples, with a pluggable history encoder.

    Attributes:
      schema: the data contract's ``DataSchema`` (vocabularies, L, context features).
      encoder: any ``layers.HistoryEncoder``.
      embedding_dim: E, the size of the item and category embeddings (D = 2E).
      hidden_units: the prediction MLP.
      embed_outcomes: add embeddings of the history's outcome features
        (``schema.outcome_features``, e.g. ``hist_action_type``) to the history embeddings, for
        every encoder alike. The past label is always embedded.
      semantic_ids: optional frozen ``layers.SemanticIds`` tables: every item's ranking embedding
        (history events and candidate alike, for every encoder) then also holds a trainable
        embedding of its semantic ID. What lets a baseline see the same item semantics HiSAC sees,
        so that a difference between them is the compression's, not the inputs'.

    ``call(features)`` takes parsed history examples (``features.example_parse_spec``) and returns
    click logits ``[batch_size]``.
    """

    def __init__(self, schema: F.DataSchema, encoder: base.HistoryEncoder, embedding_dim: int = 16,
                 hidden_units: Sequence[int] = (64, 32), embed_outcomes: bool = True,
                 semantic_ids: encoder_layers.SemanticIds | dict | None = None, **kwargs):
        super().__init__(**kwargs)
        # Under a multi-replica tf.distribute strategy the task's metrics are already synchronised;
        # Keras' default would sum them over replicas (an AUC of 2). "first" reads them once (the
        # logged "loss" is then the first replica's share of the global-batch loss).
        self.distribute_reduction_method = "first"
        if isinstance(schema, str):
            schema = F.DataSchema.from_json(schema)
        if isinstance(encoder, dict):
            encoder = tf.keras.layers.deserialize(encoder)
        if not isinstance(encoder, base.HistoryEncoder):
            raise ValueError(f"encoder must be a layers.HistoryEncoder, got {type(encoder).__name__}.")
        if base.HISTORY_TOKENS in encoder.required_inputs and encoder.token_dim != schema.token_dim:
            raise ValueError(f"{type(encoder).__name__} expects tokens of dim {encoder.token_dim} but the schema's "
                             f"token_dim is {schema.token_dim} (0: the examples carry no 'hist_token').")
        self.schema = schema
        self.encoder = encoder
        self.embedding_dim = embedding_dim
        self.hidden_units = tuple(hidden_units)
        self.embed_outcomes = embed_outcomes
        if isinstance(semantic_ids, dict):
            semantic_ids = tf.keras.layers.deserialize(semantic_ids)
        self.semantic_ids = semantic_ids
        self.semantic_code_embeddings = [
            tf.keras.layers.Embedding(size, 2 * embedding_dim, name=f"semantic_code_embedding_{level}")
            for level, size in enumerate(semantic_ids.level_sizes)] if semantic_ids is not None else []
        self.item_embedding = tf.keras.layers.Embedding(schema.num_items, embedding_dim, name="item_embedding")
        self.category_embedding = tf.keras.layers.Embedding(schema.num_categories, embedding_dim,
                                                            name="category_embedding")
        self.feedback_embedding = tf.keras.layers.Embedding(2, 2 * embedding_dim, name="feedback_embedding")
        self.outcome_embeddings = {
            name: tf.keras.layers.Embedding(schema.event_features[name] + 1, 2 * embedding_dim,
                                            name=f"{name}_embedding")
            for name in self.outcome_features()}
        self.context_embeddings = {
            name: tf.keras.layers.Embedding(schema.event_features[name] + 1, 4, name=f"{name}_embedding")
            for name in schema.context_features}
        self.predictor = tf.keras.Sequential(
            [tf.keras.layers.Dense(units, activation="relu") for units in self.hidden_units]
            + [tf.keras.layers.Dense(1)], name="predictor")
        self.task = tfrs.tasks.Ranking(
            loss=GlobalBatchBinaryCrossentropy(),
            metrics=[tf.keras.metrics.AUC(from_logits=True, name="auc"),
                     tf.keras.metrics.BinaryCrossentropy(from_logits=True, name="logloss")])

    def outcome_features(self) -> tuple[str, ...]:
        """The event features embedded on the history beside the label (empty if not ``embed_outcomes``)."""
        return self.schema.outcome_features if self.embed_outcomes else ()

    def required_features(self) -> tuple[str, ...]:
        names = F.TARGET_FIELDS + self.schema.context_features + self.event_history_features()
        return names + ((F.HISTORY_TOKEN, F.TOKEN_VERSION) if self.uses_tokens() else ())

    def event_history_features(self) -> tuple[str, ...]:
        """The history features the model embeds its events from, and ``hist_mask``."""
        history_fields = (F.ITEM_ID, F.CATEGORY, F.LABEL, F.TIMESTAMP) + self.outcome_features()
        return tuple(F.history_name(field) for field in history_fields) + (F.HISTORY_MASK,)

    def uses_tokens(self) -> bool:
        return base.HISTORY_TOKENS in self.encoder.required_inputs

    def check_token_version(self, features: Mapping[str, tf.Tensor]) -> list:
        """An assertion (``InvalidArgumentError`` when run) that every example's tokens are of the
        version this model was trained with (``schema.token_version``); [] without tokens."""
        if not self.uses_tokens():
            return []
        expected = tf.constant(F.token_version_id(self.schema.token_version), tf.int64)
        return [tf.debugging.assert_equal(
            tf.cast(features[F.TOKEN_VERSION], tf.int64), expected,
            message=(f"Feature {F.TOKEN_VERSION}: {F.HISTORY_TOKEN} comes from another source model; this model "
                     f"expects tokens of version {self.schema.token_version or '(empty)'} "
                     f"(token_version {F.token_version_id(self.schema.token_version)})."))]

    def check_features(self, features: Mapping[str, tf.Tensor]) -> None:
        """Raises ``ValueError`` naming a missing feature or one with the wrong dtype or shape."""
        missing = [name for name in self.required_features() if name not in features]
        if missing:
            raise ValueError(f"RankingModel is missing feature(s) {missing}; got {sorted(features)}.")
        length = self.schema.history_length
        for name in self.required_features():
            if name == F.HISTORY_TOKEN:
                continue  # float; its shape and dtype are the IAT encoder's to check
            if not features[name].dtype.is_integer:
                raise ValueError(f"Feature {name!r} must be an integer tensor (int64 IDs), got {features[name].dtype.name}.")
            shape = features[name].shape
            expected = [None, length] if name.startswith(F.HISTORY_PREFIX) else [None]
            if shape.rank != len(expected) or (len(expected) == 2 and shape[1] not in (None, length)):
                raise ValueError(f"Feature {name!r} must have shape {expected} (history length {length}), "
                                 f"got {shape}.")

    def embed_items(self, item_ids: tf.Tensor, category_ids: tf.Tensor) -> tf.Tensor:
        """``[..., 2E]`` ranking embedding of items: item and category embeddings concatenated (plus
        their semantic-ID embedding when the model has ``semantic_ids``; zero for unknown items)."""
        embedded = tf.concat([self.item_embedding(safe_ids(item_ids, self.schema.num_items)),
                              self.category_embedding(safe_ids(category_ids, self.schema.num_categories))], axis=-1)
        if self.semantic_ids is None:
            return embedded
        codes, _, known = self.semantic_ids(item_ids)
        semantic = tf.add_n([embedding(codes[..., level]) for level, embedding in
                             enumerate(self.semantic_code_embeddings)])
        return embedded + semantic * tf.cast(known, semantic.dtype)[..., None]

    def embed_history(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """``[B, L', 2E]``: the ranking embeddings of a history's events (item, category, feedback and
        outcomes), for a history of any length L'."""
        history = self.embed_items(features[F.history_name(F.ITEM_ID)], features[F.history_name(F.CATEGORY)])
        history += self.feedback_embedding(safe_ids(features[F.history_name(F.LABEL)], 2))
        for name, embedding in self.outcome_embeddings.items():
            history += embedding(base.event_feature_ids(features[F.history_name(name)],
                                                        self.schema.event_features[name]))
        return history

    def encoder_inputs(self, features: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """The dict every history encoder reads (``layers.base``)."""
        return {
            base.HISTORY_EMBEDDINGS: self.embed_history(features),
            base.HISTORY_MASK: tf.cast(features[F.HISTORY_MASK], tf.bool),
            base.CANDIDATE_EMBEDDING: self.embed_items(features[F.ITEM_ID], features[F.CATEGORY]),
            base.HISTORY_CATEGORY: features[F.history_name(F.CATEGORY)],
            base.CANDIDATE_CATEGORY: features[F.CATEGORY],
            base.HISTORY_TIME_GAP: features[F.TIMESTAMP][:, None] - features[F.history_name(F.TIMESTAMP)],
            base.HISTORY_ITEM_ID: features[F.history_name(F.ITEM_ID)],
            base.CANDIDATE_ITEM_ID: features[F.ITEM_ID],
            **({base.HISTORY_TOKENS: features[F.HISTORY_TOKEN]} if F.HISTORY_TOKEN in features else {}),
        }

    def call(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        self.check_features(features)
        with tf.control_dependencies(self.check_token_version(features)):
            inputs = self.encoder_inputs(features)
        return self.logits(inputs[base.CANDIDATE_EMBEDDING], self.encoder(inputs), features)

    def logits(self, candidate: tf.Tensor, interest: tf.Tensor, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """``[B]`` click logits from the candidate embedding, the user interest and the context features."""
        context = [self.context_embeddings[name](base.event_feature_ids(features[name],
                                                                         self.schema.event_features[name]))
                   for name in self.schema.context_features]
        if interest.shape[-1] == candidate.shape[-1]:
            context.append(candidate * interest)
        logits = self.predictor(tf.concat([candidate, interest] + context, axis=-1))
        return tf.squeeze(logits, axis=-1)

    # ------------------------------------------------------------------ precomputed agents (HiSAC)

    @property
    def agent_encoder(self):
        """The encoder, when it compresses a history into agents that can be computed offline."""
        return self.encoder if base.computes_agents(self.encoder) else None

    @property
    def agent_ranking_dim(self) -> int:
        return 2 * self.embedding_dim

    def compute_agents(self, features: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """A history's agents, once per user: ``agent_vectors`` ``[B, K, D]``, ``agent_mask`` ``[B, K]``
        int64, ``agent_weights`` ``[B, K]`` float32 (vote shares).

        ``features`` are history examples (the target fields may be anything: agents never see them)."""
        if not self.supports_agents():
            encoder = getattr(self.encoder, "long_term", self.encoder)   # a short-term base names what it wraps
            raise ValueError(f"{type(encoder).__name__} has no agents to precompute (HiSAC and global clusters do).")
        self.check_features(features)
        agents = self.encoder.compute_agents(self.encoder_inputs(features))
        return {F.AGENT_VECTORS: agents["agent_vectors"], F.AGENT_MASK: tf.cast(agents["agent_mask"], tf.int64),
                F.AGENT_WEIGHTS: agents["agent_weights"]}

    def score_with_agents(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """``[B]`` logits of candidates scored against precomputed agents: O(K) per candidate (O(K + N)
        with a short-term base of N events), whatever the history's length.

        ``features``: the target fields and context features, plus ``agent_vectors`` ``[B, K, D]``,
        ``agent_mask`` and ``agent_weights`` ``[B, K]`` from ``compute_agents`` (one row per candidate);
        with a short-term base (``agent_recent_events()`` = N > 0) also the user's latest N events,
        as history features ``[B, N]`` (``hist_item_id``, ..., ``hist_mask``; ``recent_event_features()``)."""
        agent_features = (F.AGENT_VECTORS, F.AGENT_MASK, F.AGENT_WEIGHTS)
        missing = [name for name in F.TARGET_FIELDS + self.schema.context_features + agent_features
                   + self.recent_event_features() if name not in features]
        if missing:
            raise ValueError(f"score_with_agents is missing feature(s) {missing}; got {sorted(features)}.")
        self.check_recent_events(features)
        candidate = self.embed_items(features[F.ITEM_ID], features[F.CATEGORY])
        recent = {}
        if self.recent_event_features():
            recent = {"recent_embeddings": self.embed_history(features),
                      "recent_mask": tf.cast(features[F.HISTORY_MASK], tf.bool)}
        interest = self.encoder.attend_agents(tf.cast(features[F.AGENT_VECTORS], tf.float32),
                                              tf.cast(features[F.AGENT_MASK], tf.bool),
                                              tf.cast(features[F.AGENT_WEIGHTS], tf.float32), candidate,
                                              features[F.ITEM_ID], **recent)
        return self.logits(candidate, interest, features)

    def check_recent_events(self, features: Mapping[str, tf.Tensor]) -> None:
        """Raises ``ValueError`` unless every ``recent_event_features()`` feature is an integer tensor
        ``[B, N]`` (N = ``agent_recent_events()``)."""
        count = self.agent_recent_events() if self.recent_event_features() else 0
        for name in self.recent_event_features():
            value = features[name]
            if not value.dtype.is_integer or value.shape.rank != 2 or value.shape[1] not in (None, count):
                raise ValueError(f"Feature {name!r} must be an integer tensor of shape [None, {count}] (the user's "
                                 f"latest {count} events), got {value.dtype.name} {value.shape}.")

    def recent_event_features(self) -> tuple[str, ...]:
        """The history features a ``score_with_agents`` example carries for the short-term base (its
        latest ``agent_recent_events()`` events); () without one."""
        return self.event_history_features() if self.agent_recent_events() else ()

    def check_codebook(self, codebook: Codebook) -> None:
        """Raises ``CodebookError`` unless the model's semantic tables were built from ``codebook``
        (HiSAC / global clusters); other encoders take no codebook and say so."""
        if not hasattr(self.encoder, "check_codebook"):
            raise CodebookError(f"{type(self.encoder).__name__} uses no codebook.")
        self.encoder.check_codebook(codebook)

    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        if F.LABEL not in features:
            raise ValueError("Training examples need the 'label' feature (0/1).")
        labels = tf.cast(features[F.LABEL], tf.float32)
        return self.task(labels=labels, predictions=self(features, training=training))

    def get_config(self):
        return {"schema": self.schema.to_json(), "encoder": tf.keras.layers.serialize(self.encoder),
                "embedding_dim": self.embedding_dim, "hidden_units": list(self.hidden_units),
                "embed_outcomes": self.embed_outcomes,
                "semantic_ids": None if self.semantic_ids is None else tf.keras.layers.serialize(self.semantic_ids)}


def build_ranking_model(schema: F.DataSchema, encoder_name: str, learning_rate: float = 1e-3,
                        embedding_dim: int = 16, embed_outcomes: bool = True, codebook: Codebook | None = None,
                        item_vectors: np.ndarray | None = None, semantic_inputs: bool = False,
                        short_term_last_n: int | None = None, semantic_codebook: Codebook | None = None,
                        temperature_scale: float | None = None, **encoder_overrides) -> RankingModel:
    """A compiled ``RankingModel`` with the encoder registered as ``encoder_name`` (Adam).

    HiSAC and the global-cluster baseline (``layers.SEMANTIC_ENCODERS``) also need the fitted
    ``codebook`` and the frozen ``item_vectors`` ``[schema.num_items, dim]`` it quantises. HiSAC's
    routing temperature is ``temperature_scale`` (default ``registry.HISAC_TEMPERATURE_SCALE``)
    times the codebook's level-1 quantisation error (the typical squared distance of an item to its
    level-1 codeword); a ``temperature`` override wins.

    ``semantic_inputs=True`` gives *every* encoder's item embeddings the semantic-ID embedding too
    (``RankingModel``'s ``semantic_ids``; needs the codebook and vectors whatever the encoder;
    ``semantic_codebook`` when those inputs should come from another codebook than the encoder's,
    e.g. the same one for every encoder of a comparison). ``short_term_last_n=N`` adds a DIN over
    the last N events to the encoder (``layers.WithShortTermBase``).
    """
    if encoder_name not in encoder_layers.ENCODERS:
        raise ValueError(f"Unknown history encoder {encoder_name!r}; expected one of {sorted(encoder_layers.ENCODERS)}.")
    if base.HISTORY_TOKENS in encoder_layers.ENCODERS[encoder_name][0].required_inputs:
        encoder_overrides.setdefault("token_dim", schema.token_dim)
    if encoder_name in encoder_layers.SEMANTIC_ENCODERS:
        encoder_overrides = {**semantic_encoder_arguments(schema, encoder_name, codebook, item_vectors,
                                                          temperature_scale), **encoder_overrides}
    shared_semantics = None
    if semantic_inputs:
        shared_semantics = semantic_encoder_arguments(schema, encoder_name, semantic_codebook or codebook,
                                                      item_vectors)["semantic_ids"]
    encoder = encoder_layers.make_encoder(encoder_name, **encoder_overrides)
    if short_term_last_n:
        encoder = encoder_layers.WithShortTermBase(encoder, last_n=short_term_last_n)
    model = RankingModel(schema, encoder,
                         embedding_dim=embedding_dim, embed_outcomes=embed_outcomes, semantic_ids=shared_semantics)
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate))
    return model


def semantic_encoder_arguments(schema: F.DataSchema, encoder_name: str, codebook: Codebook | None,
                               item_vectors: np.ndarray | None, temperature_scale: float | None = None) -> dict:
    """The ``semantic_ids`` tables (and HiSAC's temperature, ``temperature_scale`` x the codebook's
    level-1 error) for a semantic encoder."""
    if codebook is None or item_vectors is None:
        raise ValueError(f"Encoder {encoder_name!r} needs a fitted codebook and the item semantic vectors "
                         "(build_ranking_model(..., codebook=..., item_vectors=...)).")
    if len(item_vectors) != schema.num_items:
        raise ValueError(f"item_vectors have {len(item_vectors)} rows; the schema has num_items {schema.num_items} "
                         "(row i must hold item ID i's vector, zeros where unknown).")
    arguments = {"semantic_ids": encoder_layers.SemanticIds.from_codebook(codebook, item_vectors)}
    if encoder_name in encoder_layers.VOTING_ENCODERS:
        arguments["temperature"] = hisac_layers.default_temperature(codebook, temperature_scale)
    return arguments


def predict_probabilities(model: RankingModel, dataset: tf.data.Dataset) -> dict[str, np.ndarray]:
    """Click probabilities with the user IDs and labels of every example, for ``metrics``."""
    collected = {"user_id": [], "label": [], "probability": []}
    predict = tf.function(lambda batch: tf.sigmoid(model(batch)))
    for batch in dataset:
        collected["probability"].append(predict(batch).numpy())
        collected["user_id"].append(batch[F.USER_ID].numpy())
        collected["label"].append(batch[F.LABEL].numpy())
    return {name: np.concatenate(values) for name, values in collected.items()}
