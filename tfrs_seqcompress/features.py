"""The data contract: feature names, dtypes, shapes, parsing specs and validation.

Everything else in the project (loaders, the history builder, layers, models, the TFX pipeline,
serving) imports names and checks from here instead of repeating strings.

Two record kinds follow the contract:

* **Interaction log** — one row per event, columns of equal length (NumPy arrays, a CSV file or
  a TFRecord of ``tf.Example``):
  ``user_id``, ``item_id``, ``timestamp`` (unix seconds), ``label`` (0/1), ``category``, plus the
  dataset's *event features* (e.g. ``hour``, ``device``, ``action_type``). All are int64.
  ID 0 is reserved for padding / unknown, so real IDs start at 1.

* **History example** (training and serving ``tf.Example``) — one per target event:
  the target's ``user_id``, ``item_id``, ``category``, ``timestamp``, its *context features*
  (the event features known at request time), ``label`` (training only), and the user's history
  strictly before the target's timestamp as fixed-length int64 arrays of length L:
  ``hist_item_id``, ``hist_category``, ``hist_timestamp``, ``hist_label``, ``hist_<event feature>``
  and ``hist_mask``; for IAT also ``hist_token`` (float32 ``[L, token_dim]``, the stored instance
  tokens of the same events).

  History layout: time ascending and **right-aligned** — padding first, the most recent event at
  index L-1, ``hist_mask`` 1 on real events and 0 on padding. So ``hist[:, -N:]`` is "the last N".

Example::

    schema = DataSchema(num_users=944, num_items=1683, num_categories=20, history_length=50,
                        event_features={"hour": 24}, context_features=("hour",))
    spec = example_parse_spec(schema)                 # for tf.io.parse_example
    validate_examples(columns, schema)                # ValueError naming the bad feature
"""
from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any, Mapping

import hashlib

import numpy as np

USER_ID = "user_id"
ITEM_ID = "item_id"
CATEGORY = "category"
TIMESTAMP = "timestamp"
LABEL = "label"

HISTORY_PREFIX = "hist_"
HISTORY_MASK = "hist_mask"
# IAT: the stored instance token of every history event, float32 [L, token_dim] (only when token_dim > 0).
HISTORY_TOKEN = "hist_token"
# IAT: which source model made those tokens, int64 scalar ``token_version_id(version)``; the ranking
# model refuses examples (and serving requests) whose tokens come from another version.
TOKEN_VERSION = "token_version"
# HiSAC's precomputed agents of a user's history, sent instead of the history: vectors float32 [K, D],
# mask int64 [K] (1 on live agents), weights float32 [K] (each agent's share of the history's votes).
AGENT_VECTORS = "agent_vectors"
AGENT_MASK = "agent_mask"
AGENT_WEIGHTS = "agent_weights"

# Columns every interaction log must have.
LOG_COLUMNS: tuple[str, ...] = (USER_ID, ITEM_ID, TIMESTAMP, LABEL, CATEGORY)
# Per-event fields every history carries (besides the dataset's event features).
HISTORY_BASE_FIELDS: tuple[str, ...] = (ITEM_ID, CATEGORY, TIMESTAMP, LABEL)
# Target fields every history example carries (besides context features and the label).
TARGET_FIELDS: tuple[str, ...] = (USER_ID, ITEM_ID, CATEGORY, TIMESTAMP)

PADDING_ID = 0
# Event-feature names that would collide with what the contract adds: ``mask`` / ``token`` become
# ``hist_mask`` / ``hist_token`` (overwritten by the padding mask / the IAT tokens), and the
# token-version and agent features of a request.
RESERVED_EVENT_FEATURES: tuple[str, ...] = ("mask", "token", TOKEN_VERSION, AGENT_VECTORS, AGENT_MASK, AGENT_WEIGHTS)


def history_name(field: str) -> str:
    """``"item_id"`` -> ``"hist_item_id"``."""
    return HISTORY_PREFIX + field


def field_name(name: str) -> str:
    """The field an example feature holds: ``"hist_item_id"`` -> ``"item_id"`` (the inverse of
    ``history_name``); a target feature's name is its field."""
    return name[len(HISTORY_PREFIX):] if name.startswith(HISTORY_PREFIX) else name


