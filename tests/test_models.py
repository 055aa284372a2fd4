"""The TFRS ranking model: learns on synthetic data, checks its features, tolerates unknown IDs."""
import numpy as np
import pytest
import tensorflow as tf

from tfrs_seqcompress import features as F
from tfrs_seqcompress import metrics, models, registry
from tfrs_seqcompress.data import history, synthetic, tf_data
from tfrs_seqcompress.hisac import semantic as semantic_vectors
from tfrs_seqcompress.hisac.codebook import CodebookError, fit_residual_kmeans


@pytest.fixture(scope="module")
def world_examples():
    world = synthetic.generate(synthetic.SyntheticConfig(
        num_users=60, num_categories=4, subcategories_per_category=4, items_per_subcategory=5, major_interests=2,
        rare_interests=2, mean_history=120, history_length=30, seed=1))
    examples = history.build_history_examples(world.dataset.log, world.dataset.schema, min_history=1)
    return world.dataset.schema, examples, world.dataset


@pytest.fixture(scope="module")
def semantic(world_examples):
    """Content vectors and codebooks for HiSAC (4 x 8 codes, 8 agents) and the global clusters (8 codes)."""
    dataset = world_examples[2]
    vectors = semantic_vectors.content_vectors(dataset)
    known = semantic_vectors.known_rows(vectors)
    return {"hisac": {"codebook": fit_residual_kmeans(vectors[known], (4, 8), keys=known), "item_vectors": vectors,
                      "fanouts": (4, 2)},
            "global_clusters": {"codebook": fit_residual_kmeans(vectors[known], (8,), keys=known),
                                "item_vectors": vectors}}


@pytest.mark.parametrize("encoder_name", ["mean", "din_last_n", "din_full", "sim_hard", "global_clusters", "hisac"])
def test_every_encoder_trains_and_beats_chance(world_examples, semantic, encoder_name):
    schema, examples, _ = world_examples
    train, test = history.split_by_time(examples, history.time_cutoff(examples[F.TIMESTAMP], 0.2))
    tf.keras.utils.set_random_seed(0)
    model = models.build_ranking_model(schema, encoder_name, learning_rate=3e-3, **semantic.get(encoder_name, {}))
    # Six epochs: the agent-based encoders learn the candidate-to-agent match more slowly (at three
    # epochs they were still below 0.6 here, at ten above DIN-full).
    fit = model.fit(tf_data.dataset_from_columns(train, 256, shuffle_seed=0), epochs=6, verbose=0)
    losses = fit.history["logloss"]  # epoch mean; TFRS reports "loss" of the last batch only
    assert losses[-1] < losses[0]
    predicted = models.predict_probabilities(model, tf_data.dataset_from_columns(test, 1024))
    assert metrics.roc_auc(predicted["label"], predicted["probability"]) > 0.65  # chance is 0.5 ± 0.015 here


def _batch(examples, rows=8):
    return {name: tf.constant(values[:rows]) for name, values in examples.items()}


def test_missing_feature_is_named(world_examples):
    schema, examples, _ = world_examples
    model = models.build_ranking_model(schema, "mean")
    batch = _batch(examples)
    del batch["hist_label"]
    with pytest.raises(ValueError, match="RankingModel is missing feature\\(s\\) \\['hist_label'\\]"):
        model(batch)


def test_float_ids_are_rejected_with_the_feature_named(world_examples):
    schema, examples, _ = world_examples
    model = models.build_ranking_model(schema, "mean")
    batch = {**_batch(examples), F.ITEM_ID: tf.constant(examples[F.ITEM_ID][:8], tf.float32)}
    with pytest.raises(ValueError, match="'item_id' must be an integer tensor \\(int64 IDs\\), got float32"):
        model(batch)


def test_wrong_history_length_is_named(world_examples):
    schema, examples, _ = world_examples
    model = models.build_ranking_model(schema.with_history_length(40), "mean")
    with pytest.raises(ValueError, match="'hist_item_id' must have shape \\[None, 40\\] \\(history length 40\\)"):
        model(_batch(examples))


def test_unknown_ids_fall_back_to_the_unknown_embedding(world_examples):
    schema, examples, _ = world_examples
    model = models.build_ranking_model(schema, "din_full")
    batch = _batch(examples)
    unknown = {**batch, F.ITEM_ID: tf.fill([8], tf.constant(schema.num_items + 100, tf.int64))}
    as_zero = {**batch, F.ITEM_ID: tf.zeros([8], tf.int64)}
    np.testing.assert_allclose(model(unknown).numpy(), model(as_zero).numpy())


def test_an_event_feature_value_of_0_is_a_value_and_not_the_unknown_one(world_examples):
    schema, examples, _ = world_examples  # synthetic context features: hour 0-23, device, price
    tf.keras.utils.set_random_seed(0)
    model = models.build_ranking_model(schema, "din_full")
    batch = _batch(examples)
    at = lambda hour: model({**batch, "hour": tf.fill([8], tf.constant(hour, tf.int64))}).numpy()  # noqa: E731
    unknown = at(schema.event_features["hour"] + 5)   # an hour the model never saw: the unknown row
    np.testing.assert_allclose(unknown, at(-1))        # every out-of-range value shares it
    assert np.abs(at(0) - unknown).max() > 1e-6        # midnight is an hour of its own
    assert np.abs(at(0) - at(1)).max() > 1e-6


