"""Baseline encoders: NumPy references, masks honoured, SIM-hard filtering, serialization, errors."""
import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tfrs_seqcompress import layers
from tfrs_seqcompress.layers import base

B, L, D = 4, 6, 8


def make_inputs(seed=0):
    rng = np.random.default_rng(seed)
    mask = np.array([[1] * 6, [0, 0, 1, 1, 1, 1], [0] * 5 + [1], [0] * 6], bool)
    return {
        base.HISTORY_EMBEDDINGS: tf.constant(rng.normal(size=(B, L, D)), tf.float32),
        base.HISTORY_MASK: tf.constant(mask),
        base.CANDIDATE_EMBEDDING: tf.constant(rng.normal(size=(B, D)), tf.float32),
        base.HISTORY_CATEGORY: tf.constant(rng.integers(1, 3, size=(B, L)), tf.int64),
        base.CANDIDATE_CATEGORY: tf.constant([1, 2, 1, 2], tf.int64),
    }


def with_padding_changed(inputs):
    """The same inputs with every padded position overwritten by garbage."""
    changed = dict(inputs)
    mask = inputs[base.HISTORY_MASK].numpy()
    history = inputs[base.HISTORY_EMBEDDINGS].numpy().copy()
    history[~mask] = 1e3
    changed[base.HISTORY_EMBEDDINGS] = tf.constant(history)
    categories = inputs[base.HISTORY_CATEGORY].numpy().copy()
    categories[~mask] = inputs[base.CANDIDATE_CATEGORY].numpy()[np.nonzero(~mask)[0]]
    changed[base.HISTORY_CATEGORY] = tf.constant(categories)
    return changed


ENCODERS = [layers.MeanPoolingEncoder(), layers.DINEncoder(last_n=3), layers.DINEncoder(), layers.SimHardEncoder()]


def test_mean_pooling_matches_numpy():
    inputs = make_inputs()
    output = layers.MeanPoolingEncoder()(inputs).numpy()
    history, mask = inputs[base.HISTORY_EMBEDDINGS].numpy(), inputs[base.HISTORY_MASK].numpy()
    for row in range(3):
        np.testing.assert_allclose(output[row], history[row][mask[row]].mean(axis=0), rtol=1e-5)
    np.testing.assert_array_equal(output[3], np.zeros(D))


@pytest.mark.parametrize("encoder", ENCODERS, ids=lambda e: f"{type(e).__name__}-{getattr(e, 'last_n', '')}")
def test_padded_positions_change_nothing(encoder):
    inputs = make_inputs()
    np.testing.assert_allclose(encoder(inputs).numpy(), encoder(with_padding_changed(inputs)).numpy(), atol=1e-6)


@pytest.mark.parametrize("encoder", ENCODERS, ids=lambda e: f"{type(e).__name__}-{getattr(e, 'last_n', '')}")
def test_empty_history_gives_zeros(encoder):
    assert np.all(encoder(make_inputs())[3].numpy() == 0)


def test_din_last_n_ignores_older_events():
    inputs = make_inputs()
    encoder = layers.DINEncoder(last_n=2)
    before = encoder(inputs).numpy()
    history = inputs[base.HISTORY_EMBEDDINGS].numpy().copy()
    history[:, :-2] += 5.0  # change everything but the last two events
    after = encoder({**inputs, base.HISTORY_EMBEDDINGS: tf.constant(history)}).numpy()
    np.testing.assert_allclose(before, after, atol=1e-6)
    full = layers.DINEncoder()
    full(inputs)
    full.attention.set_weights(encoder.attention.get_weights())
    assert not np.allclose(full(inputs).numpy()[0], full({**inputs, base.HISTORY_EMBEDDINGS: tf.constant(history)}).numpy()[0])


