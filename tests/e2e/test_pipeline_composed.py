"""End to end over IAT tokens, with HiSAC on top (``hisac_iat``): InstanceCompressor and
CodebookFitter both feed HistoryExampleGen; the Trainer builds the composed encoder; the pushed
model holds both versions, serves in-graph and with precomputed agents, refuses missing or stale
tokens, and the AgentWriter computes every user's agents with the user's tokens. The codebook is
fitted on the user's own item vectors (``--item-vectors``), not on a two-tower model's, and a column
of the log marks which events are ranked (``--target-column``), the last part of each user's own
time evaluates (``--split user_time``), and the encoder sits beside a DIN over the last events
(``--short-term-last-n``): its agent requests carry those events beside the agents.

One run covers the token path of both token encoders: ``iat`` differs from ``hisac_iat`` only in
the encoder the Trainer builds, which the layer and export tests cover."""
import numpy as np
import pytest
import tensorflow as tf

from pipelines.components import data_schema_io, semantic_io
from tests.e2e import runs
from tfrs_seqcompress import agent_table
from tfrs_seqcompress import features as F
from tfrs_seqcompress import serving, serving_client
from tfrs_seqcompress.data import history, interaction_log
from tfrs_seqcompress.hisac import semantic
from tfrs_seqcompress.iat import token_beam

TOKEN_DIM = 4
RECENT = 3   # --short-term-last-n


@pytest.fixture(scope="module")
def composed_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("composed_pipeline")
    result = runs.run_pipeline(tmp_path, runs.write_small_log(tmp_path, target_share=0.4), "--encoder", "hisac_iat",
                               "--codebook-levels", "4,3", "--fanouts", "2,2", "--token-dim", str(TOKEN_DIM),
                               "--iat-scheme", "user_order",
                               "--item-vectors", str(runs.write_small_item_vectors(tmp_path)),
                               "--target-column", runs.TARGET_COLUMN, "--split", "user_time",
                               "--short-term-last-n", str(RECENT))
    assert result.returncode == 0, result.stderr[-5000:]
    return tmp_path, result


def test_tokens_are_versioned_and_trained_on_the_training_period_only(composed_run):
    tmp_path, _ = composed_run
    states = runs.newest_execution_states(tmp_path)
    for component in ("InstanceCompressor", "CodebookFitter", "HistoryExampleGen", "Trainer", "AgentWriter"):
        assert states[component] == "COMPLETE", states
    tokens = runs.single_artifact(tmp_path, "tfrs_seqcompress.InstanceTokens")
    version = tokens.custom_properties["version"].string_value
    assert version == token_beam.read_token_metadata(tokens.uri)["version"]
    assert tokens.custom_properties["scheme"].string_value == "user_order"
    assert tokens.custom_properties["split_rule"].string_value == "user_time"
    store = token_beam.read_token_store(tokens.uri, expected_version=version)
    assert store.token_dim == TOKEN_DIM
    cutoffs = history.event_cutoffs(store.user_id, store.timestamp, 0.2, "user_time")   # each user's own
    trained_on = tokens.custom_properties["train_events"].int_value
    assert trained_on == int((store.timestamp < cutoffs).sum()) < len(store.timestamp)
    schema = runs.single_artifact(tmp_path, "Schema")
    assert schema.custom_properties["token_version"].string_value == version
    assert data_schema_io.read_schema(schema.uri).token_version == version  # what the Trainer builds from
    assert schema.custom_properties["codebook_version"].string_value == runs.single_artifact(
        tmp_path, "tfrs_seqcompress.SemanticCodebook").custom_properties["version"].string_value


def test_only_the_marked_events_are_ranked_and_every_event_is_history(composed_run):
    tmp_path, _ = composed_run
    log = interaction_log.read_csv_columns(tmp_path / "input" / "log.csv")
    records = runs.history_records(tmp_path, "train") + runs.history_records(tmp_path, "eval")
    assert len(records) == int(log[runs.TARGET_COLUMN].sum()) < len(log[F.LABEL])
    parsed = [tf.train.Example.FromString(record).features.feature for record in records]
    assert runs.TARGET_COLUMN not in parsed[0] and f"hist_{runs.TARGET_COLUMN}" not in parsed[0]
    marked = {(user, time) for user, time, mark in zip(log[F.USER_ID], log[F.TIMESTAMP], log[runs.TARGET_COLUMN]) if mark}
    assert {(f[F.USER_ID].int64_list.value[0], f[F.TIMESTAMP].int64_list.value[0]) for f in parsed} <= marked
    # A target's history holds the unmarked events before it too (not only the earlier targets).
    def marked_before(f):
        user, time = f[F.USER_ID].int64_list.value[0], f[F.TIMESTAMP].int64_list.value[0]
        return sum(1 for u, t in marked if u == user and t < time)
    assert any(sum(f[F.HISTORY_MASK].int64_list.value) > marked_before(f) for f in parsed)


def test_each_users_last_part_of_time_evaluates(composed_run):
    tmp_path, _ = composed_run
    log = interaction_log.read_csv_columns(tmp_path / "input" / "log.csv")
    split = {name: [tf.train.Example.FromString(record).features.feature
                    for record in runs.history_records(tmp_path, name)] for name in ("train", "eval")}
    key = lambda f: (f[F.USER_ID].int64_list.value[0], f[F.TIMESTAMP].int64_list.value[0])  # noqa: E731
    for name, features in split.items():
        users, times = np.array([key(f) for f in features]).T
        in_eval = times >= history.event_cutoffs(log[F.USER_ID], log[F.TIMESTAMP], 0.2, "user_time", users)
        assert in_eval.all() if name == "eval" else not in_eval.any()
    # Unlike one cutoff for everyone: some training targets are later than some evaluation ones.
    assert max(key(f)[1] for f in split["train"]) > min(key(f)[1] for f in split["eval"])


