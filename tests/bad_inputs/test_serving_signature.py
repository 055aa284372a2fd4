"""Bad-input corpus, serving: malformed requests to a pushed IAT model over TF Serving's gRPC API.

Every case is answered INVALID_ARGUMENT with a detail naming the feature; afterwards the model
directory is byte-identical and the same server still answers a good request exactly.
"""
import dataclasses

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tests import helpers
from tfrs_seqcompress import features as F
from tfrs_seqcompress import models, serving, serving_client
from tfrs_seqcompress.data import history, synthetic, tf_data
from tfrs_seqcompress.testing import serving_harness

TOKEN_DIM = 3
LENGTH = 12


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(stub, good request examples, their expected scores, the model's base path)."""
    world = synthetic.generate(synthetic.SyntheticConfig(num_users=20, mean_history=60, history_length=LENGTH, seed=2))
    schema = dataclasses.replace(world.dataset.schema, token_dim=TOKEN_DIM, token_version="source-v1")
    examples = history.build_history_examples(world.dataset.log, world.dataset.schema)
    rng = np.random.default_rng(0)
    mask = examples[F.HISTORY_MASK][..., None]
    examples[F.HISTORY_TOKEN] = (rng.random((len(mask), LENGTH, TOKEN_DIM)) * mask).astype(np.float32)
    examples[F.TOKEN_VERSION] = np.full(len(mask), F.token_version_id(schema.token_version), np.int64)
    tf.keras.utils.set_random_seed(0)
    model = models.build_ranking_model(schema, "iat")
    model.fit(tf_data.dataset_from_columns(examples, 256), epochs=1, verbose=0)
    full = np.nonzero(examples[F.HISTORY_MASK].all(axis=1))[0][-4:]  # histories of L events
    batch = {name: values[full] for name, values in examples.items() if name != F.LABEL}
    base_path = tmp_path_factory.mktemp("saved_models") / "ranker"
    serving.export_serving_model(model, str(base_path / "1"), warmup_examples=F.to_tf_examples(batch))
    expected = tf.sigmoid(model({name: tf.constant(values) for name, values in batch.items()})).numpy()
    server, port = serving_harness.start_server("ranker", str(base_path))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    yield stub, F.to_tf_examples(batch), expected, base_path
    server.stop(grace=None)


def _ints(example, name):
    return list(example.features.feature[name].int64_list.value)


def _set(example, name, values, kind="int64"):
    feature = example.features.feature[name]
    feature.Clear()
    getattr(feature, f"{kind}_list").value.extend(values)


def _swap_two_events(example):
    times = _ints(example, "hist_timestamp")
    times[-1], times[-2] = times[-2], times[-1] - 1
    _set(example, "hist_timestamp", times)


def _future_event(example):
    _set(example, "hist_timestamp", _ints(example, "hist_timestamp")[:-1] + [_ints(example, "timestamp")[0] + 60])


def _event_at_request_time(example):
    _set(example, "hist_timestamp", _ints(example, "hist_timestamp")[:-1] + [_ints(example, "timestamp")[0]])


def _nan_token(example):
    tokens = list(example.features.feature["hist_token"].float_list.value)
    tokens[-1] = float("nan")
    _set(example, "hist_token", tokens, "float")


# (case, how the first example of the request is broken, what the error detail must name)
EXAMPLE_CASES = [
    ("missing_feature", lambda e: e.features.feature.pop("hist_item_id"), "hist_item_id"),
    ("missing_token", lambda e: e.features.feature.pop("hist_token"), "hist_token"),
    ("floats_for_ids", lambda e: _set(e, "hist_item_id", [1.5] * LENGTH, "float"), "hist_item_id"),
    ("bytes_for_ids", lambda e: _set(e, "item_id", [b"movie-7"], "bytes"), "item_id"),
    ("history_too_long", lambda e: _set(e, "hist_item_id", [1] * (LENGTH + 5)), "hist_item_id"),
    ("history_too_short", lambda e: _set(e, "hist_category", [1] * (LENGTH - 1)), "hist_category"),
    ("two_candidates_in_one_example", lambda e: _set(e, "item_id", [3, 4]), "item_id"),
    ("unsorted_history", _swap_two_events, "'hist_timestamp' must be non-decreasing"),
    ("future_event", _future_event, "Leakage: feature 'hist_timestamp'"),
    ("event_at_request_time", _event_at_request_time, "Leakage: feature 'hist_timestamp'"),
    ("mask_not_binary", lambda e: _set(e, "hist_mask", [2] * LENGTH), "'hist_mask' must hold only 0"),
    ("mask_not_right_aligned", lambda e: _set(e, "hist_mask", [1] + [0] * (LENGTH - 1)),
     "'hist_mask' must be right-aligned"),
    ("nan_token", _nan_token, "'hist_token' contains NaN or infinity"),
    ("token_of_wrong_width", lambda e: _set(e, "hist_token", [0.5] * (LENGTH * (TOKEN_DIM + 1)), "float"),
     "hist_token"),
    ("token_of_another_version", lambda e: _set(e, "token_version", [F.token_version_id("source-v2")]),
     "comes from another source model"),
    ("negative_candidate_id", lambda e: _set(e, "item_id", [-3]), "'item_id' must hold IDs >= 0"),
    ("negative_history_category", lambda e: _set(e, "hist_category", [-1] * LENGTH), "'hist_category' must hold IDs"),
    ("history_label_not_binary", lambda e: _set(e, "hist_label", [5] * LENGTH), "'hist_label' must hold only 0 and 1"),
]


def _refused(stub, request) -> str:
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(request, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
    return error.value.details()


def _assert_still_serving(stub, good, expected):
    response = stub.Predict(serving_client.grpc_request(good), timeout=30)
    np.testing.assert_allclose(serving_client.response_scores(response), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case, edit, named", EXAMPLE_CASES, ids=[case[0] for case in EXAMPLE_CASES])
def test_a_broken_example_is_refused_naming_the_feature(served, case, edit, named):
    stub, good, expected, base_path = served
    before = helpers.file_bytes(base_path)
    broken = tf.train.Example.FromString(good[0])
    edit(broken)
    assert named in _refused(stub, serving_client.grpc_request([broken.SerializeToString()] + good[1:]))
    assert helpers.file_bytes(base_path) == before
    _assert_still_serving(stub, good, expected)


def _without_input(good):
    request = serving_client.grpc_request(good)
    del request.inputs[serving.INPUT_KEY]
    return request


REQUEST_CASES = [
    ("not_a_tf_example", lambda good: serving_client.grpc_request([b"\xff not a tf.Example"] + good[1:]), "parse"),
    # The last byte cut: the final length-delimited field always ends early (a cut in the middle can
    # fall on a field boundary, and then parses as an example missing features).
    ("truncated_examples", lambda good: serving_client.grpc_request([r[:-1] for r in good]), "parse"),
    ("empty_request", lambda good: serving_client.grpc_request([]), "holds no examples"),
    ("unknown_signature", lambda good: serving_client.grpc_request(good, signature_name="nope"), "'nope'"),
    ("no_examples_input", _without_input, "'examples'"),
]


@pytest.mark.parametrize("case, make_request, named", REQUEST_CASES, ids=[case[0] for case in REQUEST_CASES])
def test_a_malformed_request_is_refused(served, case, make_request, named):
    stub, good, expected, base_path = served
    before = helpers.file_bytes(base_path)
    assert named in _refused(stub, make_request(good))
    assert helpers.file_bytes(base_path) == before
    _assert_still_serving(stub, good, expected)


def test_unknown_ids_are_served_as_the_unknown_id_not_refused(served):
    """IDs newer than the model's vocabularies are the documented fallback: scored as ID 0."""
    stub, good, _, _ = served
    unknown, as_zero = (tf.train.Example.FromString(good[0]) for _ in range(2))
    _set(unknown, "item_id", [10**9])
    _set(as_zero, "item_id", [0])
    scores = [serving_client.response_scores(stub.Predict(serving_client.grpc_request([e.SerializeToString()]),
                                                          timeout=30))[0] for e in (unknown, as_zero)]
    assert np.isfinite(scores[0]) and scores[0] == pytest.approx(scores[1], rel=1e-6)
