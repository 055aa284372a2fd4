"""Client side of a TF Serving deployment: requests built from the data contract's features.

A request ranks C candidates for one user. Each candidate becomes one serialized ``tf.Example``
holding the user's history (``hist_*`` ``[L]``, ``hist_mask``; for IAT also ``hist_token``
``[L, d]`` and ``token_version``) and the candidate's own fields — exactly the examples the model
was trained on — checked against the contract first, so a bad request fails here with the
feature's name rather than as INVALID_ARGUMENT from the server. For HiSAC's precomputed path the
history is replaced by the user's agents (``agent_vectors`` / ``agent_mask`` / ``agent_weights``
from the ``compute_agents`` signature), plus the user's latest N events when the model has a
short-term base (``recent_events``).

Example::

    serialized = candidate_examples(user_history, candidates, schema)     # or, from raw events:
    serialized = examples_from_events(log, user_id, candidates, schema)
    request = grpc_request(serialized, model_name="ranker")   # PredictionService/Predict on :8500
    body = rest_request(serialized)                           # POST :8501/v1/models/ranker:predict
    scores = response_scores(stub.Predict(request, timeout=1.0))
"""
from __future__ import annotations

import base64
import dataclasses
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfrs_seqcompress import features as F
from tfrs_seqcompress import serving

CANDIDATE_FIELDS = (F.ITEM_ID, F.CATEGORY, F.TIMESTAMP)


