"""End to end with HiSAC over IAT tokens: InstanceCompressor and CodebookFitter both feed
HistoryExampleGen; the Trainer builds the composed encoder; the pushed model holds both versions,
serves in-graph and with precomputed agents, and refuses tokens of another source model."""
import numpy as np
import pytest
import tensorflow as tf

from tests.e2e import runs
from tests.e2e.test_pipeline_hisac import _eval_record
from tests.e2e.test_pipeline_iat import _artifact
from tfrs_seqcompress import features as F
from tfrs_seqcompress import serving


@pytest.fixture(scope="module")
def composed_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("composed_pipeline")
    result = runs.run_pipeline(tmp_path, runs.write_small_log(tmp_path), "--encoder", "hisac_iat",
                               "--codebook-levels", "4,3", "--fanouts", "2,2", "--token-dim", "4")
    assert result.returncode == 0, result.stderr[-5000:]
    return tmp_path, result


def test_both_compression_steps_ran_and_the_schema_records_both_versions(composed_run):
    tmp_path, result = composed_run
    states = runs.newest_execution_states(tmp_path)
    for component in ("InstanceCompressor", "CodebookFitter", "HistoryExampleGen", "Trainer"):
        assert states[component] == "COMPLETE", states
    schema = _artifact(tmp_path, "Schema")
    assert schema.custom_properties["token_version"].string_value == _artifact(
        tmp_path, "tfrs_seqcompress.InstanceTokens").custom_properties["version"].string_value
    assert schema.custom_properties["codebook_version"].string_value == _artifact(
        tmp_path, "tfrs_seqcompress.SemanticCodebook").custom_properties["version"].string_value


def test_pushed_model_serves_with_agents_and_refuses_other_tokens(composed_run):
    tmp_path, result = composed_run
    version_dir = next((tmp_path / "saved_models" / "ranker").iterdir())
    assert f"pushed model: {version_dir}" in result.stdout
    loaded = tf.saved_model.load(str(version_dir))
    record = _eval_record(tmp_path)
    assert len(tf.train.Example.FromString(record).features.feature[F.HISTORY_TOKEN].float_list.value) == 10 * 4
    in_graph = loaded.signatures["serving_default"](examples=tf.constant([record]))["score"].numpy()
    agents = loaded.signatures[serving.COMPUTE_AGENTS_SIGNATURE](examples=tf.constant([record]))
    example = tf.train.Example.FromString(record)
    for name in (F.AGENT_VECTORS, F.AGENT_WEIGHTS):
        example.features.feature[name].float_list.value[:] = agents[name].numpy().ravel().tolist()
    example.features.feature[F.AGENT_MASK].int64_list.value[:] = agents[F.AGENT_MASK].numpy().ravel().tolist()
    served = loaded.signatures[serving.SCORE_WITH_AGENTS_SIGNATURE](
        examples=tf.constant([example.SerializeToString()]))["score"].numpy()
    np.testing.assert_allclose(served, in_graph, rtol=1e-5, atol=1e-6)
    other = tf.train.Example.FromString(record)
    other.features.feature[F.TOKEN_VERSION].int64_list.value[:] = [F.token_version_id("another source model")]
    with pytest.raises(tf.errors.InvalidArgumentError, match="comes from another source model"):
        loaded.signatures["serving_default"](examples=tf.constant([other.SerializeToString()]))
