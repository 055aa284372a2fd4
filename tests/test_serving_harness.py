"""The loopback PredictionService: the library's client talks TF Serving's gRPC wire API to the
pushed model's versions; bad requests get TF Serving's status codes and the server keeps serving."""
import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2, prediction_service_pb2_grpc

from tests import helpers
from tfrs_seqcompress import features as F
from tfrs_seqcompress import models, serving, serving_client
from tfrs_seqcompress.data import history, synthetic, tf_data
from tfrs_seqcompress.testing import serving_harness


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    world = synthetic.generate(synthetic.SyntheticConfig(num_users=20, mean_history=60, history_length=12, seed=2))
    schema = world.dataset.schema
    examples = history.build_history_examples(world.dataset.log, schema)
    batch = {name: values[-8:] for name, values in examples.items() if name != F.LABEL}
    base_path = tmp_path_factory.mktemp("saved_models") / "ranker"
    expected = {}
    for version in (1, 2):  # two pushed versions, trained with different seeds
        tf.keras.utils.set_random_seed(version)
        model = models.build_ranking_model(schema, "mean")
        model.fit(tf_data.dataset_from_columns(examples, 256), epochs=1, verbose=0)
        serving.export_serving_model(model, str(base_path / str(version)), model_name="ranker",
                                     warmup_examples=F.to_tf_examples(batch))
        expected[version] = tf.sigmoid(model({name: tf.constant(values) for name, values in batch.items()})).numpy()
    grpc_server, port = serving_harness.start_server("ranker", str(base_path))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    yield stub, F.to_tf_examples(batch), expected, base_path
    grpc_server.stop(grace=None)


def test_predict_serves_the_newest_version_or_the_one_asked_for(server):
    stub, serialized, expected, _ = server
    response = stub.Predict(serving_client.grpc_request(serialized), timeout=30)
    assert response.model_spec.version.value == 2
    np.testing.assert_allclose(serving_client.response_scores(response), expected[2], rtol=1e-5, atol=1e-6)
    older = stub.Predict(serving_client.grpc_request(serialized, version=1), timeout=30)
    np.testing.assert_allclose(serving_client.response_scores(older), expected[1], rtol=1e-5, atol=1e-6)


def _status(stub, request) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(request, timeout=30)
    return error.value.code(), error.value.details()


def test_bad_requests_get_tf_serving_status_codes_and_the_server_keeps_serving(server):
    stub, serialized, expected, _ = server
    code, details = _status(stub, serving_client.grpc_request([b"not a tf.Example"] + serialized[1:]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "parse" in details.lower()
    truncated = [record[: len(record) // 2] for record in serialized]
    assert _status(stub, serving_client.grpc_request(truncated))[0] == grpc.StatusCode.INVALID_ARGUMENT
    missing = tf.train.Example.FromString(serialized[0])
    del missing.features.feature["hist_item_id"]
    code, details = _status(stub, serving_client.grpc_request([missing.SerializeToString()]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "hist_item_id" in details
    code, details = _status(stub, serving_client.grpc_request(serialized, signature_name="nope"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "nope" in details
    assert _status(stub, serving_client.grpc_request(serialized, model_name="other"))[0] == grpc.StatusCode.NOT_FOUND
    assert _status(stub, serving_client.grpc_request(serialized, version=7))[0] == grpc.StatusCode.NOT_FOUND
    request = serving_client.grpc_request(serialized)
    del request.inputs[serving.INPUT_KEY]
    assert _status(stub, request)[0] == grpc.StatusCode.INVALID_ARGUMENT
    # Still serving, same answers.
    response = stub.Predict(serving_client.grpc_request(serialized), timeout=30)
    np.testing.assert_allclose(serving_client.response_scores(response), expected[2], rtol=1e-5, atol=1e-6)


def _with_feature(serialized: bytes, name: str, feature: tf.train.Feature) -> bytes:
    example = tf.train.Example.FromString(serialized)
    example.features.feature[name].CopyFrom(feature)
    return example.SerializeToString()


def test_wrong_dtypes_oversized_histories_and_empty_requests_are_refused_and_nothing_is_damaged(server):
    stub, serialized, expected, base_path = server
    before = helpers.file_bytes(base_path)
    length = len(tf.train.Example.FromString(serialized[0]).features.feature["hist_item_id"].int64_list.value)
    floats = _with_feature(serialized[0], "hist_item_id", tf.train.Feature(
        float_list=tf.train.FloatList(value=[1.5] * length)))
    code, details = _status(stub, serving_client.grpc_request([floats]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "hist_item_id" in details
    oversized = _with_feature(serialized[0], "hist_item_id", tf.train.Feature(
        int64_list=tf.train.Int64List(value=[1] * (length + 5))))
    code, details = _status(stub, serving_client.grpc_request([oversized]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "hist_item_id" in details
    code, details = _status(stub, serving_client.grpc_request([]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "no examples" in details
    response = stub.Predict(serving_client.grpc_request(serialized), timeout=30)
    np.testing.assert_allclose(serving_client.response_scores(response), expected[2], rtol=1e-5, atol=1e-6)
    assert helpers.file_bytes(base_path) == before


def test_the_warmup_file_replays_through_the_service(server):
    stub, serialized, expected, base_path = server
    warmup = tf.data.TFRecordDataset(str(base_path / "2" / serving.WARMUP_FILE))
    replayed = 0
    for record in warmup.as_numpy_iterator():
        request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        replayed += len(serving_client.response_scores(stub.Predict(request, timeout=30)))
    assert replayed == len(serialized)  # every warmup example answered, as the model server would at load
