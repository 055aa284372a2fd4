"""IAT layers: bottleneck, strictly causal SIT, stage-2 encoder (masks, frozen tokens, dims, serialization)."""
import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tfrs_seqcompress import layers
from tfrs_seqcompress.layers import base, iat

B, L, D, d = 3, 6, 8, 4


def test_token_bottleneck_is_a_sigmoid_of_an_affine_map():
    layer = iat.TokenBottleneck(token_dim=d)
    h = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
    tokens = layer(h).numpy()
    kernel, bias = layer.get_weights()
    np.testing.assert_allclose(tokens, 1 / (1 + np.exp(-(h @ kernel + bias))), rtol=1e-5)
    assert tokens.shape == (5, d) and np.all((tokens > 0) & (tokens < 1))


def _sit_inputs(seed=0):
    rng = np.random.default_rng(seed)
    sequence = tf.constant(rng.normal(size=(2, 5, D)), tf.float32)
    timestamps = tf.constant([[1, 2, 2, 5, 9], [3, 4, 6, 0, 0]], tf.int64)
    mask = tf.constant([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], tf.int64)
    return sequence, timestamps, mask


def test_sit_never_lets_a_later_instance_change_an_earlier_output():
    sit = iat.SourceInstanceTransformer(num_layers=2, num_heads=2, hidden_dim=16)
    sequence, timestamps, mask = _sit_inputs()
    before = sit(sequence, timestamps, mask).numpy()
    changed = sequence.numpy().copy()
    changed[0, 3] += 10.0  # instance at t=5
    after = sit(tf.constant(changed), timestamps, mask).numpy()
    np.testing.assert_allclose(after[0, :3], before[0, :3], atol=1e-6)  # everything earlier: unchanged
    assert not np.allclose(after[0, 4], before[0, 4])                  # the later instance (t=9) sees it
    np.testing.assert_allclose(after[1], before[1], atol=1e-6)         # other users: unchanged


def test_sit_ties_and_first_instances_get_no_context():
    sit = iat.SourceInstanceTransformer(num_layers=2, hidden_dim=16)
    sequence, timestamps, mask = _sit_inputs()
    output = sit(sequence, timestamps, mask).numpy()
    np.testing.assert_array_equal(output[:, 0], 0.0)  # nothing earlier
    changed = sequence.numpy().copy()
    changed[0, 2] += 10.0  # the t=2 tie partner of position 1
    np.testing.assert_allclose(sit(tf.constant(changed), timestamps, mask).numpy()[0, 1], output[0, 1], atol=1e-6)
    np.testing.assert_array_equal(output[1, 3:], 0.0)  # padding


def test_sit_output_does_not_read_the_instance_itself_when_queries_are_separate():
    sit = iat.SourceInstanceTransformer(num_layers=2, hidden_dim=16)
    sequence, timestamps, mask = _sit_inputs()
    queries = tf.zeros_like(sequence)
    before = sit(sequence, timestamps, mask, queries=queries).numpy()
    changed = sequence.numpy().copy()
    changed[0, 2] += 10.0  # instance 2's value (its outcome) changes, its query does not
    after = sit(tf.constant(changed), timestamps, mask, queries=queries).numpy()
    np.testing.assert_allclose(after[0, 2], before[0, 2], atol=1e-6)


def _encoder_inputs(seed=0):
    rng = np.random.default_rng(seed)
    mask = np.array([[1] * L, [0, 0, 0, 1, 1, 1], [0] * L], bool)
    return {
        base.HISTORY_TOKENS: tf.constant(rng.random(size=(B, L, d)), tf.float32),
        base.HISTORY_EMBEDDINGS: tf.constant(rng.normal(size=(B, L, D)), tf.float32),
        base.HISTORY_MASK: tf.constant(mask),
        base.CANDIDATE_EMBEDDING: tf.constant(rng.normal(size=(B, D)), tf.float32),
        base.HISTORY_TIME_GAP: tf.constant(rng.integers(0, 10**6, size=(B, L)), tf.int64),
    }


def test_iat_encoder_ignores_padding_and_gives_zeros_for_an_empty_history():
    encoder = layers.IATEncoder(token_dim=d)
    inputs = _encoder_inputs()
    output = encoder(inputs).numpy()
    assert output.shape == (B, D)
    np.testing.assert_array_equal(output[2], 0.0)
    garbage = {name: value.numpy().copy() for name, value in inputs.items()}
    padding = ~garbage[base.HISTORY_MASK]
    garbage[base.HISTORY_TOKENS][padding] = 99.0
    garbage[base.HISTORY_EMBEDDINGS][padding] = -50.0
    garbage[base.HISTORY_TIME_GAP][padding] = 7
    np.testing.assert_allclose(encoder({k: tf.constant(v) for k, v in garbage.items()}).numpy(), output, atol=1e-5)


def test_iat_encoder_keeps_tokens_frozen():
    encoder = layers.IATEncoder(token_dim=d)
    inputs = _encoder_inputs()
    tokens = tf.Variable(inputs[base.HISTORY_TOKENS])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(encoder({**inputs, base.HISTORY_TOKENS: tokens}))
    assert tape.gradient(loss, tokens) is None


def test_iat_encoder_refuses_tokens_of_another_dimension():
    inputs = {**_encoder_inputs(), base.HISTORY_TOKENS: tf.zeros((B, L, d + 2))}
    with pytest.raises(ValueError, match="'history_tokens' must have shape \\[batch, history_length, 4\\].*another source model"):
        layers.IATEncoder(token_dim=d)(inputs)


def test_iat_encoder_needs_tokens():
    inputs = _encoder_inputs()
    del inputs[base.HISTORY_TOKENS]
    with pytest.raises(ValueError, match="IATEncoder needs input\\(s\\) \\['history_tokens'\\]"):
        layers.IATEncoder(token_dim=d)(inputs)


def test_time_gap_buckets_are_log2():
    buckets = base.time_gap_buckets(tf.constant([-5, 0, 1, 3, 1000, 10**15])).numpy()
    np.testing.assert_array_equal(buckets, [0, 0, 1, 2, 9, base.TIME_GAP_BUCKETS - 1])


@pytest.mark.parametrize("layer_name", ["encoder", "encoder_without_side_information"])
def test_iat_encoder_serialization_round_trip(layer_name, tmp_path):
    encoder = layers.IATEncoder(token_dim=d, use_side_information=(layer_name == "encoder"))
    helpers.assert_layer_roundtrip(encoder, _encoder_inputs(), tmp_path)


def test_sit_and_bottleneck_configs_round_trip():
    sit = iat.SourceInstanceTransformer(num_layers=3, num_heads=4, hidden_dim=32, dropout=0.1)
    assert iat.SourceInstanceTransformer.from_config(sit.get_config()).get_config() == sit.get_config()
    assert iat.TokenBottleneck.from_config(iat.TokenBottleneck(7).get_config()).token_dim == 7


def test_the_din_base_can_be_limited_to_the_last_events():
    encoder = layers.IATEncoder(token_dim=d, base_last_n=2)  # token gate starts at 0: the base alone
    inputs = _encoder_inputs()
    changed = inputs[base.HISTORY_EMBEDDINGS].numpy().copy()
    changed[:, : L - 2] += 5.0  # events before the last two
    before = encoder(inputs).numpy()
    after = encoder({**inputs, base.HISTORY_EMBEDDINGS: tf.constant(changed)}).numpy()
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert encoder.get_config()["base_last_n"] == 2
    with pytest.raises(ValueError, match="base_last_n must be a positive int or None"):
        layers.IATEncoder(token_dim=d, base_last_n=0)
