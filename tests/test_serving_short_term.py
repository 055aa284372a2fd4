"""HiSAC beside a short-term base (``WithShortTermBase``) keeps HiSAC's bounded serving path: the
agents are computed offline, and a ``score_with_agents`` request carries them with the user's
latest N events only. Reloaded in a fresh process it scores as ``serving_default`` over the whole
history does."""
import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tfrs_seqcompress import features as F
from tfrs_seqcompress import serving, serving_client

RECENT = 4
CANDIDATES = 6


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    world, _, model = helpers.trained_hisac_model(short_term_last_n=RECENT)
    export_dir = tmp_path_factory.mktemp("saved_models") / "ranker" / "1"
    serving.export_serving_model(model, str(export_dir))
    log, schema = world.dataset.log, world.dataset.schema
    user = int(log[F.USER_ID][0])
    request_time = int(log[F.TIMESTAMP][log[F.USER_ID] == user].max())   # events at that second are left out
    items = np.arange(1, CANDIDATES + 1)
    candidates = {F.ITEM_ID: items, F.CATEGORY: world.dataset.items[F.CATEGORY][items],
                  F.TIMESTAMP: np.full(CANDIDATES, request_time),
                  **{name: np.ones(CANDIDATES, np.int64) for name in schema.context_features}}
    return export_dir, log, schema, user, candidates


def _agents(export_dir, log, schema, user, candidates) -> dict:
    """The user's agents from the served model's ``compute_agents`` (offline, once per user)."""
    history_example = serving_client.examples_from_events(
        log, user, {name: values[:1] for name, values in candidates.items()}, schema)
    loaded = helpers.load_saved_model(str(export_dir))
    agents = loaded.signatures[serving.COMPUTE_AGENTS_SIGNATURE](examples=tf.constant(history_example))
    return {name: agents[name].numpy()[0] for name in (F.AGENT_VECTORS, F.AGENT_MASK, F.AGENT_WEIGHTS)}


def test_agents_and_the_latest_events_score_like_the_whole_history_in_a_fresh_process(served, tmp_path):
    export_dir, log, schema, user, candidates = served
    time = int(candidates[F.TIMESTAMP][0])
    recent = serving_client.recent_events(log, user, time, schema, RECENT)
    assert recent[F.HISTORY_MASK].shape == (RECENT,) and recent[F.HISTORY_MASK].all()
    with_agents = serving_client.agent_examples(_agents(*served), user, candidates, schema, recent=recent)
    whole_history = serving_client.examples_from_events(log, user, candidates, schema)
    scores = helpers.fresh_process_scores(export_dir, {
        "agents": serving.predict_request(with_agents, signature_name=serving.SCORE_WITH_AGENTS_SIGNATURE),
        "history": serving.predict_request(whole_history)}, tmp_path)
    np.testing.assert_allclose(scores["agents"], scores["history"], rtol=1e-5, atol=1e-6)
    assert len(set(np.round(scores["agents"], 6))) > 1  # candidates really differ


def test_an_agent_request_without_the_latest_events_is_refused_with_the_feature_named(served):
    export_dir, log, schema, user, candidates = served
    without_recent = serving_client.agent_examples(_agents(*served), user, candidates, schema)
    loaded = helpers.load_saved_model(str(export_dir))
    with pytest.raises(tf.errors.InvalidArgumentError, match="hist_"):
        loaded.signatures[serving.SCORE_WITH_AGENTS_SIGNATURE](examples=tf.constant(without_recent))


def test_the_client_refuses_latest_events_that_leak_or_are_misshapen(served):
    export_dir, log, schema, user, candidates = served
    agents = _agents(*served)
    recent = serving_client.recent_events(log, user, int(candidates[F.TIMESTAMP][0]), schema, RECENT)
    leaking = {**recent, F.history_name(F.TIMESTAMP): recent[F.history_name(F.TIMESTAMP)] + 10**9}
    with pytest.raises(ValueError, match="strictly before"):
        serving_client.agent_examples(agents, user, candidates, schema, recent=leaking)
    short_items = {**recent, F.history_name(F.ITEM_ID): recent[F.history_name(F.ITEM_ID)][1:]}
    with pytest.raises(ValueError, match="hist_item_id"):
        serving_client.agent_examples(agents, user, candidates, schema, recent=short_items)
    with pytest.raises(ValueError, match="hist_mask"):
        serving_client.agent_examples(agents, user, candidates, schema,
                                      recent={name: values for name, values in recent.items() if name != F.HISTORY_MASK})


@pytest.mark.parametrize("edit, message", [
    (lambda recent: recent[F.history_name(F.TIMESTAMP)].__setitem__(-1, 10**12), "Leakage"),
    (lambda recent: recent[F.HISTORY_MASK].__setitem__(-1, 0), "right-aligned"),
])
def test_the_served_signature_checks_the_latest_events_like_a_history(served, edit, message):
    # Sent without the client's checks, the signature's own checks refuse them by name.
    export_dir, log, schema, user, candidates = served
    recent = {name: values.copy() for name, values in serving_client.recent_events(
        log, user, int(candidates[F.TIMESTAMP][0]), schema, RECENT).items()}
    edit(recent)
    columns = {**{name: values[:2] for name, values in candidates.items()}, F.USER_ID: np.full(2, user)}
    columns.update({name: np.repeat(values[None], 2, axis=0) for name, values in _agents(*served).items()})
    columns.update({name: np.repeat(values[None], 2, axis=0) for name, values in recent.items()})
    loaded = helpers.load_saved_model(str(export_dir))
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures[serving.SCORE_WITH_AGENTS_SIGNATURE](examples=tf.constant(F.to_tf_examples(columns)))
