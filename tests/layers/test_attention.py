"""masked_softmax and DIN target attention against NumPy references."""
import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tfrs_seqcompress.layers import attention


def test_masked_softmax_matches_numpy_and_zeroes_padding():
    scores = np.array([[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 2.0, 0.0]], np.float32)
    mask = np.array([[0, 1, 1, 1], [0, 0, 0, 0]], bool)
    weights = attention.masked_softmax(tf.constant(scores), tf.constant(mask)).numpy()
    expected = np.exp(scores[0, 1:]) / np.exp(scores[0, 1:]).sum()
    np.testing.assert_allclose(weights[0], [0.0, *expected], rtol=1e-6)
    np.testing.assert_array_equal(weights[1], np.zeros(4))  # empty history: no weight at all


def _numpy_target_attention(layer, history, mask, candidate):
    dense_layers = [layer for layer in layer._scorer.layers]
    candidate_b = np.broadcast_to(candidate[:, None, :], history.shape)
    x = np.concatenate([history, candidate_b, history - candidate_b, history * candidate_b], axis=-1)
    for index, dense in enumerate(dense_layers):
        kernel, bias = dense.get_weights()
        x = x @ kernel + bias
        if index < len(dense_layers) - 1:
            x = np.maximum(x, 0)
    scores = np.where(mask, x[..., 0], -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights = weights / weights.sum(-1, keepdims=True)
    return np.einsum("bl,bld->bd", weights, history)


def test_target_attention_matches_numpy_reference():
    rng = np.random.default_rng(0)
    history = rng.normal(size=(3, 5, 4)).astype(np.float32)
    candidate = rng.normal(size=(3, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 1]], bool)
    layer = attention.TargetAttention(hidden_units=(8, 4))
    output = layer(history, mask, candidate).numpy()
    np.testing.assert_allclose(output, _numpy_target_attention(layer, history, mask, candidate), rtol=1e-5, atol=1e-6)


def test_target_attention_config_round_trip(tmp_path):
    layer = attention.TargetAttention(hidden_units=(6,), activation="tanh")
    clone = attention.TargetAttention.from_config(layer.get_config())
    assert clone.hidden_units == (6,) and clone.activation == "tanh"


def test_a_prior_multiplies_the_attention_weights():
    rng = np.random.default_rng(1)
    history = rng.normal(size=(2, 4, 3)).astype(np.float32)
    candidate = rng.normal(size=(2, 3)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
    prior = np.array([[0.7, 0.2, 0.1, 0.0], [0.25, 0.25, 0.25, 0.25]], np.float32)
    layer = attention.TargetAttention(hidden_units=(8,))
    plain = layer.attention_weights(history, mask, candidate).numpy()
    weighted = layer.attention_weights(history, mask, candidate, prior=prior).numpy()
    expected = plain * prior / (plain * prior).sum(-1, keepdims=True)  # weights ∝ prior * exp(score)
    np.testing.assert_allclose(weighted, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(weighted[1], plain[1], rtol=1e-5)  # a uniform prior changes nothing


def _chunked_and_whole(chunk_size, length=37, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    history = tf.Variable(rng.normal(size=(3, length, dim)).astype(np.float32))
    candidate = tf.Variable(rng.normal(size=(3, dim)).astype(np.float32))
    mask = tf.constant(rng.random((3, length)) > 0.3)
    whole, chunked = attention.TargetAttention(chunk_size=10_000), attention.TargetAttention(chunk_size=chunk_size)
    whole(history, mask, candidate), chunked(history, mask, candidate)
    chunked.set_weights(whole.get_weights())
    return history, mask, candidate, whole, chunked


@pytest.mark.parametrize("compiled", [True, False], ids=["tf.function", "eager"])
@pytest.mark.parametrize("chunk_size", [1, 5, 36])
def test_a_long_history_is_scored_in_chunks_with_the_same_output_and_gradients(chunk_size, compiled):
    history, mask, candidate, whole, chunked = _chunked_and_whole(chunk_size)

    def output_and_gradients(layer):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.sin(3.0 * layer(history, mask, candidate)))
        return [loss, *tape.gradient(loss, [history, candidate, *layer.trainable_variables])]

    if compiled:
        output_and_gradients = tf.function(output_and_gradients)
    for got, want in zip(output_and_gradients(chunked), output_and_gradients(whole)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)


def test_a_history_of_unknown_or_zero_length_is_scored_in_chunks():
    history, mask, candidate, whole, chunked = _chunked_and_whole(5)
    spec = [tf.TensorSpec([None, None, 8]), tf.TensorSpec([None, None], tf.bool), tf.TensorSpec([None, 8])]
    unknown_length = tf.function(chunked.call, input_signature=spec)
    np.testing.assert_allclose(unknown_length(history, mask, candidate).numpy(),
                               whole(history, mask, candidate).numpy(), atol=1e-5)
    assert not np.any(unknown_length(history[:, :0], mask[:, :0], candidate).numpy())


def test_chunk_size_is_checked_and_kept_in_the_config():
    with pytest.raises(ValueError, match="chunk_size must be a whole number of events >= 1, got 0"):
        attention.TargetAttention(chunk_size=0)
    assert attention.TargetAttention.from_config(attention.TargetAttention(chunk_size=7).get_config()).chunk_size == 7
