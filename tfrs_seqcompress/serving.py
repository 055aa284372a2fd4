"""Export for TF Serving: a ``serving_default`` signature over serialized ``tf.Example``, and warmup.

The exported SavedModel follows TF Serving's conventions:

* ``serving_default(examples: tf.string[batch]) -> {"score": float[batch], "logit": float[batch]}``
  — ``examples`` are history examples (``features``) without the label; ``score`` is the click
  probability;
* the data contract is baked into the signature (the parse spec), so nothing is read from the
  training machine at serving time;
* ``assets.extra/tf_serving_warmup_requests``: a TFRecord of ``PredictionLog``s (at most 1,000)
  that TF Serving replays on load so the first real request is not slow; the export replays them
  itself (``replay_warmup``) so a file that does not match the signature fails the export, not the
  server's load;
* an empty request (no examples) is an InvalidArgumentError naming the input, and so is a history
  that breaks the data contract (``history_checks``: mask, order, leakage, non-finite tokens);
* for models whose encoder compresses the history into agents (HiSAC, HiSAC over IAT tokens,
  global clusters), two more signatures: ``compute_agents(examples) -> {agent_vectors [B, K, D], agent_mask [B, K],
  agent_weights [B, K]}`` run offline once per user on a history example, and
  ``score_with_agents(examples) -> {score, logit}`` over examples holding only the target and
  context features plus ``agent_vectors`` (``K * D`` floats), ``agent_mask`` (``K`` ints) and
  ``agent_weights`` (``K`` floats, the vote shares), and for a model with a short-term base
  (``layers.WithShortTermBase``) the user's latest N events as ``hist_*`` ``[N]``, checked like
  any history: online cost O(K) (O(K + N)) per candidate, whatever the history length.

Example::

    export_serving_model(model, "saved_models/ranker/1", warmup_examples=serialized[:16])
    loaded = tf.saved_model.load("saved_models/ranker/1")
    scores = loaded.signatures["serving_default"](examples=tf.constant(serialized))["score"]
"""
from __future__ import annotations

import os
import tempfile
import warnings
from typing import Mapping, Sequence

import tensorflow as tf

from tfrs_seqcompress import features as F
from tfrs_seqcompress.agent_model import AgentModel, agent_capable_encoders
from tfrs_seqcompress.data import raw_ids
from tfrs_seqcompress.raw_id_lookup import RawIdLookup, to_raw_id_examples

SIGNATURE_NAME = "serving_default"
# A raw-ID model's twin of serving_default over integer-ID examples (what the pipeline evaluates on).
ID_SIGNATURE_NAME = "serving_ids"
VOCABULARIES_FILE = os.path.join("assets.extra", "vocabularies.json")
COMPUTE_AGENTS_SIGNATURE = "compute_agents"
SCORE_WITH_AGENTS_SIGNATURE = "score_with_agents"
INPUT_KEY = "examples"
SCORE_KEY = "score"
LOGIT_KEY = "logit"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000


def _parse(examples: tf.Tensor, spec: dict) -> dict:
    """Parses a request's examples; an empty request is an InvalidArgumentError, not an empty answer."""
    tf.debugging.assert_positive(tf.size(examples), message=(
        f"The request holds no examples: send one serialized tf.Example per candidate as input {INPUT_KEY!r}."))
    return tf.io.parse_example(examples, spec)


def _refuse_unless(condition: tf.Tensor, message: str) -> tf.Operation:
    return tf.debugging.Assert(tf.reduce_all(condition), [tf.constant(message)])