def test_the_codebook_is_fitted_on_the_users_item_vectors(composed_run):
    tmp_path, _ = composed_run
    codebook = runs.single_artifact(tmp_path, "tfrs_seqcompress.SemanticCodebook")
    assert codebook.custom_properties["semantic_vectors"].string_value == "item_vectors_file"
    fitted, vectors = semantic_io.load_semantic_tables(codebook.uri)
    content = semantic.content_vectors(runs.small_world().dataset)
    assert len(vectors) == data_schema_io.read_schema(runs.single_artifact(tmp_path, "Schema").uri).num_items
    np.testing.assert_allclose(vectors, content[: len(vectors)], rtol=1e-6)  # the file's values, row i = item i
    assert fitted.dim == content.shape[1]


def test_pushed_model_serves_in_graph_and_with_agents_and_refuses_missing_or_stale_tokens(composed_run):
    tmp_path, result = composed_run
    version_dir = next((tmp_path / "saved_models" / "ranker").iterdir())
    assert f"pushed model: {version_dir}" in result.stdout
    loaded = tf.saved_model.load(str(version_dir))
    records = runs.eval_records(tmp_path, 32)
    assert len(tf.train.Example.FromString(records[-1]).features.feature[F.HISTORY_TOKEN].float_list.value) == (
        10 * TOKEN_DIM)
    in_graph = loaded.signatures["serving_default"](examples=tf.constant(records))["score"].numpy()
    assert in_graph.shape == (len(records),) and np.all((in_graph > 0) & (in_graph < 1))
    agents = loaded.signatures[serving.COMPUTE_AGENTS_SIGNATURE](examples=tf.constant(records[:1]))
    example = tf.train.Example.FromString(records[0])
    for name in (F.AGENT_VECTORS, F.AGENT_WEIGHTS):
        example.features.feature[name].float_list.value[:] = agents[name].numpy().ravel().tolist()
    example.features.feature[F.AGENT_MASK].int64_list.value[:] = agents[F.AGENT_MASK].numpy().ravel().tolist()
    score_with_agents = loaded.signatures[serving.SCORE_WITH_AGENTS_SIGNATURE]
    with pytest.raises(tf.errors.InvalidArgumentError, match="hist_"):   # it takes the latest RECENT, not all L
        score_with_agents(examples=tf.constant([example.SerializeToString()]))
    for name, feature in example.features.feature.items():   # the latest RECENT events beside the agents
        if name.startswith(F.HISTORY_PREFIX) and name != F.HISTORY_TOKEN:
            feature.int64_list.value[:] = feature.int64_list.value[-RECENT:]
    served = score_with_agents(examples=tf.constant([example.SerializeToString()]))["score"].numpy()
    np.testing.assert_allclose(served, in_graph[:1], rtol=1e-5, atol=1e-6)

    stripped = tf.train.Example.FromString(records[0])
    del stripped.features.feature[F.HISTORY_TOKEN]
    with pytest.raises(tf.errors.InvalidArgumentError, match="hist_token"):
        loaded.signatures["serving_default"](examples=tf.constant([stripped.SerializeToString()]))
    stale = tf.train.Example.FromString(records[0])
    stale.features.feature[F.TOKEN_VERSION].int64_list.value[:] = [F.token_version_id("another source model")]
    with pytest.raises(tf.errors.InvalidArgumentError, match="comes from another source model"):
        loaded.signatures["serving_default"](examples=tf.constant([stale.SerializeToString()]))


def test_the_agent_table_serves_like_the_in_graph_model_over_the_users_events_and_tokens(composed_run):
    tmp_path, _ = composed_run
    table = runs.single_artifact(tmp_path, "tfrs_seqcompress.AgentTable")
    version = table.custom_properties["model_version"].int_value
    data_schema = data_schema_io.read_schema(runs.single_artifact(tmp_path, "Schema").uri)
    log = runs.small_log()
    table_path = f"{table.uri}/agents.tfrecord"
    assert sorted(agent_table.read_agent_table(table_path, expected_version=version)) == sorted(
        np.unique(log[F.USER_ID]).tolist())  # every user of the log
    store = token_beam.read_token_store(runs.single_artifact(tmp_path, "tfrs_seqcompress.InstanceTokens").uri)
    tokens = np.empty_like(store.tokens)  # the store's tokens in the log's event order
    tokens[np.lexsort((log[F.ITEM_ID], log[F.TIMESTAMP], log[F.USER_ID]))] = store.tokens
    loaded = tf.saved_model.load(str(tmp_path / "saved_models" / "ranker" / str(version)))
    as_of = int(log[F.TIMESTAMP].max()) + 1
    candidates = {F.ITEM_ID: np.array([1, 2, 3]), F.CATEGORY: np.array([1, 1, 2]), F.TIMESTAMP: np.full(3, as_of),
                  **{name: np.ones(3, np.int64) for name in data_schema.context_features}}
    for user in np.unique(log[F.USER_ID])[:3].tolist():
        recent = serving_client.recent_events(log, user, as_of, data_schema, RECENT)
        from_table = loaded.signatures[serving.SCORE_WITH_AGENTS_SIGNATURE](examples=tf.constant(
            serving_client.agent_examples_from_table(table_path, user, candidates, data_schema, version, recent)))
        in_graph = loaded.signatures[serving.SIGNATURE_NAME](examples=tf.constant(serving_client.examples_from_events(
            log, user, candidates, data_schema, event_arrays={"token": tokens})))
        np.testing.assert_allclose(from_table["score"].numpy(), in_graph["score"].numpy(), rtol=1e-5, atol=1e-6)
