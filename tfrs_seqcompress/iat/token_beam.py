"""IAT tokens at scale: save/restore a source model, and a Beam job writing every event's token.

The token artefact is a directory:

* ``source_model/``: ``config.json`` (schema, scheme, token_dim) and Keras weights;
* ``tokens/tokens-*.gz``: GZIP TFRecords of ``tf.Example`` (``user_id``, ``timestamp``,
  ``item_id`` int64, ``token`` float[d]) — sharded, so writing scales with Beam's workers;
* ``metadata.json``: ``version`` (the source model's fingerprint), ``scheme``, ``token_dim``.

Workers rebuild the source model from ``source_model/`` and refuse weights whose fingerprint
differs from the recorded version.

Example::

    save_source_model(model, "artefact/source_model")
    with beam.Pipeline() as p:
        p | beam.Create(events) | WriteInstanceTokens("artefact/source_model", "artefact")
    store = read_token_store("artefact")          # in memory, for tests and benchmarks
"""
from __future__ import annotations

import json
import os
from typing import Iterable, Mapping

import apache_beam as beam
import numpy as np
import tensorflow as tf

from tfrs_seqcompress import features as F
from tfrs_seqcompress.iat.source_models import SourceModel
from tfrs_seqcompress.iat.store import TokenStore, TokenVersionError

CONFIG_FILE = "config.json"
WEIGHTS_PREFIX = "weights"
TOKENS_DIR = "tokens"
METADATA_FILE = "metadata.json"
TOKEN_FEATURE = "token"


def save_source_model(model: SourceModel, directory: str) -> str:
    """Writes the model's config and weights; returns its version (fingerprint)."""
    tf.io.gfile.makedirs(directory)
    config = {"schema": model.schema.to_json(), "scheme": model.scheme, "token_dim": model.token_dim,
              "version": model.fingerprint()}
    with tf.io.gfile.GFile(os.path.join(directory, CONFIG_FILE), "w") as handle:
        handle.write(json.dumps(config, indent=2))
    model.save_weights(os.path.join(directory, WEIGHTS_PREFIX))
    return config["version"]


def read_source_model_config(directory: str) -> dict:
    """``config.json`` of a saved source model: schema, scheme, token_dim, version."""
    with tf.io.gfile.GFile(os.path.join(directory, CONFIG_FILE)) as handle:
        return json.loads(handle.read())


def load_source_model(directory: str, expected_version: str | None = None) -> SourceModel:
    """Rebuilds a saved source model.

    Raises:
      TokenVersionError: the restored weights' fingerprint differs from the recorded (or expected) version.
    """
    config = read_source_model_config(directory)
    schema = F.DataSchema.from_json(config["schema"])
    model = SourceModel(schema, config["scheme"], token_dim=config["token_dim"])
    dummy = {name: tf.zeros([1, 2], tf.int64) for name in model.request_features() + model.outcome_features()}
    dummy.update({F.TIMESTAMP: tf.constant([[0, 1]], tf.int64), "mask": tf.ones([1, 2], tf.int64)})
    if config["scheme"] != "user_order":
        dummy = {name: values[:, 0] for name, values in dummy.items()}
    model(dummy)  # builds the variables, so the weights can be restored
    model.load_weights(os.path.join(directory, WEIGHTS_PREFIX)).expect_partial()
    version = model.fingerprint()
    for wanted in (config["version"], expected_version):
        if wanted is not None and wanted != version:
            raise TokenVersionError(f"Source model at {directory} has fingerprint {version!r}, expected {wanted!r}: "
                                    "weights and recorded version disagree.")
    return model


def token_record(user_id: int, timestamp: int, item_id: int, token: np.ndarray) -> bytes:
    feature = {name: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
               for name, value in ((F.USER_ID, user_id), (F.TIMESTAMP, timestamp), (F.ITEM_ID, item_id))}
    feature[TOKEN_FEATURE] = tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(token).tolist()))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def parse_token_record(serialized: bytes) -> tuple[int, tuple[int, int, np.ndarray]]:
    """``(user_id, (timestamp, item_id, token))`` of one token record."""
    feature_map = tf.train.Example.FromString(serialized).features.feature
    value = lambda name: int(feature_map[name].int64_list.value[0])  # noqa: E731
    token = np.array(feature_map[TOKEN_FEATURE].float_list.value, dtype=np.float32)
    return value(F.USER_ID), (value(F.TIMESTAMP), value(F.ITEM_ID), token)