def test_sim_hard_equals_din_over_the_candidates_category_only():
    inputs = make_inputs()
    sim = layers.SimHardEncoder()
    sim_out = sim(inputs).numpy()
    din = layers.DINEncoder()
    din(inputs)
    din.attention.set_weights(sim.attention.get_weights())
    same_category = (inputs[base.HISTORY_CATEGORY].numpy() == inputs[base.CANDIDATE_CATEGORY].numpy()[:, None])
    restricted = {**inputs, base.HISTORY_MASK: tf.constant(inputs[base.HISTORY_MASK].numpy() & same_category)}
    np.testing.assert_allclose(sim_out, din(restricted).numpy(), atol=1e-6)


def test_sim_hard_attends_over_the_retrieved_events_only_in_history_order():
    inputs = make_inputs()
    sim = layers.SimHardEncoder()
    searched = sim.restrict_mask(inputs, inputs[base.HISTORY_MASK]).numpy()
    positions = np.arange(L, dtype=np.float32)[None, :, None] * np.ones((B, L, 1), np.float32)
    retrieved, mask = sim.attended_events(tf.constant(positions), tf.constant(searched))
    assert retrieved.shape == (B, searched.sum(axis=1).max(), 1)
    for row in range(B):
        np.testing.assert_array_equal(retrieved.numpy()[row, :, 0][mask.numpy()[row]], np.flatnonzero(searched[row]))


def test_sim_hard_gradient_is_din_over_the_category_and_a_batch_without_matches_gives_zeros():
    inputs = make_inputs()
    sim, din = layers.SimHardEncoder(), layers.DINEncoder()
    sim(inputs), din(inputs)
    din.attention.set_weights(sim.attention.get_weights())
    same_category = (inputs[base.HISTORY_CATEGORY].numpy() == inputs[base.CANDIDATE_CATEGORY].numpy()[:, None])
    restricted = {**inputs, base.HISTORY_MASK: tf.constant(inputs[base.HISTORY_MASK].numpy() & same_category)}
    gradients = []
    for encoder, encoder_inputs in ((sim, inputs), (din, restricted)):
        history = tf.Variable(encoder_inputs[base.HISTORY_EMBEDDINGS])
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.sin(encoder({**encoder_inputs, base.HISTORY_EMBEDDINGS: history})))
        gradients.append(tape.gradient(loss, history).numpy())
    np.testing.assert_allclose(*gradients, atol=1e-6)
    nothing = {**inputs, base.CANDIDATE_CATEGORY: tf.constant([9, 9, 9, 9], tf.int64)}
    assert not np.any(sim(nothing).numpy())


@pytest.mark.parametrize("encoder", ENCODERS, ids=lambda e: f"{type(e).__name__}-{getattr(e, 'last_n', '')}")
def test_serialization_round_trip(encoder, tmp_path):
    helpers.assert_layer_roundtrip(encoder, make_inputs(), tmp_path)


def test_missing_input_is_named():
    inputs = make_inputs()
    del inputs[base.CANDIDATE_CATEGORY]
    with pytest.raises(ValueError, match="SimHardEncoder needs input\\(s\\) \\['candidate_category'\\]"):
        layers.SimHardEncoder()(inputs)


def test_wrong_rank_is_named():
    inputs = {**make_inputs(), base.HISTORY_EMBEDDINGS: tf.zeros((B, L))}
    with pytest.raises(ValueError, match="'history_embeddings' must have shape \\[batch, history_length, dim\\]"):
        layers.DINEncoder()(inputs)


def test_mismatched_dims_are_named():
    inputs = {**make_inputs(), base.CANDIDATE_EMBEDDING: tf.zeros((B, D + 1))}
    with pytest.raises(ValueError, match="'history_embeddings' dim 8 differs from 'candidate_embedding' dim 9"):
        layers.MeanPoolingEncoder()(inputs)


def test_registry():
    assert isinstance(layers.make_encoder("din_last_n", last_n=7), layers.DINEncoder)
    with pytest.raises(ValueError, match="Unknown history encoder 'dien'"):
        layers.make_encoder("dien")
    with pytest.raises(ValueError, match="last_n must be a positive int or None"):
        layers.DINEncoder(last_n=0)