def _per_candidate(user: Mapping[str, np.ndarray], candidates: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The user's features repeated once per candidate, plus the candidates' own columns."""
    if F.ITEM_ID not in candidates:
        raise ValueError(f"Candidates are missing feature {F.ITEM_ID!r}; got {sorted(candidates)}.")
    count = len(np.asarray(candidates[F.ITEM_ID]))
    if count == 0:
        raise ValueError("A request needs at least one candidate; got none.")
    columns = {name: np.repeat(np.asarray(values)[None], count, axis=0) for name, values in user.items()}
    columns.update({name: np.asarray(values) for name, values in candidates.items()})
    return columns


def candidate_examples(user: Mapping[str, np.ndarray], candidates: Mapping[str, np.ndarray],
                       schema: F.DataSchema) -> list[bytes]:
    """Serialized examples for ``serving_default``, one per candidate, checked against the contract.

    Args:
      user: ``user_id`` (scalar) and the history: every ``hist_<field>`` and ``hist_mask`` ``[L]``
        (right-aligned, as ``data.history`` builds them); for IAT ``hist_token`` ``[L, d]`` and
        ``token_version``.
      candidates: ``item_id``, ``category``, ``timestamp`` (the request time) and the context
        features, each ``[C]``.
      schema: the model's data contract.

    Raises:
      ValueError: naming a missing, misshapen or out-of-range feature, a history event at or after
        the request time, or tokens of another version.
    """
    columns = _per_candidate(user, candidates)
    return F.to_tf_examples(F.validate_examples(columns, schema, with_label=False))


def examples_from_events(events: Mapping[str, np.ndarray], user_id: int, candidates: Mapping[str, np.ndarray],
                         schema: F.DataSchema, event_arrays: Mapping[str, np.ndarray] | None = None) -> list[bytes]:
    """``candidate_examples`` with the user's history built from raw events at the request time.

    Args:
      events: the log the user's events come from (``data.history.request_history``).
      user_id: the user.
      candidates: as for ``candidate_examples``; their ``timestamp`` is the request time (one
        value for the whole request).
      event_arrays: e.g. ``{"token": tokens}`` aligned with ``events`` for IAT models (the
        request then carries ``token_version`` from ``schema.token_version``).

    For models trained on the last L events. A model trained on bounded windows
    (``HistoryIndex.search_examples``) reads other events: build its requests with
    ``data.history.request_search_history``.

    Raises:
      ValueError: candidates of different request times, or anything ``candidate_examples`` refuses.
    """
    from tfrs_seqcompress.data import history

    times = np.unique(np.asarray(candidates.get(F.TIMESTAMP, [])))
    if len(times) != 1:
        raise ValueError(f"Candidates of one request share one {F.TIMESTAMP!r} (the request time); got "
                         f"{times[:5].tolist()}.")
    user = history.request_history(events, user_id, int(times[0]), schema, event_arrays)
    if schema.token_dim:  # IAT: the tokens' version travels with them
        user[F.TOKEN_VERSION] = np.int64(F.token_version_id(schema.token_version))
    return candidate_examples(user, candidates, schema)


def recent_events(events: Mapping[str, np.ndarray], user_id: int, request_time: int, schema: F.DataSchema,
                  count: int) -> dict[str, np.ndarray]:
    """The user's latest ``count`` events strictly before ``request_time``, as ``hist_*`` /
    ``hist_mask`` arrays ``[count]`` (right-aligned): what a ``score_with_agents`` request of a model
    with a short-term base (``WithShortTermBase(last_n=count)``) carries beside the agents."""
    from tfrs_seqcompress.data import history

    if count < 1:
        raise ValueError(f"count must be the short-term base's N >= 1 (its last_n), got {count}.")
    user = history.request_history(events, user_id, request_time, _recent_schema(schema, count))
    return {name: values for name, values in user.items() if name != F.USER_ID}


def _recent_schema(schema: F.DataSchema, count: int) -> F.DataSchema:
    """The contract of a history of the latest ``count`` events (without IAT tokens)."""
    return dataclasses.replace(schema, history_length=count, token_dim=0, token_version="")


def _checked_recent(recent: Mapping[str, np.ndarray], user_id: int, candidates: Mapping[str, np.ndarray],
                    schema: F.DataSchema) -> dict[str, np.ndarray]:
    """``recent`` checked against the contract as a history of its own length, before every candidate."""
    if F.HISTORY_MASK not in recent or np.ndim(recent[F.HISTORY_MASK]) != 1 or len(recent[F.HISTORY_MASK]) < 1:
        raise ValueError(f"The recent events need {F.HISTORY_MASK!r} [N] (N >= 1) and every hist_<field> [N]; got "
                         f"{sorted(recent)}.")
    recent = {name: values for name, values in recent.items() if name.startswith(F.HISTORY_PREFIX)}
    short = _recent_schema(schema, len(recent[F.HISTORY_MASK]))
    F.validate_examples(_per_candidate({F.USER_ID: np.int64(user_id), **recent}, candidates), short, with_label=False)
    return {name: np.asarray(values) for name, values in recent.items()}


def agent_examples(agents: Mapping[str, np.ndarray], user_id: int, candidates: Mapping[str, np.ndarray],
                   schema: F.DataSchema, recent: Mapping[str, np.ndarray] | None = None) -> list[bytes]:
    """Serialized examples for ``score_with_agents``: each candidate plus the user's agents.

    Args:
      agents: one user's ``agent_vectors`` ``[K, D]``, ``agent_mask`` ``[K]``, ``agent_weights``
        ``[K]`` (a row of the ``compute_agents`` output).
      user_id: the user.
      candidates: as for ``candidate_examples``.
      recent: for a model with a short-term base, the user's latest N events before the request
        (``recent_events``): every ``hist_<field>`` and ``hist_mask`` ``[N]``.

    Raises:
      ValueError: a missing agent or candidate feature, agents of inconsistent shapes, or recent
        events the contract refuses (misshapen, unsorted, at or after the request time).
    """
    missing = [name for name in (F.AGENT_VECTORS, F.AGENT_MASK, F.AGENT_WEIGHTS) if name not in agents]
    missing += [name for name in CANDIDATE_FIELDS + schema.context_features if name not in candidates]
    if missing:
        raise ValueError(f"score_with_agents needs feature(s) {missing}.")
    vectors = np.asarray(agents[F.AGENT_VECTORS], np.float32)
    mask, weights = np.asarray(agents[F.AGENT_MASK]), np.asarray(agents[F.AGENT_WEIGHTS], np.float32)
    if vectors.ndim != 2 or mask.shape != (len(vectors),) or weights.shape != mask.shape:
        raise ValueError(f"Agents must be {F.AGENT_VECTORS!r} [K, D] with {F.AGENT_MASK!r} and {F.AGENT_WEIGHTS!r} "
                         f"[K]; got {list(vectors.shape)}, {list(mask.shape)}, {list(weights.shape)}.")
    if not np.isfinite(vectors).all():
        raise ValueError(f"{F.AGENT_VECTORS!r} contains NaN or infinity.")
    if not np.isin(mask, (0, 1)).all():
        raise ValueError(f"{F.AGENT_MASK!r} must hold only 0 and 1, got {np.unique(mask)[:5].tolist()}.")
    mask = mask.astype(np.int64)
    if user_id < 0:
        raise ValueError(f"{F.USER_ID!r} must be >= 0, got {user_id}.")
    if not (np.isfinite(weights) & (weights >= 0)).all():
        raise ValueError(f"{F.AGENT_WEIGHTS!r} must be finite and >= 0 (vote shares).")
    for name in CANDIDATE_FIELDS + schema.context_features:
        if (np.asarray(candidates[name]) < 0).any() and name != F.TIMESTAMP:
            raise ValueError(f"Candidate feature {name!r} must hold IDs >= 0.")
    user = {F.USER_ID: np.int64(user_id), F.AGENT_VECTORS: vectors, F.AGENT_MASK: mask, F.AGENT_WEIGHTS: weights}
    if recent is not None:
        user.update(_checked_recent(recent, user_id, candidates, schema))
    return F.to_tf_examples(_per_candidate(user, candidates))


def agent_examples_from_table(table_path: str, user_id: int, candidates: Mapping[str, np.ndarray],
                              schema: F.DataSchema, model_version: int,
                              recent: Mapping[str, np.ndarray] | None = None) -> list[bytes]:
    """``agent_examples`` with the user's agents read from an agent table (``agent_table``) written
    for the served ``model_version`` (another version's agents are refused); ``recent`` as there.

    Raises:
      agent_table.AgentVersionError: the table was made with another model version.
      KeyError: the user has no agents in the table (a new user: serve ``serving_default``).
    """
    from tfrs_seqcompress import agent_table

    table = agent_table.read_agent_table(table_path, expected_version=model_version)
    if user_id not in table:
        raise KeyError(f"User {user_id} has no agents in {table_path}; score them with serving_default.")
    return agent_examples(table[user_id], user_id, candidates, schema, recent)


def grpc_request(serialized_examples: Sequence[bytes], model_name: str = "ranker",
                 signature_name: str = serving.SIGNATURE_NAME, version: int | None = None):
    """A ``tensorflow_serving.apis`` ``PredictRequest`` (for ``PredictionService/Predict``)."""
    return serving.predict_request(serialized_examples, model_name, signature_name, version)


def rest_request(serialized_examples: Sequence[bytes], signature_name: str = serving.SIGNATURE_NAME) -> dict:
    """The same request as TF Serving's REST JSON (``POST /v1/models/<name>:predict``): binary
    strings travel base64-encoded as ``{"b64": ...}``."""
    return {"signature_name": signature_name,
            "instances": [{serving.INPUT_KEY: {"b64": base64.b64encode(record).decode("ascii")}}
                          for record in serialized_examples]}


def response_scores(response) -> np.ndarray:
    """``[C]`` scores from a ``PredictResponse``."""
    if serving.SCORE_KEY not in response.outputs:
        raise ValueError(f"The response has no {serving.SCORE_KEY!r} output; got {sorted(response.outputs)}.")
    return tf.make_ndarray(response.outputs[serving.SCORE_KEY])