class _TokenizeBatch(beam.DoFn):
    """Computes tokens for a batch of events with the source model restored once per worker."""

    def __init__(self, source_model_dir: str):
        self._source_model_dir = source_model_dir

    def setup(self):
        self._model = load_source_model(self._source_model_dir)
        self._tokens = tf.function(self._model.tokens)

    def process(self, events: list[Mapping[str, int]]) -> Iterable[bytes]:
        columns = {name: tf.constant([event[name] for event in events], tf.int64)
                   for name in self._model.request_features()}
        tokens = self._tokens(columns).numpy()
        for event, token in zip(events, tokens):
            yield token_record(event[F.USER_ID], event[F.TIMESTAMP], event[F.ITEM_ID], token)


class WriteInstanceTokens(beam.PTransform):
    """Event dicts -> token records under ``<output_dir>/tokens/`` and ``metadata.json``."""

    def __init__(self, source_model_dir: str, output_dir: str):
        super().__init__()
        self._source_model_dir, self._output_dir = source_model_dir, output_dir

    def expand(self, events):
        config = read_source_model_config(self._source_model_dir)
        metadata = {"version": config["version"], "scheme": config["scheme"], "token_dim": config["token_dim"]}
        tf.io.gfile.makedirs(self._output_dir)
        with tf.io.gfile.GFile(os.path.join(self._output_dir, METADATA_FILE), "w") as handle:
            handle.write(json.dumps(metadata, indent=2))
        return (events
                | "Batch" >> beam.BatchElements(min_batch_size=256, max_batch_size=4096)
                | "Tokenize" >> beam.ParDo(_TokenizeBatch(self._source_model_dir))
                | "Write" >> beam.io.WriteToTFRecord(os.path.join(self._output_dir, TOKENS_DIR, "tokens"),
                                                     file_name_suffix=".gz",
                                                     compression_type=beam.io.filesystem.CompressionTypes.GZIP))


def read_token_metadata(token_dir: str) -> dict:
    with tf.io.gfile.GFile(os.path.join(token_dir, METADATA_FILE)) as handle:
        return json.loads(handle.read())


def token_files(token_dir: str) -> list[str]:
    files = sorted(tf.io.gfile.glob(os.path.join(token_dir, TOKENS_DIR, "tokens*")))
    if not files:
        raise ValueError(f"No token records under {token_dir}/{TOKENS_DIR}/.")
    return files


def read_token_store(token_dir: str, expected_version: str | None = None) -> TokenStore:
    """Loads a whole token artefact into an in-memory ``TokenStore`` (small data, tests, benchmarks)."""
    metadata = read_token_metadata(token_dir)
    rows = [parse_token_record(record.numpy()) for record in
            tf.data.TFRecordDataset(token_files(token_dir), compression_type="GZIP")]
    keys = {F.USER_ID: np.array([user for user, _ in rows], np.int64),
            F.TIMESTAMP: np.array([value[0] for _, value in rows], np.int64),
            F.ITEM_ID: np.array([value[1] for _, value in rows], np.int64)}
    tokens = np.stack([value[2] for _, value in rows]) if rows else np.zeros((0, metadata["token_dim"]), np.float32)
    store = TokenStore.build(keys, tokens, version=metadata["version"], scheme=metadata["scheme"])
    store.check_version(expected_version)
    return store


def user_token_rows(user: int, events: Mapping[str, np.ndarray], tokens: list, token_dim: int) -> np.ndarray:
    """One user's tokens in the row order of that user's sorted events (``history.HistoryIndex``'s
    ``events``): ``[num_events, token_dim]`` float32, from the user's token records
    ``(timestamp, item_id, token)``. The ``token_rows`` of ``data.history_beam.BuildHistoryExamples``
    for IAT: the builder gathers them like any per-event column, for last-L and search windows alike.

    Raises:
      ValueError: the records are not exactly the user's events (tokens of another log, or missing).
    """
    keys = {F.USER_ID: np.full(len(tokens), user, np.int64),
            F.TIMESTAMP: np.array([token[0] for token in tokens], np.int64),
            F.ITEM_ID: np.array([token[1] for token in tokens], np.int64)}
    values = np.stack([token[2] for token in tokens]) if tokens else np.zeros((0, token_dim), np.float32)
    if values.shape[1] != token_dim:
        raise ValueError(f"Tokens of user {user} have dim {values.shape[1]}; the schema expects token_dim {token_dim}.")
    store = TokenStore.build(keys, values, version="", scheme="")   # sorted like the index: (time, item)
    if not (np.array_equal(store.timestamp, events[F.TIMESTAMP]) and np.array_equal(store.item_id, events[F.ITEM_ID])):
        raise ValueError(f"The token store's history of user {user} does not line up with the log's events "
                         f"({len(store.timestamp)} tokens for {len(events[F.TIMESTAMP])} events): were the tokens "
                         "computed on a different log?")
    return store.tokens
