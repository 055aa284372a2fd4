"""End to end with HiSAC: CodebookFitter -> HistoryExampleGen (semantic tables beside the schema)
-> Trainer (HiSAC encoder) -> push; the pushed model serves in-graph and with precomputed agents;
a refresh on newer data (the last test: it re-runs the pipeline in the same root) pushes a new
version with the new codebook and leaves the served one untouched."""
import json

import numpy as np
import pytest
import tensorflow as tf

from pipelines.components import semantic_io
from tests.e2e import runs
from tfrs_seqcompress import features as F
from tfrs_seqcompress import serving


@pytest.fixture(scope="module")
def hisac_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("hisac_pipeline")
    result = runs.run_pipeline(tmp_path, runs.write_small_log(tmp_path), *HISAC_ARGUMENTS)
    assert result.returncode == 0, result.stderr[-5000:]
    return tmp_path, result


HISAC_ARGUMENTS = ("--encoder", "hisac", "--codebook-levels", "4,3", "--fanouts", "2,2")


def test_codebook_is_fitted_on_the_training_period_and_versioned(hisac_run):
    tmp_path, result = hisac_run
    codebook = runs.single_artifact(tmp_path, "tfrs_seqcompress.SemanticCodebook")
    version = codebook.custom_properties["version"].string_value
    fitted, vectors = semantic_io.load_semantic_tables(codebook.uri, expected_version=version)
    assert fitted.level_sizes == (4, 3) and len(json.loads(codebook.custom_properties["used_codes"].string_value)) == 2
    assert 0 < codebook.custom_properties["train_events"].int_value
    schema = runs.single_artifact(tmp_path, "Schema")
    assert schema.custom_properties["codebook_version"].string_value == version
    examples_dir = next((tmp_path / "root").glob("HistoryExampleGen/history_examples/*"))
    copied, copied_vectors = semantic_io.load_semantic_tables(str(examples_dir / semantic_io.SEMANTIC_DIR), version)
    np.testing.assert_array_equal(copied_vectors, vectors)
    assert runs.newest_execution_states(tmp_path)["CodebookFitter"] == "COMPLETE"


def test_pushed_hisac_model_serves_in_graph_and_with_precomputed_agents(hisac_run):
    tmp_path, result = hisac_run
    version_dir = next((tmp_path / "saved_models" / "ranker").iterdir())
    assert f"pushed model: {version_dir}" in result.stdout
    loaded = tf.saved_model.load(str(version_dir))
    assert {serving.COMPUTE_AGENTS_SIGNATURE, serving.SCORE_WITH_AGENTS_SIGNATURE} <= set(loaded.signatures)
    record = runs.eval_records(tmp_path)[0]
    in_graph = loaded.signatures["serving_default"](examples=tf.constant([record]))["score"].numpy()
    agents = loaded.signatures[serving.COMPUTE_AGENTS_SIGNATURE](examples=tf.constant([record]))
    example = tf.train.Example.FromString(record)
    target = tf.train.Example()
    for name, feature in example.features.feature.items():
        if not name.startswith(F.HISTORY_PREFIX) and name != F.LABEL:
            target.features.feature[name].CopyFrom(feature)
    target.features.feature[F.AGENT_VECTORS].float_list.value[:] = agents[F.AGENT_VECTORS].numpy().ravel()
    target.features.feature[F.AGENT_MASK].int64_list.value[:] = agents[F.AGENT_MASK].numpy().ravel()
    target.features.feature[F.AGENT_WEIGHTS].float_list.value[:] = agents[F.AGENT_WEIGHTS].numpy().ravel()
    served = loaded.signatures[serving.SCORE_WITH_AGENTS_SIGNATURE](examples=tf.constant([target.SerializeToString()]))
    np.testing.assert_allclose(served["score"].numpy(), in_graph, rtol=1e-5, atol=1e-6)


def test_the_pushed_versions_agents_are_written_and_serve_like_the_whole_history(hisac_run):
    from pipelines.components import data_schema_io
    from tfrs_seqcompress import agent_table, serving_client

    tmp_path, _ = hisac_run
    version_dir = next((tmp_path / "saved_models" / "ranker").iterdir())
    table = runs.single_artifact(tmp_path, "tfrs_seqcompress.AgentTable")
    assert table.custom_properties["written"].int_value == 1
    assert table.custom_properties["model_version"].int_value == int(version_dir.name)
    schema = data_schema_io.read_schema(runs.single_artifact(tmp_path, "Schema").uri)
    log = runs.small_log()
    assert table.custom_properties["users"].int_value == len(np.unique(log[F.USER_ID]))
    user, items = int(log[F.USER_ID][0]), np.array([1, 2, 3])
    candidates = {F.ITEM_ID: items, F.CATEGORY: np.array([1, 1, 2]),
                  F.TIMESTAMP: np.full(3, int(log[F.TIMESTAMP].max()) + 1),
                  **{name: np.ones(3, np.int64) for name in schema.context_features}}
    loaded = tf.saved_model.load(str(version_dir))
    from_table = loaded.signatures[serving.SCORE_WITH_AGENTS_SIGNATURE](examples=tf.constant(
        serving_client.agent_examples_from_table(f"{table.uri}/agents.tfrecord", user, candidates, schema,
                                                 model_version=int(version_dir.name))))["score"].numpy()
    in_graph = loaded.signatures[serving.SIGNATURE_NAME](examples=tf.constant(
        serving_client.examples_from_events(log, user, candidates, schema)))["score"].numpy()
    np.testing.assert_allclose(from_table, in_graph, rtol=1e-5, atol=1e-6)
    with pytest.raises(agent_table.AgentVersionError):
        agent_table.read_agent_table(f"{table.uri}/agents.tfrecord", expected_version=int(version_dir.name) + 1)


def test_refresh_pushes_a_new_version_with_the_new_codebook_and_leaves_the_served_one_alone(hisac_run):
    tmp_path, _ = hisac_run
    served = next((tmp_path / "saved_models" / "ranker").iterdir())
    digest, record = runs.tree_digest(served), runs.eval_records(tmp_path)[0]
    scores = tf.saved_model.load(str(served)).signatures["serving_default"](examples=tf.constant([record]))["score"]
    old_version = runs.single_artifact(tmp_path, "tfrs_seqcompress.SemanticCodebook").custom_properties["version"].string_value

    result = runs.run_pipeline(tmp_path, runs.write_newer_log(tmp_path), *HISAC_ARGUMENTS)
    assert result.returncode == 0, result.stderr[-5000:]

    versions = sorted((tmp_path / "saved_models" / "ranker").iterdir())
    assert len(versions) == 2 and versions[0] == served
    assert runs.tree_digest(served) == digest  # the served version is untouched, byte for byte
    reloaded = tf.saved_model.load(str(served)).signatures["serving_default"](examples=tf.constant([record]))
    np.testing.assert_array_equal(reloaded["score"].numpy(), scores.numpy())
    codebooks = runs.artifacts(tmp_path, "tfrs_seqcompress.SemanticCodebook")
    new_version = {c.custom_properties["version"].string_value for c in codebooks} - {old_version}
    assert len(codebooks) == 2 and len(new_version) == 1  # re-fitted on the newer training period
    # The new model version was built with (and refuses anything but) the new codebook.
    keras_metadata = (versions[1] / "keras_metadata.pb").read_bytes()
    assert new_version.pop().encode() in keras_metadata and old_version.encode() not in keras_metadata
