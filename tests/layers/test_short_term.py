"""A long-term encoder beside a short-term base: output = long term + DIN over the last N events."""
import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tfrs_seqcompress import layers
from tfrs_seqcompress.hisac.codebook import CodebookError
from tfrs_seqcompress.layers import base


def _inputs(batch=3, length=10, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.arange(length)[None, :] >= np.array([[0], [4], [9]])[:batch]
    return {base.HISTORY_EMBEDDINGS: tf.constant(rng.normal(size=(batch, length, dim)), tf.float32),
            base.HISTORY_MASK: tf.constant(mask), base.CANDIDATE_EMBEDDING: tf.constant(rng.normal(size=(batch, dim)),
                                                                                        tf.float32)}


def test_output_is_the_long_term_interest_plus_din_over_the_last_n_events():
    inputs = _inputs()
    encoder = layers.WithShortTermBase(layers.MeanPoolingEncoder(), last_n=3)
    out = encoder(inputs).numpy()
    recent = {base.HISTORY_EMBEDDINGS: inputs[base.HISTORY_EMBEDDINGS][:, -3:],
              base.HISTORY_MASK: inputs[base.HISTORY_MASK][:, -3:]}
    din = encoder.short_term(recent[base.HISTORY_EMBEDDINGS], recent[base.HISTORY_MASK],
                             inputs[base.CANDIDATE_EMBEDDING]).numpy()
    np.testing.assert_allclose(out, layers.MeanPoolingEncoder()(inputs).numpy() + din, rtol=1e-5, atol=1e-6)
    # Older events reach the output only through the long-term encoder.
    changed = dict(inputs)
    history = inputs[base.HISTORY_EMBEDDINGS].numpy().copy()
    history[:, :-3] += 1.0
    changed[base.HISTORY_EMBEDDINGS] = tf.constant(history)
    mean_shift = layers.MeanPoolingEncoder()(changed).numpy() - layers.MeanPoolingEncoder()(inputs).numpy()
    np.testing.assert_allclose(encoder(changed).numpy() - out, mean_shift, rtol=1e-4, atol=1e-5)


def test_round_trips_and_keeps_the_long_term_encoders_contract(tmp_path):
    encoder = layers.WithShortTermBase(layers.DINEncoder(last_n=5), last_n=2)
    helpers.assert_layer_roundtrip(encoder, _inputs(), tmp_path)
    sim = layers.WithShortTermBase(layers.SimHardEncoder(), last_n=2)
    assert sim.required_inputs == layers.SimHardEncoder.required_inputs
    with pytest.raises(ValueError, match="needs input"):
        sim(_inputs())  # no categories: the long-term encoder's own check names them
    with pytest.raises(CodebookError, match="uses no codebook"):
        sim.check_codebook(None)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="last_n must be a positive int"):
        layers.WithShortTermBase(layers.MeanPoolingEncoder(), last_n=0)
    with pytest.raises(ValueError, match="long_term must be a HistoryEncoder"):
        layers.WithShortTermBase(tf.keras.layers.Dense(3))


def test_over_agents_it_serves_from_the_agents_and_the_latest_events_alone():
    from tfrs_seqcompress.hisac.codebook import fit_residual_kmeans

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(20, 4)).astype(np.float32)
    vectors[0] = 0.0   # the padding item
    codebook = fit_residual_kmeans(vectors[1:], (4, 2), seed=0, keys=np.arange(1, 20))
    encoder = layers.WithShortTermBase(layers.HiSACEncoder(layers.SemanticIds.from_codebook(codebook, vectors),
                                                           fanouts=(2, 2)), last_n=3)
    inputs = {**_inputs(), base.HISTORY_ITEM_ID: tf.constant(rng.integers(1, 20, size=(3, 10))),
              base.CANDIDATE_ITEM_ID: tf.constant(rng.integers(1, 20, size=3))}
    in_graph = encoder(inputs).numpy()
    assert encoder.computes_agents and encoder.recent_events == 3 and encoder.num_agents == 4
    agents = encoder.compute_agents(inputs)
    served = encoder.attend_agents(agents["agent_vectors"], agents["agent_mask"], agents["agent_weights"],
                                   inputs[base.CANDIDATE_EMBEDDING], inputs[base.CANDIDATE_ITEM_ID],
                                   recent_embeddings=inputs[base.HISTORY_EMBEDDINGS][:, -3:],
                                   recent_mask=inputs[base.HISTORY_MASK][:, -3:])
    np.testing.assert_allclose(served.numpy(), in_graph, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="latest 3 events: pass recent_embeddings"):
        encoder.attend_agents(agents["agent_vectors"], agents["agent_mask"], agents["agent_weights"],
                              inputs[base.CANDIDATE_EMBEDDING], inputs[base.CANDIDATE_ITEM_ID])
    with pytest.raises(ValueError, match="recent_embeddings hold 2 events; WithShortTermBase was trained on the latest 3"):
        encoder.attend_agents(agents["agent_vectors"], agents["agent_mask"], agents["agent_weights"],
                              inputs[base.CANDIDATE_EMBEDDING], inputs[base.CANDIDATE_ITEM_ID],
                              recent_embeddings=inputs[base.HISTORY_EMBEDDINGS][:, -2:],
                              recent_mask=inputs[base.HISTORY_MASK][:, -2:])
    plain = layers.WithShortTermBase(layers.MeanPoolingEncoder(), last_n=3)
    assert not plain.computes_agents and not hasattr(plain, "num_agents")
    with pytest.raises(ValueError, match="MeanPoolingEncoder has no agents to precompute"):
        plain.compute_agents(inputs)