def history_checks(features: dict, against_target: bool = True) -> list:
    """In-graph checks of a request's histories against the data contract (as
    ``features.validate_history`` offline): ``hist_mask`` 0/1 with padding first, ``hist_timestamp``
    non-decreasing over the events, ``hist_token`` finite and — with ``against_target`` — every
    event strictly before the target's ``timestamp`` (a later one is leakage). Each failed check is
    an InvalidArgumentError naming the feature: TF Serving answers INVALID_ARGUMENT."""
    mask = features[F.HISTORY_MASK]
    times = features[F.history_name(F.TIMESTAMP)]
    both = (mask[:, 1:] > 0) & (mask[:, :-1] > 0)
    checks = [
        _refuse_unless((mask == 0) | (mask == 1),
                       f"Feature {F.HISTORY_MASK!r} must hold only 0 (padding) and 1 (event)."),
        _refuse_unless(mask[:, 1:] >= mask[:, :-1], f"Feature {F.HISTORY_MASK!r} must be right-aligned: "
                       "padding (0) first, events (1) last."),
        _refuse_unless(~both | (times[:, 1:] >= times[:, :-1]), f"Feature {F.history_name(F.TIMESTAMP)!r} must be "
                       "non-decreasing over the events (oldest first, most recent last)."),
    ]
    if against_target:
        checks.append(_refuse_unless((mask == 0) | (times < features[F.TIMESTAMP][:, None]), (
            f"Leakage: feature {F.history_name(F.TIMESTAMP)!r} has an event at or after the example's "
            f"{F.TIMESTAMP!r}; a history holds only events strictly before the request.")))
    if F.HISTORY_TOKEN in features:
        checks.append(_refuse_unless(tf.math.is_finite(features[F.HISTORY_TOKEN]),
                                     f"Feature {F.HISTORY_TOKEN!r} contains NaN or infinity."))
    if F.history_name(F.LABEL) in features:
        labels = features[F.history_name(F.LABEL)]
        checks.append(_refuse_unless((labels == 0) | (labels == 1),
                                     f"Feature {F.history_name(F.LABEL)!r} must hold only 0 and 1."))
    # Without a target (compute_agents) only the history is read, so only the history is checked.
    return checks + id_checks(features if against_target else
                              {name: value for name, value in features.items() if name.startswith(F.HISTORY_PREFIX)})


def id_checks(features: dict) -> list:
    """Every ID and event feature of a request is >= 0 (0 is padding / unknown; an ID beyond the
    vocabulary falls back to unknown, a negative one is malformed)."""
    return [_refuse_unless(value >= 0, f"Feature {name!r} must hold IDs >= 0 (0 is padding / unknown).")
            for name, value in sorted(features.items())
            if value.dtype == tf.int64 and name not in (F.TIMESTAMP, F.history_name(F.TIMESTAMP), F.TOKEN_VERSION)]


def agent_checks(features: dict) -> list:
    """In-graph checks of precomputed agents, like ``history_checks`` for histories: vectors finite,
    ``agent_mask`` 0/1, ``agent_weights`` finite and >= 0."""
    weights = features[F.AGENT_WEIGHTS]
    mask = features[F.AGENT_MASK]
    return [
        _refuse_unless(tf.math.is_finite(features[F.AGENT_VECTORS]), f"Feature {F.AGENT_VECTORS!r} contains NaN or "
                       "infinity."),
        _refuse_unless((mask == 0) | (mask == 1), f"Feature {F.AGENT_MASK!r} must hold only 0 (no agent) and 1."),
        _refuse_unless(tf.math.is_finite(weights) & (weights >= 0), f"Feature {F.AGENT_WEIGHTS!r} must be finite "
                       "and >= 0 (vote shares)."),
    ] + id_checks(features)


def _checked_history(examples: tf.Tensor, spec: dict, against_target: bool = True,
                     lookup: RawIdLookup | None = None) -> dict:
    """A request's parsed history examples (raw IDs mapped by ``lookup``), usable only once
    ``history_checks`` passed."""
    if lookup is None:
        features = _parse(examples, spec)
    else:
        features = lookup(_parse(examples, lookup.parse_spec(spec)))
    with tf.control_dependencies(history_checks(features, against_target)):
        return {name: tf.identity(value) for name, value in features.items()}


def serving_function(model: tf.keras.Model, schema: F.DataSchema,
                     lookup: RawIdLookup | None = None) -> tf.types.experimental.ConcreteFunction:
    """The ``serving_default`` concrete function of ``model`` (parses, scores, names outputs); with
    ``lookup`` its examples carry the raw values of the lookup's columns."""
    spec = F.example_parse_spec(schema, with_label=False)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_KEY)])
    def serve(examples):
        logits = model(_checked_history(examples, spec, lookup=lookup), training=False)
        return {SCORE_KEY: tf.sigmoid(logits), LOGIT_KEY: logits}

    return serve.get_concrete_function()


def agent_parse_spec(model: tf.keras.Model, schema: F.DataSchema) -> dict:
    """The parse spec of a ``score_with_agents`` example: target + context fields and the agents
    (their shape from the model's ``agent_shape()``, ``agent_model.AgentModel``), and with a
    short-term base the user's latest N events (``agent_recent_events()``) as history features ``[N]``."""
    num_agents, dim = model.agent_shape()
    spec = {name: tf.io.FixedLenFeature([], tf.int64) for name in F.TARGET_FIELDS + schema.context_features}
    spec[F.AGENT_VECTORS] = tf.io.FixedLenFeature([num_agents, dim], tf.float32)
    spec[F.AGENT_MASK] = tf.io.FixedLenFeature([num_agents], tf.int64)
    spec[F.AGENT_WEIGHTS] = tf.io.FixedLenFeature([num_agents], tf.float32)
    recent = model.agent_recent_events()
    spec.update({name: tf.io.FixedLenFeature([recent], tf.int64) for name in model.recent_event_features()})
    return spec


