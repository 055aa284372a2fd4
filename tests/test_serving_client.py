"""The serving client: requests built from the data contract's features score like the model in
training, through the exported SavedModel's signatures; a bad request fails before it is sent."""
import base64

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from tests import helpers
from tfrs_seqcompress import features as F
from tfrs_seqcompress import serving, serving_client

CANDIDATES = 10


@pytest.fixture(scope="module")
def served(exported_hisac):
    world, examples, model, export_dir = exported_hisac
    schema = world.dataset.schema
    row = len(examples[F.USER_ID]) - 1  # one user's latest history, 10 candidate items
    user = {name: values[row] for name, values in examples.items()
            if name.startswith(F.HISTORY_PREFIX) or name in (F.USER_ID, F.HISTORY_MASK)}
    items = np.arange(1, CANDIDATES + 1)
    candidates = {F.ITEM_ID: items, F.CATEGORY: world.dataset.items[F.CATEGORY][items],
                  F.TIMESTAMP: np.full(CANDIDATES, examples[F.TIMESTAMP][row])}
    candidates.update({name: np.full(CANDIDATES, examples[name][row]) for name in schema.context_features})
    columns = {**{name: np.repeat(values[None], CANDIDATES, 0) for name, values in user.items()}, **candidates}
    expected = tf.sigmoid(model({name: tf.constant(values) for name, values in columns.items()})).numpy()
    return helpers.load_saved_model(str(export_dir)), schema, user, candidates, expected


def _call(loaded, request: predict_pb2.PredictRequest) -> np.ndarray:
    """What the model server does with a Predict request: the named signature on the input tensor."""
    signature = loaded.signatures[request.model_spec.signature_name]
    examples = tf.constant(tf.make_ndarray(request.inputs[serving.INPUT_KEY]))
    response = predict_pb2.PredictResponse()
    response.outputs[serving.SCORE_KEY].CopyFrom(tf.make_tensor_proto(signature(examples=examples)[serving.SCORE_KEY]))
    return serving_client.response_scores(response)


def test_grpc_and_rest_requests_score_like_the_trained_model(served):
    loaded, schema, user, candidates, expected = served
    serialized = serving_client.candidate_examples(user, candidates, schema)
    request = serving_client.grpc_request(serialized, model_name="ranker", version=1)
    assert request.model_spec.name == "ranker" and request.model_spec.version.value == 1
    np.testing.assert_allclose(_call(loaded, request), expected, rtol=1e-5, atol=1e-6)
    body = serving_client.rest_request(serialized)
    assert body["signature_name"] == "serving_default"
    assert [base64.b64decode(instance["examples"]["b64"]) for instance in body["instances"]] == serialized


def test_precomputed_agent_requests_score_like_the_history(served):
    loaded, schema, user, candidates, expected = served
    history_request = serving_client.grpc_request(serving_client.candidate_examples(user, candidates, schema)[:1],
                                                  signature_name=serving.COMPUTE_AGENTS_SIGNATURE)
    agents = loaded.signatures[serving.COMPUTE_AGENTS_SIGNATURE](
        examples=tf.constant(tf.make_ndarray(history_request.inputs[serving.INPUT_KEY])))
    one_user = {name: agents[name].numpy()[0] for name in (F.AGENT_VECTORS, F.AGENT_MASK, F.AGENT_WEIGHTS)}
    serialized = serving_client.agent_examples(one_user, int(user[F.USER_ID]), candidates, schema)
    request = serving_client.grpc_request(serialized, signature_name=serving.SCORE_WITH_AGENTS_SIGNATURE)
    np.testing.assert_allclose(_call(loaded, request), expected, rtol=1e-5, atol=1e-6)


def _with(mapping, **changes):
    return {**mapping, **changes}


@pytest.mark.parametrize("change,message", [
    (lambda user, candidates: (user, {k: v for k, v in candidates.items() if k != "hour"}), "missing feature\\(s\\) \\['hour'\\]"),
    (lambda user, candidates: (user, _with(candidates, timestamp=candidates["timestamp"] * 0)), "hist_timestamp"),
    (lambda user, candidates: (_with(user, hist_item_id=user["hist_item_id"][:5]), candidates), "hist_item_id"),
    (lambda user, candidates: (user, _with(candidates, item_id=candidates["item_id"] + 10**6)), "item_id"),
    (lambda user, candidates: (user, {name: values[:0] for name, values in candidates.items()}), "at least one candidate"),
])
def test_bad_requests_fail_before_sending_and_name_the_feature(served, change, message):
    _, schema, user, candidates, _ = served
    bad_user, bad_candidates = change(user, candidates)
    with pytest.raises(ValueError, match=message):
        serving_client.candidate_examples(bad_user, bad_candidates, schema)


def test_bad_agents_are_named(served):
    _, schema, user, candidates, _ = served
    agents = {F.AGENT_VECTORS: np.zeros((4, 32)), F.AGENT_MASK: np.ones(4), F.AGENT_WEIGHTS: np.ones(3)}
    with pytest.raises(ValueError, match="agent_weights"):
        serving_client.agent_examples(agents, 1, candidates, schema)
    with pytest.raises(ValueError, match="needs feature\\(s\\) \\['agent_mask'\\]"):
        serving_client.agent_examples({F.AGENT_VECTORS: np.zeros((4, 32)), F.AGENT_WEIGHTS: np.ones(4)}, 1,
                                      candidates, schema)


def test_requests_built_from_raw_events_equal_those_built_from_the_training_history(served):
    from tfrs_seqcompress.data import synthetic
    loaded, schema, user, candidates, expected = served
    log = synthetic.generate(synthetic.SyntheticConfig(num_users=20, mean_history=60, history_length=12,
                                                       seed=2)).dataset.log  # the world helpers trained on
    built = serving_client.examples_from_events(log, int(user[F.USER_ID]), candidates, schema)
    from_history = serving_client.candidate_examples(user, candidates, schema)
    assert [helpers.decoded_example(e) for e in built] == [helpers.decoded_example(e) for e in from_history]
    np.testing.assert_allclose(_call(loaded, serving_client.grpc_request(built)), expected, rtol=1e-5, atol=1e-6)
    mixed = {**candidates, F.TIMESTAMP: candidates[F.TIMESTAMP] + np.arange(CANDIDATES)}
    with pytest.raises(ValueError, match="share one 'timestamp'"):
        serving_client.examples_from_events(log, int(user[F.USER_ID]), mixed, schema)