@dataclasses.dataclass(frozen=True)
class ExampleSpec:
    """What a history example holds, whatever the vocabularies: what builds examples needs.

    A ``DataSchema`` (the vocabularies too) gives its own as ``schema.example_spec``; a builder
    that reads the vocabularies off the data it builds from (the pipeline's example generation)
    starts from an ``ExampleSpec`` alone.

    Attributes:
      history_length: L, the fixed length of every history array.
      event_features: the extra per-event features, stored for every history event as ``hist_<name>``.
      context_features: the event features also known at request time (stored for the target too).
      token_dim: d of the IAT instance tokens carried as ``hist_token``; 0 when examples carry none.
      token_version: the version (source-model fingerprint) of those tokens.

    Example::

        spec = ExampleSpec(history_length=1000, event_features=("hour", "rating"), context_features=("hour",))
        example_feature_shapes(spec)["hist_rating"]    # (1000,)
    """

    history_length: int
    event_features: tuple[str, ...] = ()
    context_features: tuple[str, ...] = ()
    token_dim: int = 0
    token_version: str = ""

    def __post_init__(self):
        if not isinstance(self.history_length, (int, np.integer)) or self.history_length < 1:
            raise ValueError(f"history_length must be a positive int, got {self.history_length!r}.")
        if not isinstance(self.token_dim, (int, np.integer)) or self.token_dim < 0:
            raise ValueError(f"token_dim must be an int >= 0, got {self.token_dim!r}.")
        object.__setattr__(self, "event_features", tuple(self.event_features))
        object.__setattr__(self, "context_features", tuple(self.context_features))
        unknown = [name for name in self.context_features if name not in self.event_features]
        if unknown:
            raise ValueError(f"context_features {unknown} are not event_features "
                             f"(expected a subset of {sorted(self.event_features)}).")
        clashes = set(self.event_features) & set(LOG_COLUMNS)
        if clashes:
            raise ValueError(f"event_features may not reuse contract column names: {sorted(clashes)}.")
        reserved = sorted(set(self.event_features) & set(RESERVED_EVENT_FEATURES)
                          | {name for name in self.event_features if name.startswith(HISTORY_PREFIX)})
        if reserved:
            raise ValueError(f"event_features {reserved} use reserved names (the contract adds "
                             f"{[HISTORY_MASK, HISTORY_TOKEN, TOKEN_VERSION]}, agent features and the "
                             f"'{HISTORY_PREFIX}' prefix itself): rename the column(s).")

    @property
    def outcome_features(self) -> tuple[str, ...]:
        """Event features describing an event's outcome (history only): the non-context ones."""
        return tuple(name for name in self.event_features if name not in self.context_features)

    @property
    def history_fields(self) -> tuple[str, ...]:
        """Per-event fields of a history, without the ``hist_`` prefix."""
        return HISTORY_BASE_FIELDS + tuple(self.event_features)