def agent_functions(model: tf.keras.Model, schema: F.DataSchema) -> dict:
    """``compute_agents`` and ``score_with_agents`` concrete functions (for agent-based encoders)."""
    history_spec = F.example_parse_spec(schema, with_label=False)
    agents_spec = agent_parse_spec(model, schema)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_KEY)])
    def compute_agents(examples):
        return model.compute_agents(_checked_history(examples, history_spec, against_target=False))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_KEY)])
    def score_with_agents(examples):
        features = _parse(examples, agents_spec)
        recent_checks = history_checks(features) if model.agent_recent_events() else []
        with tf.control_dependencies(agent_checks(features) + recent_checks):
            features = {name: tf.identity(value) for name, value in features.items()}
        logits = model.score_with_agents(features)
        return {SCORE_KEY: tf.sigmoid(logits), LOGIT_KEY: logits}

    return {COMPUTE_AGENTS_SIGNATURE: compute_agents.get_concrete_function(),
            SCORE_WITH_AGENTS_SIGNATURE: score_with_agents.get_concrete_function()}


def predict_request(serialized_examples: Sequence[bytes], model_name: str = "ranker",
                    signature_name: str = SIGNATURE_NAME, version: int | None = None):
    """A TF Serving ``PredictRequest`` carrying serialized examples (newest version unless ``version``)."""
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    request.inputs[INPUT_KEY].CopyFrom(tf.make_tensor_proto(list(serialized_examples), dtype=tf.string))
    return request


def write_warmup_requests(export_dir: str, serialized_examples: Sequence[bytes], model_name: str = "ranker",
                          batch_size: int = 8) -> str:
    """Writes ``assets.extra/tf_serving_warmup_requests`` (``PredictionLog`` records) into ``export_dir``."""
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(export_dir, WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    batches = [serialized_examples[start:start + batch_size]
               for start in range(0, len(serialized_examples), batch_size)][:MAX_WARMUP_RECORDS]
    with tf.io.TFRecordWriter(path) as writer:
        for batch in batches:
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=predict_request(batch, model_name)))
            writer.write(log.SerializeToString())
    return path


def export_serving_model(model: tf.keras.Model, export_dir: str, schema: F.DataSchema | None = None,
                         warmup_examples: Sequence[bytes] = (), model_name: str = "ranker",
                         vocabularies: Mapping[str, Sequence[str]] | None = None) -> str:
    """Saves ``model`` as a TF Serving SavedModel in ``export_dir`` (with warmup if examples given).

    Args:
      model: a trained ``models.RankingModel`` (or any Keras model over history examples; an
        ``agent_model.AgentModel`` also gets ``compute_agents`` and ``score_with_agents``).
      export_dir: the version directory, e.g. ``saved_models/<model_name>/<version>``.
      schema: the data contract; default ``model.schema``.
      warmup_examples: serialized history examples (label optional) for the warmup file.
      vocabularies: for a log of raw IDs (``data.raw_ids``), each raw column's values. Then
        ``serving_default`` takes examples carrying those columns' raw values (strings, mapped
        in-graph by tables saved as assets; unknown -> ``raw_ids.unknown_id``), ``serving_ids``
        the integer-ID examples, and the vocabularies are written to
        ``assets.extra/vocabularies.json``. ``user_id`` is parsed raw but not looked up (no model
        reads it): its vocabulary is not shipped. The agent signatures take integer IDs.
    """
    schema = schema or model.schema
    with_agents = isinstance(model, AgentModel) and model.supports_agents()
    if not isinstance(model, AgentModel) and agent_capable_encoders(model):
        warnings.warn(f"{type(model).__name__} holds {agent_capable_encoders(model)}, which can precompute agents, "
                      "but is not an agent_model.AgentModel: only serving_default is exported (no O(K) "
                      "compute_agents / score_with_agents path).", stacklevel=2)
    signatures = {SIGNATURE_NAME: serving_function(model, schema)}
    with tempfile.TemporaryDirectory(prefix="vocabularies_") as staging:
        if vocabularies:
            # No model reads user_id: it is parsed raw, and its vocabulary (the users) is not shipped.
            vocabularies = {**vocabularies, **({F.USER_ID: []} if F.USER_ID in vocabularies else {})}
            model.raw_id_lookup = RawIdLookup(vocabularies, staging)   # an attribute: saved with the model
            signatures = {SIGNATURE_NAME: serving_function(model, schema, model.raw_id_lookup),
                          ID_SIGNATURE_NAME: signatures[SIGNATURE_NAME]}
            warmup_examples = to_raw_id_examples(list(warmup_examples), vocabularies)
        if with_agents:
            signatures.update(agent_functions(model, schema))
        model.save(export_dir, save_format="tf", signatures=signatures)
    if vocabularies:
        tf.io.gfile.makedirs(os.path.join(export_dir, "assets.extra"))
        with tf.io.gfile.GFile(os.path.join(export_dir, VOCABULARIES_FILE), "w") as handle:
            handle.write(raw_ids.vocabularies_json(vocabularies))
    if warmup_examples:
        write_warmup_requests(export_dir, list(warmup_examples), model_name)
        replay_warmup(export_dir)
    return export_dir


