"""IAT source models: both schemes learn, tokens never see their own outcome, versions change with weights."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tfrs_seqcompress import features as F
from tfrs_seqcompress import metrics, models, serving
from tfrs_seqcompress.data import history, synthetic, tf_data
from tfrs_seqcompress.iat import source_models as S


@pytest.fixture(scope="module")
def world():
    generated = synthetic.generate(synthetic.SyntheticConfig(
        num_users=60, num_categories=4, subcategories_per_category=4, items_per_subcategory=5, major_interests=2,
        rare_interests=2, mean_history=120, history_length=20, seed=4))
    return generated.dataset.log, generated.dataset.schema


@pytest.mark.parametrize("scheme", S.SCHEMES)
def test_both_schemes_train_and_reduce_loss(world, scheme):
    log, schema = world
    model = S.SourceModel(schema, scheme, token_dim=8)
    model.compile(optimizer=tf.keras.optimizers.Adam(3e-3))
    if scheme == "temporal_order":
        data = tf.data.Dataset.from_tensor_slices(S.instance_columns(log, schema)).batch(256)
    else:
        data = tf.data.Dataset.from_tensor_slices(S.user_order_sequences(log, schema, 32)).batch(8)
    fit = model.fit(data, epochs=3, verbose=0)
    assert fit.history["logloss"][-1] < fit.history["logloss"][0] - 0.01
    tokens = S.compute_tokens(model, log)
    assert tokens.shape == (len(log[F.USER_ID]), 8) and np.all((tokens > 0) & (tokens < 1))


def test_user_order_windows_are_time_ordered_per_user(world):
    log, schema = world
    sequences = S.user_order_sequences(log, schema, window=16)
    assert sequences[S.SEQUENCE_MASK].sum() == len(log[F.USER_ID])
    for row in range(len(sequences[F.USER_ID])):
        real = sequences[S.SEQUENCE_MASK][row].astype(bool)
        assert len(set(sequences[F.USER_ID][row][real])) == 1
        assert np.all(np.diff(sequences[F.TIMESTAMP][row][real]) >= 0)
        assert real[0] and np.all(np.diff(real.astype(int)) <= 0)  # padding only at the end


def test_an_instances_own_outcome_never_reaches_its_prediction(world):
    log, schema = world
    model = S.SourceModel(schema, "user_order", token_dim=8)
    batch = {name: tf.constant(values[:2]) for name, values in S.user_order_sequences(log, schema, 16).items()}
    logits = model(batch).numpy()
    flipped = {**batch, F.LABEL: tf.tensor_scatter_nd_update(batch[F.LABEL], [[0, 5]], [1 - batch[F.LABEL][0, 5]]),
               "action_type": tf.tensor_scatter_nd_update(batch["action_type"], [[0, 5]], [3])}
    after = model(flipped).numpy()
    np.testing.assert_allclose(after[0, :6], logits[0, :6], atol=1e-6)  # itself and earlier: unchanged
    later = batch[F.TIMESTAMP][0].numpy() > batch[F.TIMESTAMP][0, 5].numpy()
    assert not np.allclose(after[0][later], logits[0][later])          # later instances do see it


def test_fingerprint_changes_with_weights_and_scheme(world):
    log, schema = world
    first = S.train_source_model(log, schema, "temporal_order", token_dim=4, epochs=1)
    same = S.train_source_model(log, schema, "temporal_order", token_dim=4, epochs=1)
    assert first.fingerprint() == same.fingerprint()  # seeded: identical weights, identical version
    other = S.train_source_model(log, schema, "temporal_order", token_dim=4, epochs=1, seed=1)
    assert first.fingerprint() != other.fingerprint()


def test_unknown_scheme_and_missing_features_are_named(world):
    log, schema = world
    with pytest.raises(ValueError, match="Unknown IAT scheme 'user'"):
        S.SourceModel(schema, "user")
    model = S.SourceModel(schema, "temporal_order")
    with pytest.raises(ValueError, match="needs instance feature\\(s\\) \\['price'\\]"):
        model.tokens({name: tf.constant(log[name][:4]) for name in (F.ITEM_ID, F.CATEGORY, "hour", "device")})


def test_ranking_model_with_iat_tokens_trains_exports_and_refuses_a_mismatched_schema(world, tmp_path):
    log, schema = world
    cutoff = history.time_cutoff(log[F.TIMESTAMP], 0.2)
    source = S.train_source_model({k: v[log[F.TIMESTAMP] < cutoff] for k, v in log.items()}, schema, "user_order",
                                  token_dim=8, epochs=1, window=32, batch_size=256)
    store = S.build_token_store(source, log)
    examples = store.attach(history.build_history_examples(log, schema), expected_version=source.fingerprint())
    token_schema = dataclasses.replace(schema, token_dim=8, token_version=source.fingerprint())
    train, test = history.split_by_time(examples, cutoff)
    tf.keras.utils.set_random_seed(0)
    model = models.build_ranking_model(token_schema, "iat", learning_rate=3e-3)
    fit = model.fit(tf_data.dataset_from_columns(train, 256, shuffle_seed=0), epochs=3, verbose=0)
    assert fit.history["logloss"][-1] < fit.history["logloss"][0]
    predicted = models.predict_probabilities(model, tf_data.dataset_from_columns(test, 1024))
    assert metrics.roc_auc(predicted["label"], predicted["probability"]) > 0.6  # chance: 0.5 ± 0.015
    sample = {name: values[:20] for name, values in test.items()}
    serving.export_serving_model(model, str(tmp_path / "iat" / "1"))
    signature = tf.saved_model.load(str(tmp_path / "iat" / "1")).signatures["serving_default"]
    served = signature(examples=tf.constant(F.to_tf_examples(sample)))["score"].numpy()
    in_memory = tf.sigmoid(model({name: tf.constant(values) for name, values in sample.items()})).numpy()
    np.testing.assert_allclose(served, in_memory, rtol=1e-5, atol=1e-6)
    stale = {**sample, F.TOKEN_VERSION: np.full(20, F.token_version_id("another source model"), np.int64)}
    with pytest.raises(tf.errors.InvalidArgumentError, match="token_version: hist_token comes from another source model"):
        signature(examples=tf.constant(F.to_tf_examples(stale)))
    with pytest.raises(ValueError, match="IATEncoder expects tokens of dim 8 but the schema's token_dim is 0"):
        models.RankingModel(schema, models.encoder_layers.make_encoder("iat", token_dim=8))


def test_tokens_transfer_to_users_the_source_model_never_saw(world):
    log, schema = world
    source_users = log[F.USER_ID] % 2 == 1
    source = S.train_source_model({k: v[source_users] for k, v in log.items()}, schema, "temporal_order",
                                  token_dim=8, epochs=2, batch_size=256)
    target_log = {k: v[~source_users] for k, v in log.items()}
    store = S.build_token_store(source, target_log)  # tokens for users outside the source's training data
    examples = store.attach(history.build_history_examples(target_log, schema), expected_version=source.fingerprint())
    train, test = history.split_by_time(examples, history.time_cutoff(target_log[F.TIMESTAMP], 0.2))
    tf.keras.utils.set_random_seed(0)
    target_schema = dataclasses.replace(schema, token_dim=8, token_version=source.fingerprint())
    model = models.build_ranking_model(target_schema, "iat", learning_rate=3e-3)
    model.fit(tf_data.dataset_from_columns(train, 256, shuffle_seed=0), epochs=3, verbose=0)
    predicted = models.predict_probabilities(model, tf_data.dataset_from_columns(test, 1024))
    # 30 target users, ~700 test examples: chance is 0.5 ± 0.02, so 0.56 is three deviations above it.
    assert metrics.roc_auc(predicted["label"], predicted["probability"]) > 0.56