@dataclasses.dataclass(frozen=True)
class DataSchema:
    """Vocabulary sizes of one dataset and the examples it makes; travels with the data and the model.

    The vocabularies (``num_*``, ``event_features``' sizes) describe the log; the rest
    (``example_spec``: L, context features, tokens) what each example holds.

    Attributes:
      num_users: user IDs lie in ``[0, num_users)``; 0 means unknown.
      num_items: item IDs lie in ``[0, num_items)``; 0 is padding / unknown.
      num_categories: category IDs lie in ``[0, num_categories)``; 0 is padding / unknown.
      history_length: L, the fixed length of every history array.
      event_features: name -> vocabulary size of each extra per-event feature (values in
        ``[0, size)``), stored for every history event as ``hist_<name>``.
      context_features: the event features also known at request time; they are stored for the
        target too. The others (e.g. ``rating``, ``action_type``) describe an outcome and appear
        in the history only, never for the target (that would leak the label).
      token_dim: d of the IAT instance tokens carried as ``hist_token``; 0 when examples carry none.
      token_version: the version (source-model fingerprint) of those tokens; examples carry it as
        ``token_version`` (``token_version_id``) so a model can refuse tokens of another version.
    """

    num_users: int
    num_items: int
    num_categories: int
    history_length: int
    event_features: Mapping[str, int] = dataclasses.field(default_factory=dict)
    context_features: tuple[str, ...] = ()
    token_dim: int = 0
    token_version: str = ""

    def __post_init__(self):
        for name in ("num_users", "num_items", "num_categories"):   # L and the names: the example spec's checks
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"DataSchema.{name} must be a positive int, got {value!r}.")
        object.__setattr__(self, "event_features", dict(self.event_features))
        object.__setattr__(self, "context_features", tuple(self.context_features))
        try:
            self.example_spec  # noqa: B018 -- validates the names, L and the tokens
        except ValueError as error:
            raise ValueError(f"DataSchema: {error}") from None

    @functools.cached_property
    def example_spec(self) -> ExampleSpec:
        """What this dataset's examples hold (L, event and context features, tokens); built once."""
        return ExampleSpec(self.history_length, tuple(self.event_features), self.context_features,
                           self.token_dim, self.token_version)

    @property
    def outcome_features(self) -> tuple[str, ...]:
        """Event features describing an event's outcome (history only): the non-context ones."""
        return self.example_spec.outcome_features

    @property
    def history_fields(self) -> tuple[str, ...]:
        """Per-event fields of a history, without the ``hist_`` prefix."""
        return self.example_spec.history_fields

    def vocabulary_size(self, field: str) -> int | None:
        """Size of the ID space of ``field`` (a log column or event feature); None for timestamps."""
        sizes = {USER_ID: self.num_users, ITEM_ID: self.num_items, CATEGORY: self.num_categories, LABEL: 2}
        sizes.update(self.event_features)
        return sizes.get(field)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "DataSchema":
        values = json.loads(text)
        values["context_features"] = tuple(values.get("context_features", ()))
        return cls(**values)

    def with_history_length(self, history_length: int) -> "DataSchema":
        return dataclasses.replace(self, history_length=history_length)


def example_feature_shapes(schema: DataSchema | ExampleSpec, with_label: bool = True) -> dict[str, tuple[int, ...]]:
    """Name -> shape (``()``, ``(L,)``, or ``(L, d)`` for ``hist_token``) of every history-example
    feature. All are int64 but ``hist_token`` (float32)."""
    shapes: dict[str, tuple[int, ...]] = {name: () for name in TARGET_FIELDS + schema.context_features}
    if with_label:
        shapes[LABEL] = ()
    for field in schema.history_fields:
        shapes[history_name(field)] = (schema.history_length,)
    shapes[HISTORY_MASK] = (schema.history_length,)
    if schema.token_dim:
        shapes[HISTORY_TOKEN] = (schema.history_length, schema.token_dim)
        shapes[TOKEN_VERSION] = ()
    return shapes


def token_version_id(version: str) -> int:
    """The int64 form of a token version carried by every IAT example (60 bits of its SHA-256)."""
    return int(hashlib.sha256(str(version).encode()).hexdigest()[:15], 16)


def example_parse_spec(schema: DataSchema | ExampleSpec, with_label: bool = True) -> dict[str, Any]:
    """The ``tf.io.parse_example`` spec of a history example (every feature required)."""
    import tensorflow as tf  # Imported lazily: the contract's NumPy checks run without TensorFlow.

    return {name: tf.io.FixedLenFeature(shape, tf.float32 if name == HISTORY_TOKEN else tf.int64)
            for name, shape in example_feature_shapes(schema, with_label).items()}


# ----------------------------------------------------------------------------- validation


def _as_int_array(name: str, values: Any) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in "iu":
        raise ValueError(f"Feature {name!r} must hold integers (int64), got dtype {array.dtype}.")
    return array.astype(np.int64, copy=False)


def _as_token_array(values: Any) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind != "f":
        raise ValueError(f"Feature {HISTORY_TOKEN!r} must hold floats (float32 tokens), got dtype {array.dtype}.")
    if not np.isfinite(array).all():
        raise ValueError(f"Feature {HISTORY_TOKEN!r} contains NaN or infinity.")
    return array.astype(np.float32, copy=False)