_NOISE = ("Graph execution error", "Detected at node", "<stack traces unavailable>", "[[")
_UNNAMED_EXAMPLE = "Name: <unknown>, "


def error_summary(error: tf.errors.OpError) -> str:
    """TensorFlow's error message without the graph-execution noise (node names, stack markers) and
    without the escaping of printed string tensors (a ``tf.debugging.Assert`` message's quotes)."""
    lines = [line.strip() for line in error.message.splitlines()]
    kept = [line.split(_UNNAMED_EXAMPLE)[-1] for line in lines if line and not line.startswith(_NOISE)]
    return (" ".join(kept).split(" [[")[0] or error.message).replace("\\'", "'")


class RequestError(ValueError):
    """A ``PredictRequest`` a SavedModel cannot take: an unknown signature, no ``examples`` input, or
    an entry of ``examples`` that is not a tf.Example."""


def run_predict_request(loaded, request) -> dict:
    """Runs a TF Serving ``PredictRequest`` through the signature it names (``serving_default`` if
    none) of a loaded SavedModel, as the model server does; returns the signature's outputs.

    Raises:
      RequestError: the signature or the ``examples`` input is missing (TF Serving's words), or
        an example is not a tf.Example at all (TensorFlow echoes the raw bytes into its message
        and then fails to decode that message: the parse error is reported in its place).
      tf.errors.InvalidArgumentError: the examples do not parse against the signature.
    """
    name = request.model_spec.signature_name or SIGNATURE_NAME
    if name not in loaded.signatures:
        raise RequestError(f"Serving signature name: {name!r} not found in signature def; have "
                           f"{sorted(loaded.signatures)}.")
    if INPUT_KEY not in request.inputs:
        raise RequestError(f"Request has no input {INPUT_KEY!r} (serialized tf.Examples); got "
                           f"{sorted(request.inputs)}.")
    try:
        return loaded.signatures[name](examples=tf.constant(tf.make_ndarray(request.inputs[INPUT_KEY])))
    except UnicodeDecodeError:
        raise RequestError(f"Could not parse example input: an entry of {INPUT_KEY!r} is not a serialized "
                           "tf.Example (malformed or truncated bytes).") from None


class WarmupError(ValueError):
    """A warmup record the exported model cannot answer (TF Serving would fail to load the model)."""


def replay_warmup(export_dir: str) -> int:
    """Replays ``assets.extra/tf_serving_warmup_requests`` through the SavedModel's signatures, as
    TF Serving does when it loads a version; returns the number of requests replayed.

    Raises:
      WarmupError: naming the record and the signature, with the reason (e.g. the feature whose
        shape or dtype does not match).
    """
    from tensorflow_serving.apis import prediction_log_pb2

    loaded = tf.saved_model.load(export_dir)
    records = tf.data.TFRecordDataset(os.path.join(export_dir, WARMUP_FILE)).as_numpy_iterator()
    count = 0
    for count, record in enumerate(records, start=1):
        request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        name = request.model_spec.signature_name or SIGNATURE_NAME
        try:
            run_predict_request(loaded, request)
        except RequestError as error:
            raise WarmupError(f"Warmup record {count - 1} asks for signature {name!r} of {export_dir}: "
                              f"{error}") from error
        except tf.errors.InvalidArgumentError as error:
            raise WarmupError(f"Warmup record {count - 1} does not match signature {name!r} of {export_dir}: "
                              f"{error_summary(error)}") from error
    return count
