"""Every user's agents, computed once with the served model and stored by user: a request built from
the table scores like the in-graph model over the user's whole history; other versions refused."""
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tfrs_seqcompress import agent_table, serving, serving_client
from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import history


@pytest.fixture(scope="module")
def served(exported_hisac, tmp_path_factory):
    """The shared HiSAC model, served as version 17."""
    world, _, model, export_dir = exported_hisac
    version_17 = tmp_path_factory.mktemp("saved_models") / "ranker" / "17"
    shutil.copytree(export_dir, version_17)
    return world, model, str(version_17)


def test_a_request_from_the_table_scores_like_the_whole_history_in_graph(served, tmp_path):
    world, model, export_dir = served
    log, schema = world.dataset.log, world.dataset.schema
    table = agent_table.compute_agent_table(export_dir, log, schema, batch_size=7)
    assert sorted(table) == sorted(np.unique(log[F.USER_ID]).tolist())  # every user, batches of 7
    path = agent_table.write_agent_table(tmp_path / "agents" / "17.tfrecord", table, model_version=17)
    stored = agent_table.read_agent_table(path, expected_version=17)
    user, as_of = 5, int(log[F.TIMESTAMP].max()) + 1
    items = np.arange(1, 9)
    candidates = {F.ITEM_ID: items, F.CATEGORY: world.dataset.items[F.CATEGORY][items],
                  F.TIMESTAMP: np.full(8, as_of), **{name: np.full(8, 1) for name in schema.context_features}}
    loaded = tf.saved_model.load(export_dir)
    from_table = loaded.signatures[serving.SCORE_WITH_AGENTS_SIGNATURE](examples=tf.constant(
        serving_client.agent_examples(stored[user], user, candidates, schema)))["score"].numpy()
    in_graph = loaded.signatures[serving.SIGNATURE_NAME](examples=tf.constant(
        serving_client.examples_from_events(log, user, candidates, schema)))["score"].numpy()
    np.testing.assert_allclose(from_table, in_graph, rtol=1e-5, atol=1e-6)
    whole = history.request_history(log, user, as_of, schema)
    assert whole[F.HISTORY_MASK].sum() == min(schema.history_length, int((log[F.USER_ID] == user).sum()))


def test_agents_of_another_model_version_are_refused(served, tmp_path):
    world, _, export_dir = served
    table = agent_table.compute_agent_table(export_dir, world.dataset.log, world.dataset.schema)
    path = agent_table.write_agent_table(tmp_path / "16.tfrecord", table, model_version=16)
    with pytest.raises(agent_table.AgentVersionError, match="agents of model version 16; the served model is "
                                                            "version 17"):
        agent_table.read_agent_table(path, expected_version=17)


def test_models_without_agents_say_so(tmp_path):
    from tfrs_seqcompress import models
    schema = helpers.tiny_schema()
    model = models.build_ranking_model(schema, "mean")
    model({name: tf.constant(values) for name, values in history.build_history_examples(
        helpers.tiny_log(), schema).items()})
    serving.export_serving_model(model, str(tmp_path / "1"))
    with pytest.raises(ValueError, match="has no 'compute_agents' signature"):
        agent_table.compute_agent_table(str(tmp_path / "1"), helpers.tiny_log(), schema)


def test_the_client_builds_requests_from_the_table_file(served, tmp_path):
    world, _, export_dir = served
    schema = world.dataset.schema
    table = agent_table.compute_agent_table(export_dir, world.dataset.log, schema)
    path = agent_table.write_agent_table(tmp_path / "17.tfrecord", table, model_version=17)
    candidates = {F.ITEM_ID: np.array([3, 4]), F.CATEGORY: np.array([1, 1]), F.TIMESTAMP: np.array([10, 10]),
                  **{name: np.array([1, 1]) for name in schema.context_features}}
    built = serving_client.agent_examples_from_table(str(path), 5, candidates, schema, model_version=17)
    assert [helpers.decoded_example(e) for e in built] == [
        helpers.decoded_example(e) for e in serving_client.agent_examples(table[5], 5, candidates, schema)]
    with pytest.raises(KeyError, match="User 999 has no agents"):
        serving_client.agent_examples_from_table(str(path), 999, candidates, schema, model_version=17)


def test_a_schema_with_tokens_needs_the_token_store(served):
    import dataclasses
    world, _, export_dir = served
    schema = dataclasses.replace(world.dataset.schema, token_dim=4, token_version="v1")
    with pytest.raises(ValueError, match="carry 4-dim IAT tokens .* pass token_store="):
        agent_table.compute_agent_table(export_dir, world.dataset.log, schema)
