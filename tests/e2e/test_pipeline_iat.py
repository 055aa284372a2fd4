"""End to end with IAT: InstanceCompressor -> HistoryExampleGen (tokens) -> Trainer (IAT encoder) -> push."""
import numpy as np
import pytest
import tensorflow as tf

from pipelines.components import data_schema_io
from tests.e2e import runs
from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import tf_data
from tfrs_seqcompress.iat import token_beam


@pytest.fixture(scope="module")
def iat_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("iat_pipeline")
    result = runs.run_pipeline(tmp_path, runs.write_small_log(tmp_path), "--encoder", "iat", "--token-dim", "8",
                               "--iat-scheme", "user_order")
    assert result.returncode == 0, result.stderr[-5000:]
    return tmp_path, result


def _artifact(tmp_path, type_name):
    artifacts = runs.artifacts(tmp_path, type_name)
    assert len(artifacts) == 1, artifacts
    return artifacts[0]


def test_tokens_are_versioned_and_trained_on_the_training_period_only(iat_run):
    tmp_path, result = iat_run
    tokens = _artifact(tmp_path, "tfrs_seqcompress.InstanceTokens")
    version = tokens.custom_properties["version"].string_value
    assert version == token_beam.read_token_metadata(tokens.uri)["version"]
    assert tokens.custom_properties["scheme"].string_value == "user_order"
    cutoff = tokens.custom_properties["cutoff"].int_value
    store = token_beam.read_token_store(tokens.uri, expected_version=version)
    assert store.token_dim == 8
    trained_on = tokens.custom_properties["train_events"].int_value
    assert trained_on == int((store.timestamp < cutoff).sum()) < len(store.timestamp)
    schema = _artifact(tmp_path, "Schema")
    assert schema.custom_properties["token_version"].string_value == version
    assert data_schema_io.read_schema(schema.uri).token_version == version  # what the Trainer builds from
    assert runs.newest_execution_states(tmp_path)["InstanceCompressor"] == "COMPLETE"


def test_pushed_iat_model_serves_examples_with_tokens_and_refuses_missing_or_stale_ones(iat_run):
    tmp_path, result = iat_run
    version_dir = next((tmp_path / "saved_models" / "ranker").iterdir())
    assert f"pushed model: {version_dir}" in result.stdout
    examples_dir = next((tmp_path / "root").glob("HistoryExampleGen/history_examples/*"))
    files = tf.io.gfile.glob(tf_data.split_file_pattern(str(examples_dir), "eval"))
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP").take(32)]
    parsed = tf.train.Example.FromString(records[-1]).features.feature
    assert len(parsed[F.HISTORY_TOKEN].float_list.value) == 10 * 8
    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    scores = signature(examples=tf.constant(records))["score"].numpy()
    assert scores.shape == (len(records),) and np.all((scores > 0) & (scores < 1))
    stripped = tf.train.Example.FromString(records[0])
    del stripped.features.feature[F.HISTORY_TOKEN]
    with pytest.raises(tf.errors.InvalidArgumentError, match="hist_token"):
        signature(examples=tf.constant([stripped.SerializeToString()]))
    stale = tf.train.Example.FromString(records[0])
    stale.features.feature[F.TOKEN_VERSION].int64_list.value[:] = [F.token_version_id("an older source model")]
    with pytest.raises(tf.errors.InvalidArgumentError, match="comes from another source model"):
        signature(examples=tf.constant([stale.SerializeToString()]))
