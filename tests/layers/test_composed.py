"""HiSAC over IAT tokens: tokens are routed ranking values, voting stays on item semantic IDs."""
import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tfrs_seqcompress.hisac.codebook import fit_residual_kmeans
from tfrs_seqcompress.layers import base, composed, hisac

TOKEN_DIM = 3


@pytest.fixture(scope="module")
def semantic_ids():
    rng = np.random.default_rng(1)
    vectors = np.concatenate([np.zeros((1, 4)), rng.normal(size=(30, 4)) + np.repeat(np.eye(4) * 4, 8, 0)[:30]])
    return hisac.SemanticIds.from_codebook(fit_residual_kmeans(vectors[1:], (4, 3), seed=0), vectors.astype(np.float32))


def _inputs(seed=0, batch=4, length=9, dim=6):
    rng = np.random.default_rng(seed)
    item_ids = rng.integers(0, 31, size=(batch, length))
    return {base.HISTORY_EMBEDDINGS: tf.constant(rng.normal(size=(batch, length, dim)), tf.float32),
            base.HISTORY_MASK: tf.constant(item_ids > 0), base.HISTORY_ITEM_ID: tf.constant(item_ids, tf.int64),
            base.CANDIDATE_EMBEDDING: tf.constant(rng.normal(size=(batch, dim)), tf.float32),
            base.CANDIDATE_ITEM_ID: tf.constant(rng.integers(1, 31, size=batch), tf.int64),
            base.HISTORY_TIME_GAP: tf.constant(rng.integers(0, 10**6, size=(batch, length)), tf.int64),
            base.HISTORY_TOKENS: tf.constant(rng.random(size=(batch, length, TOKEN_DIM)), tf.float32)}


def _with_tokens(inputs, tokens):
    return {**inputs, base.HISTORY_TOKENS: tf.constant(tokens, tf.float32)}


def test_starts_as_hisac_and_the_tokens_count_once_the_gate_opens(semantic_ids):
    encoder = composed.HiSACTokenEncoder(semantic_ids, token_dim=TOKEN_DIM, fanouts=(2, 2))
    inputs = _inputs()
    other_tokens = _with_tokens(inputs, np.random.default_rng(9).random((4, 9, TOKEN_DIM)))
    np.testing.assert_allclose(encoder(inputs).numpy(), encoder(other_tokens).numpy())  # gate 0: plain HiSAC
    plain = hisac.HiSACEncoder(semantic_ids, fanouts=(2, 2))
    plain(inputs)
    token_path = {id(v) for v in [encoder.token_gate, *encoder.token_adapter.weights]}
    plain.set_weights([w for w, v in zip(encoder.get_weights(), encoder.weights) if id(v) not in token_path])
    np.testing.assert_allclose(encoder(inputs).numpy(), plain(inputs).numpy(), rtol=1e-6, atol=1e-6)
    encoder.token_gate.assign(1.0)
    assert not np.allclose(encoder(inputs).numpy(), encoder(other_tokens).numpy())


def test_agents_read_tokens_once_and_candidates_are_scored_without_them(semantic_ids):
    encoder = composed.HiSACTokenEncoder(semantic_ids, token_dim=TOKEN_DIM, fanouts=(2, 2))
    inputs = _inputs(seed=1)
    encoder(inputs)
    encoder.token_gate.assign(0.7)
    agents = encoder.compute_agents(inputs)
    served = encoder.attend_agents(agents["agent_vectors"], agents["agent_mask"], agents["agent_weights"],
                                   inputs[base.CANDIDATE_EMBEDDING], inputs[base.CANDIDATE_ITEM_ID])
    np.testing.assert_allclose(served.numpy(), encoder(inputs).numpy(), rtol=1e-6, atol=1e-6)


def test_no_gradient_reaches_the_frozen_tokens(semantic_ids):
    encoder = composed.HiSACTokenEncoder(semantic_ids, token_dim=TOKEN_DIM, fanouts=(2, 2))
    inputs = _inputs(seed=2)
    encoder(inputs)
    encoder.token_gate.assign(1.0)
    tokens = tf.Variable(inputs[base.HISTORY_TOKENS])
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(encoder({**inputs, base.HISTORY_TOKENS: tokens}))
    assert tape.gradient(out, tokens) is None
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(encoder(inputs))
    assert tape.gradient(out, encoder.token_adapter.kernel) is not None


@pytest.mark.parametrize("tokens, message", [
    (np.zeros((4, 9, TOKEN_DIM + 1), np.float32), r"'history_tokens' must have shape \[batch, history_length, 3\]"),
    (np.zeros((4, 9, TOKEN_DIM), np.int64), "'history_tokens' must be float"),
])
def test_tokens_of_another_width_or_dtype_are_refused(semantic_ids, tokens, message):
    encoder = composed.HiSACTokenEncoder(semantic_ids, token_dim=TOKEN_DIM, fanouts=(2, 2))
    with pytest.raises(ValueError, match=f"HiSACTokenEncoder: {message}"):
        encoder({**_inputs(), base.HISTORY_TOKENS: tf.constant(tokens)})


def test_missing_tokens_are_named(semantic_ids):
    encoder = composed.HiSACTokenEncoder(semantic_ids, token_dim=TOKEN_DIM, fanouts=(2, 2))
    inputs = {key: value for key, value in _inputs().items() if key != base.HISTORY_TOKENS}
    with pytest.raises(ValueError, match=r"needs input\(s\) \['history_tokens'\]"):
        encoder(inputs)


def test_round_trips_with_its_tables_and_token_width(semantic_ids, tmp_path):
    encoder = composed.HiSACTokenEncoder(semantic_ids, token_dim=TOKEN_DIM, fanouts=(2, 2), temperature=2.0)
    inputs = _inputs(seed=3)
    encoder(inputs)
    encoder.token_gate.assign(0.5)  # a round trip that dropped the token path would differ
    helpers.assert_layer_roundtrip(encoder, inputs, tmp_path)
    assert tf.keras.layers.deserialize(tf.keras.layers.serialize(encoder)).token_dim == TOKEN_DIM