def _check_id_range(name: str, values: np.ndarray, size: int | None, where: str) -> None:
    if size is None or values.size == 0:
        return
    bad = (values < 0) | (values >= size)
    if bad.any():
        first = values[bad].ravel()[0]
        raise ValueError(f"{where}: feature {name!r} has {int(bad.sum())} unknown ID(s) (first: {int(first)}); "
                         f"expected values in [0, {size}).")


def validate_log(log: Mapping[str, Any], schema: DataSchema | None = None,
                 event_features: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Checks an interaction log and returns it as int64 NumPy columns.

    Args:
      log: column name -> 1-D array, one entry per event.
      schema: if given, IDs must lie in its vocabularies and its event features must be present.
      event_features: extra columns that must be present (when no schema is given).

    Raises:
      ValueError: a column is missing, not integer, not 1-D, of another length than the rest;
        the log is empty; a label is not 0/1; an ID is negative or outside the schema's vocabulary.
    """
    required = LOG_COLUMNS + (tuple(schema.event_features) if schema else tuple(event_features))
    missing = [name for name in required if name not in log]
    if missing:
        raise ValueError(f"Interaction log is missing column(s) {missing}; expected columns {list(required)} "
                         f"(got {sorted(log)}).")
    columns = {name: _as_int_array(name, log[name]) for name in required}
    for name, values in columns.items():
        if values.ndim != 1:
            raise ValueError(f"Log column {name!r} must be 1-D (one value per event), got shape {values.shape}.")
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"Log columns differ in length: {lengths}.")
    if lengths[USER_ID] == 0:
        raise ValueError("Interaction log is empty: expected at least one event.")
    labels = columns[LABEL]
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"Log column 'label' must be 0 or 1, got values {np.unique(labels)[:10].tolist()}.")
    for name in (USER_ID, ITEM_ID, CATEGORY) + tuple(schema.event_features if schema else event_features):
        if (columns[name] < 0).any():
            raise ValueError(f"Log column {name!r} has negative IDs; expected values >= 0.")
        if schema is not None:
            _check_id_range(name, columns[name], schema.vocabulary_size(name), "Interaction log")
    return columns


def validate_history(hist_timestamp: np.ndarray, hist_mask: np.ndarray, target_timestamp: np.ndarray,
                     history_length: int) -> None:
    """Checks histories against the contract: length L, right-aligned mask, sorted, strictly past.

    Args:
      hist_timestamp: ``[N, L]`` int64 event times.
      hist_mask: ``[N, L]`` 0/1, padding first.
      target_timestamp: ``[N]`` the targets' times.
      history_length: the L the schema expects.

    Raises:
      ValueError: too long / wrong shape, a mask that is not 0/1 or not right-aligned, an unsorted
        history, or an event at or after the target's timestamp (leakage).
    """
    hist_timestamp = np.asarray(hist_timestamp)
    hist_mask = np.asarray(hist_mask)
    target_timestamp = np.asarray(target_timestamp)
    if hist_timestamp.ndim != 2 or hist_timestamp.shape[1] != history_length:
        raise ValueError(f"Feature 'hist_timestamp' must have shape [batch, {history_length}] "
                         f"(history length L={history_length}), got {hist_timestamp.shape}. "
                         "Longer histories must be truncated to the most recent L events by the history builder.")
    if hist_mask.shape != hist_timestamp.shape:
        raise ValueError(f"Feature 'hist_mask' must have shape {hist_timestamp.shape}, got {hist_mask.shape}.")
    if target_timestamp.shape != hist_timestamp.shape[:1]:
        raise ValueError(f"Feature 'timestamp' must have shape [{hist_timestamp.shape[0]}], got {target_timestamp.shape}.")
    if not np.isin(hist_mask, (0, 1)).all():
        raise ValueError("Feature 'hist_mask' must hold only 0 (padding) and 1 (event).")
    if (np.diff(hist_mask, axis=1) < 0).any():
        row = int(np.nonzero((np.diff(hist_mask, axis=1) < 0).any(axis=1))[0][0])
        raise ValueError(f"Feature 'hist_mask' of example {row} is not right-aligned: expected padding (0) first "
                         f"and events (1) last, got {hist_mask[row].tolist()}.")
    valid = hist_mask.astype(bool)
    steps_back = (np.diff(hist_timestamp, axis=1) < 0) & valid[:, 1:] & valid[:, :-1]
    if steps_back.any():
        row = int(np.nonzero(steps_back.any(axis=1))[0][0])
        raise ValueError(f"History of example {row} is not sorted by time: 'hist_timestamp' must be non-decreasing "
                         f"(oldest first, most recent last), got {hist_timestamp[row][valid[row]].tolist()[:20]}.")
    future = valid & (hist_timestamp >= target_timestamp[:, None])
    if future.any():
        row = int(np.nonzero(future.any(axis=1))[0][0])
        raise ValueError(f"Leakage in example {row}: its history has an event at or after the target time "
                         f"{int(target_timestamp[row])} (hist_timestamp {int(hist_timestamp[row][future[row]][0])}); "
                         "a history must hold only events strictly before the target.")


def validate_examples(examples: Mapping[str, Any], schema: DataSchema, with_label: bool = True) -> dict[str, np.ndarray]:
    """Checks history examples (NumPy columns) against the contract; returns them as int64.

    Raises:
      ValueError: naming the missing / misspelt feature, wrong dtype or shape, unknown ID, or the
        history rule that is broken (see ``validate_history``).
    """
    shapes = example_feature_shapes(schema, with_label)
    missing = [name for name in shapes if name not in examples]
    if missing:
        unexpected = sorted(set(examples) - set(shapes))
        hint = f" Unexpected features {unexpected} (misspelt?)." if unexpected else ""
        raise ValueError(f"History examples are missing feature(s) {missing}.{hint}")
    columns = {name: _as_token_array(examples[name]) if name == HISTORY_TOKEN else _as_int_array(name, examples[name])
               for name in shapes}
    batch = len(columns[USER_ID])
    for name, shape in shapes.items():
        received = columns[name].shape
        if shape and len(received) >= 2 and received[0] == batch and received[1] != shape[0]:
            raise ValueError(f"Feature {name!r} must have shape [batch, {shape[0]}] (history length "
                             f"L={shape[0]}), got {list(received)}. Longer histories must be truncated to the "
                             "most recent L events by the history builder.")
        if received != (batch,) + shape:
            raise ValueError(f"Feature {name!r} must have shape {[batch, *shape]}, got {list(columns[name].shape)}.")
    validate_history(columns[history_name(TIMESTAMP)], columns[HISTORY_MASK], columns[TIMESTAMP], schema.history_length)
    if schema.token_dim and np.any(columns[TOKEN_VERSION] != token_version_id(schema.token_version)):
        raise ValueError(f"Feature {TOKEN_VERSION!r}: the examples' tokens are not of version "
                         f"{schema.token_version!r} (the schema's): were they made by another source model?")
    for field in (USER_ID, ITEM_ID, CATEGORY) + schema.context_features:
        _check_id_range(field, columns[field], schema.vocabulary_size(field), "History examples")
    for field in schema.history_fields:
        if field != TIMESTAMP:
            _check_id_range(history_name(field), columns[history_name(field)], schema.vocabulary_size(field),
                            "History examples")
    return columns


# ----------------------------------------------------------------------------- tf.Example


def _tf_feature(values: np.ndarray):
    import tensorflow as tf

    flat = np.ravel(values)
    if flat.dtype.kind == "f":
        return tf.train.Feature(float_list=tf.train.FloatList(value=flat.tolist()))
    return tf.train.Feature(int64_list=tf.train.Int64List(value=flat.astype(np.int64).tolist()))


def to_tf_examples(columns: Mapping[str, np.ndarray]) -> list[bytes]:
    """Serializes example columns (name -> ``[N, ...]`` arrays; floats stay floats) into N ``tf.Example``s."""
    import tensorflow as tf

    names = sorted(columns)
    arrays = [np.asarray(columns[name]) for name in names]
    count = len(arrays[0]) if arrays else 0
    serialized = []
    for row in range(count):
        feature = {name: _tf_feature(array[row]) for name, array in zip(names, arrays)}
        serialized.append(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return serialized