def test_model_rejects_a_non_encoder(world_examples):
    schema, _, _ = world_examples
    with pytest.raises(ValueError, match="encoder must be a layers.HistoryEncoder, got Dense"):
        models.RankingModel(schema, tf.keras.layers.Dense(3))


def test_history_outcomes_reach_the_score_and_are_required(world_examples):
    schema, examples, _ = world_examples  # synthetic outcome features: action_type, dwell
    tf.keras.utils.set_random_seed(0)
    model = models.build_ranking_model(schema, "din_full")
    batch = _batch(examples)
    deeper = {**batch, "hist_dwell": tf.where(batch[F.HISTORY_MASK] > 0, tf.constant(7, tf.int64), batch["hist_dwell"])}
    assert np.abs(model(deeper).numpy() - model(batch).numpy()).max() > 1e-6
    del batch["hist_action_type"]
    with pytest.raises(ValueError, match="missing feature\\(s\\) \\['hist_action_type'\\]"):
        model(batch)


def test_outcomes_can_be_left_out(world_examples):
    schema, examples, _ = world_examples
    model = models.build_ranking_model(schema, "din_full", embed_outcomes=False)
    batch = _batch(examples)
    with_dwell = model(batch).numpy()
    changed = {**batch, "hist_dwell": tf.zeros_like(batch["hist_dwell"])}
    np.testing.assert_allclose(model(changed).numpy(), with_dwell)
    assert model.get_config()["embed_outcomes"] is False


def test_semantic_encoders_need_a_codebook_and_refuse_another(world_examples, semantic):
    schema = world_examples[0]
    with pytest.raises(ValueError, match="'hisac' needs a fitted codebook and the item semantic vectors"):
        models.build_ranking_model(schema, "hisac")
    model = models.build_ranking_model(schema, "hisac", **semantic["hisac"])
    assert model.encoder.temperature == pytest.approx(
        registry.HISAC_TEMPERATURE_SCALE * semantic["hisac"]["codebook"].statistics["quantisation_error"][0])
    model.check_codebook(semantic["hisac"]["codebook"])
    with pytest.raises(CodebookError, match="level sizes \\(8,\\); expected \\(4, 8\\)"):
        model.check_codebook(semantic["global_clusters"]["codebook"])
    with pytest.raises(CodebookError, match="DINEncoder uses no codebook"):
        models.build_ranking_model(schema, "din_full").check_codebook(semantic["hisac"]["codebook"])


def test_semantic_inputs_give_every_encoder_the_items_semantic_id_embedding(world_examples, semantic, tmp_path):
    """Equal inputs: with ``semantic_inputs`` a baseline's item embeddings also hold the semantic-ID
    embedding HiSAC reads (items sharing a semantic ID move together), and the model round-trips."""
    schema, examples, _ = world_examples
    hisac_tables = {name: semantic["hisac"][name] for name in ("codebook", "item_vectors")}
    tf.keras.utils.set_random_seed(0)
    model = models.build_ranking_model(schema, "din_full", semantic_inputs=True, **hisac_tables)
    batch = _batch(examples)
    before = model(batch).numpy()
    first_level = model.semantic_code_embeddings[0]
    first_level.set_weights([first_level.get_weights()[0] + 0.5])  # shift every semantic-ID embedding
    assert np.abs(model(batch).numpy() - before).max() > 1e-4
    plain = models.build_ranking_model(schema, "din_full", **hisac_tables)
    assert plain.semantic_ids is None and not plain.semantic_code_embeddings
    clone = models.RankingModel.from_config(model.get_config())
    clone(batch)
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(batch).numpy(), model(batch).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="'din_full' needs a fitted codebook"):
        models.build_ranking_model(schema, "din_full", semantic_inputs=True)


def test_a_short_term_base_wraps_the_encoder(world_examples, semantic):
    schema, examples, _ = world_examples
    model = models.build_ranking_model(schema, "hisac", short_term_last_n=5, **semantic["hisac"])
    assert model.encoder.last_n == 5 and model.encoder.long_term.num_agents == 8
    assert model.supports_agents() and model.agent_recent_events() == 5  # agents + the latest 5 events
    batch = _batch(examples)
    model(batch)
    features = {**batch, **model.compute_agents(batch)}
    assert model.score_with_agents({**features, **{name: batch[name][:, -5:] for name in
                                                    model.recent_event_features()}}).shape == (len(batch[F.LABEL]),)
    with pytest.raises(ValueError, match=r"Feature 'hist_item_id' must be an integer tensor of shape \[None, 5\]"):
        model.score_with_agents(features)   # the whole history, not the latest 5 events
