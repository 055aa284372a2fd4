"""The serving export: reloaded in a fresh process it gives the in-memory model's scores; warmup replays."""
import json

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from tests import helpers
from tfrs_seqcompress import features as F
from tfrs_seqcompress import models, serving
from tfrs_seqcompress.data import history, synthetic, tf_data


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    world = synthetic.generate(synthetic.SyntheticConfig(num_users=20, mean_history=60, history_length=12, seed=2))
    schema = world.dataset.schema
    examples = history.build_history_examples(world.dataset.log, schema)
    model = models.build_ranking_model(schema, "sim_hard")
    model.fit(tf_data.dataset_from_columns(examples, 128), epochs=1, verbose=0)
    serialized = F.to_tf_examples({name: values[:50] for name, values in examples.items()})
    scores = tf.sigmoid(model({name: tf.constant(values[:50]) for name, values in examples.items()})).numpy()
    export_dir = tmp_path_factory.mktemp("saved_models") / "ranker" / "1"
    serving.export_serving_model(model, str(export_dir), warmup_examples=serialized[:20])
    return export_dir, serialized, scores


def test_fresh_process_gives_the_same_scores(exported, tmp_path):
    export_dir, serialized, scores = exported
    records = tmp_path / "requests.tfrecord"
    with tf.io.TFRecordWriter(str(records)) as writer:
        for record in serialized:
            writer.write(record)
    code = (
        "import sys, json, tensorflow as tf\n"
        "model = tf.saved_model.load(sys.argv[1])\n"
        "records = [r.numpy() for r in tf.data.TFRecordDataset(sys.argv[2])]\n"
        "out = model.signatures['serving_default'](examples=tf.constant(records))\n"
        "print(json.dumps({'score': out['score'].numpy().tolist(), 'keys': sorted(out)}))\n")
    result = helpers.run_python(code, str(export_dir), str(records))
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["keys"] == ["logit", "score"]
    np.testing.assert_allclose(answer["score"], scores, rtol=1e-5, atol=1e-6)


def test_signature_takes_serialized_examples_named_examples(exported):
    export_dir, _, _ = exported
    signature = helpers.load_saved_model(str(export_dir)).signatures[serving.SIGNATURE_NAME]
    inputs = signature.structured_input_signature[1]
    assert list(inputs) == ["examples"] and inputs["examples"].dtype == tf.string


def test_warmup_requests_replay(exported):
    export_dir, _, _ = exported
    signature = helpers.load_saved_model(str(export_dir)).signatures[serving.SIGNATURE_NAME]
    path = export_dir / "assets.extra" / "tf_serving_warmup_requests"
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
    assert 0 < len(logs) <= serving.MAX_WARMUP_RECORDS
    for log in logs:
        request = log.predict_log.request
        assert request.model_spec.signature_name == "serving_default"
        batch = tf.make_ndarray(request.inputs["examples"])
        scores = signature(examples=tf.constant(list(batch)))["score"].numpy()
        assert scores.shape == (len(batch),) and np.all((scores > 0) & (scores < 1))


def test_malformed_request_is_rejected_with_the_feature_named(exported):
    export_dir, serialized, _ = exported
    signature = helpers.load_saved_model(str(export_dir)).signatures[serving.SIGNATURE_NAME]
    example = tf.train.Example.FromString(serialized[0])
    del example.features.feature["hist_item_id"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="hist_item_id"):
        signature(examples=tf.constant([example.SerializeToString()]))
    with pytest.raises(tf.errors.InvalidArgumentError):
        signature(examples=tf.constant([b"not a tf.Example"]))


def test_wrong_dtype_in_a_request_is_rejected_with_the_feature_named(exported):
    export_dir, serialized, _ = exported
    signature = helpers.load_saved_model(str(export_dir)).signatures[serving.SIGNATURE_NAME]
    example = tf.train.Example.FromString(serialized[0])
    example.features.feature["item_id"].ClearField("int64_list")
    example.features.feature["item_id"].float_list.value.append(3.0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="item_id.*(int64|type)"):
        signature(examples=tf.constant([example.SerializeToString()]))


def test_a_warmup_file_that_does_not_match_the_signature_is_caught_before_any_server_loads_it(exported, tmp_path):
    import shutil

    export_dir, serialized, _ = exported
    assert serving.replay_warmup(str(export_dir)) > 0
    copy = tmp_path / "1"
    shutil.copytree(export_dir, copy)
    missing = tf.train.Example.FromString(serialized[0])
    del missing.features.feature["hist_category"]
    serving.write_warmup_requests(str(copy), [missing.SerializeToString()])
    mismatch = "(?s)record 0 does not match signature 'serving_default'.*hist_category"
    with pytest.raises(serving.WarmupError, match=mismatch):
        serving.replay_warmup(str(copy))
    with tf.io.TFRecordWriter(str(copy / serving.WARMUP_FILE)) as writer:
        request = serving.predict_request(serialized[:2], signature_name="score_with_agents")
        writer.write(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)).SerializeToString())
    with pytest.raises(serving.WarmupError, match="signature 'score_with_agents'"):
        serving.replay_warmup(str(copy))


def test_the_export_itself_fails_on_warmup_examples_of_another_contract(exported, tmp_path):
    _, serialized, _ = exported
    other = synthetic.generate(synthetic.SyntheticConfig(num_users=10, mean_history=30, history_length=5, seed=1))
    model = models.build_ranking_model(other.dataset.schema, "mean")   # L = 5; the warmup examples have L = 12
    with pytest.raises(serving.WarmupError, match="hist_"):
        serving.export_serving_model(model, str(tmp_path / "1"), warmup_examples=serialized[:4])
