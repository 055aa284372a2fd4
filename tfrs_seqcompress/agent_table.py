"""Every user's precomputed agents, written once per served model: what a feature store serves.

HiSAC's online path scores candidates against a user's agents (``score_with_agents``, O(K) per
candidate); the agents depend on the history only, so they are computed offline with the served
model's own ``compute_agents`` signature and stored keyed by user. Each record also carries the
model version they were made with: agents of another model (another codebook, other weights)
must not be scored by this one, and ``read_agent_table`` refuses them.

On disk: a TFRecord file of ``tf.Example``s, one per user: ``user_id``, ``model_version`` (int64),
``agent_vectors`` (``K * A`` floats), ``agent_mask`` (``K`` ints), ``agent_weights`` (``K`` floats).

Example::

    table = compute_agent_table("saved_models/ranker/1763900000", log, schema)   # user -> agents
    write_agent_table("agents/1763900000.tfrecord", table, model_version=1763900000)
    agents = read_agent_table("agents/1763900000.tfrecord", expected_version=1763900000)[user_id]
    request = serving_client.agent_examples(agents, user_id, candidates, schema)
"""
from __future__ import annotations

import pathlib
from typing import Mapping

import numpy as np
import tensorflow as tf

from tfrs_seqcompress import features as F
from tfrs_seqcompress import serving
from tfrs_seqcompress.data import history

MODEL_VERSION = "model_version"
AGENT_FEATURES = (F.AGENT_VECTORS, F.AGENT_MASK, F.AGENT_WEIGHTS)


class AgentVersionError(ValueError):
    """Agents made by another model version than the one expected."""


def latest_histories(events: Mapping[str, np.ndarray], schema: F.DataSchema,
                     as_of: int | None = None) -> dict[str, np.ndarray]:
    """Every user's history as of ``as_of`` (default: after the log's last event): the last L of
    the user's events strictly before it, as history-example columns ``[num_users, L]``.

    The target fields are placeholders (the user, ``as_of``, item 0): ``compute_agents`` never reads
    them."""
    log = F.validate_log(events, schema)
    as_of = int(log[F.TIMESTAMP].max()) + 1 if as_of is None else int(as_of)
    index = history.HistoryIndex({name: values[log[F.TIMESTAMP] < as_of] for name, values in log.items()}, schema)
    users = index.events[F.USER_ID]
    last_rows = np.flatnonzero(np.r_[users[1:] != users[:-1], True])  # each user's latest event
    gather, mask = history.last_positions(last_rows + 1, schema.history_length, first=index.first[last_rows])
    columns = {F.USER_ID: users[last_rows].astype(np.int64), F.ITEM_ID: np.zeros(len(last_rows), np.int64),
               F.CATEGORY: np.zeros(len(last_rows), np.int64), F.TIMESTAMP: np.full(len(last_rows), as_of, np.int64)}
    columns.update({name: np.zeros(len(last_rows), np.int64) for name in schema.context_features})
    for field in schema.history_fields:
        columns[F.history_name(field)] = np.where(mask, index.events[field][gather], 0).astype(np.int64)
    columns[F.HISTORY_MASK] = mask.astype(np.int64)
    return columns


def compute_agent_table(model_dir: str, events: Mapping[str, np.ndarray], schema: F.DataSchema,
                        as_of: int | None = None, batch_size: int = 256,
                        token_store=None) -> dict[int, dict[str, np.ndarray]]:
    """``user_id -> {agent_vectors [K, A], agent_mask [K], agent_weights [K]}`` from the served
    SavedModel's ``compute_agents`` signature, over every user's ``latest_histories``.

    A model over IAT tokens (``schema.token_dim > 0``, e.g. ``hisac_iat``) also needs each
    history's tokens: pass the run's ``iat.TokenStore`` (of ``schema.token_version``).

    Raises:
      ValueError: the SavedModel has no ``compute_agents`` signature (not an agent model), or the
        schema has tokens and no ``token_store`` was given.
      TokenVersionError: the token store is of another version than the schema's.
    """
    if schema.token_dim and token_store is None:
        raise ValueError(f"The schema's histories carry {schema.token_dim}-dim IAT tokens (version "
                         f"{schema.token_version!r}): pass token_store= (the run's iat.TokenStore).")
    loaded = tf.saved_model.load(model_dir)
    if serving.COMPUTE_AGENTS_SIGNATURE not in loaded.signatures:
        raise ValueError(f"{model_dir} has no {serving.COMPUTE_AGENTS_SIGNATURE!r} signature (signatures: "
                         f"{sorted(loaded.signatures)}): only agent models (HiSAC, global clusters) have agents.")
    compute = loaded.signatures[serving.COMPUTE_AGENTS_SIGNATURE]
    columns = latest_histories(events, schema, as_of)
    if schema.token_dim:
        columns = token_store.attach(columns, expected_version=schema.token_version)
    table = {}
    for begin in range(0, len(columns[F.USER_ID]), batch_size):
        batch = {name: values[begin:begin + batch_size] for name, values in columns.items()}
        outputs = compute(examples=tf.constant(F.to_tf_examples(batch)))
        agents = {name: outputs[name].numpy() for name in AGENT_FEATURES}  # once per batch, not per user
        for row, user in enumerate(batch[F.USER_ID]):
            table[int(user)] = {name: values[row] for name, values in agents.items()}
    return table


def write_agent_table(path: str | pathlib.Path, table: Mapping[int, Mapping[str, np.ndarray]],
                      model_version: int) -> str:
    """Writes ``table`` as TFRecord (users in ascending order), each record tagged ``model_version``."""
    path = str(path)
    tf.io.gfile.makedirs(str(pathlib.PurePath(path).parent))
    with tf.io.TFRecordWriter(path) as writer:
        for user in sorted(table):
            columns = {F.USER_ID: np.array([user]), MODEL_VERSION: np.array([model_version]),
                       **{name: np.asarray(table[user][name])[None] for name in AGENT_FEATURES}}
            writer.write(F.to_tf_examples(columns)[0])
    return path


def read_agent_table(path: str | pathlib.Path, expected_version: int | None = None) -> dict[int, dict[str, np.ndarray]]:
    """``user_id -> agents`` from a file ``write_agent_table`` wrote.

    Raises:
      AgentVersionError: a record of another model version than ``expected_version``.
      ValueError: a record without the agent features, or a user listed twice.
    """
    table = {}
    for number, record in enumerate(tf.data.TFRecordDataset(str(path)).as_numpy_iterator()):
        feature = tf.train.Example.FromString(record).features.feature
        missing = [name for name in (F.USER_ID, MODEL_VERSION) + AGENT_FEATURES if name not in feature]
        if missing:
            raise ValueError(f"{path} record {number} lacks {missing}: not an agent table.")
        version = feature[MODEL_VERSION].int64_list.value[0]
        if expected_version is not None and version != expected_version:
            raise AgentVersionError(f"{path} record {number} holds agents of model version {version}; the served "
                                    f"model is version {expected_version}: recompute the agents with it.")
        user = int(feature[F.USER_ID].int64_list.value[0])
        if user in table:
            raise ValueError(f"{path}: user {user} is listed twice.")
        mask = np.array(feature[F.AGENT_MASK].int64_list.value, np.int64)
        vectors = np.array(feature[F.AGENT_VECTORS].float_list.value, np.float32).reshape(len(mask), -1)
        table[user] = {F.AGENT_VECTORS: vectors, F.AGENT_MASK: mask,
                       F.AGENT_WEIGHTS: np.array(feature[F.AGENT_WEIGHTS].float_list.value, np.float32)}
    return table
