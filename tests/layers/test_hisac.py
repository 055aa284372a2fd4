"""HiSAC layers: voting finds planted interests, padding never votes, soft routing beats hard,
precomputed agents score like the in-graph path, tables and codebook versions are guarded."""
import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tfrs_seqcompress import features as F
from tfrs_seqcompress import registry
from tfrs_seqcompress.data import history, synthetic
from tfrs_seqcompress.hisac.codebook import CodebookError, fit_residual_kmeans
from tfrs_seqcompress.layers import base, hisac
from tfrs_seqcompress.layers.attention import masked_softmax


@pytest.fixture(scope="module")
def planted():
    """A world with clear planted interests, its (category, sub-category) codebook, users' last histories."""
    world = synthetic.generate(synthetic.SyntheticConfig(num_users=40, random_share=0.1, rare_share=0.03,
                                                         mean_history=400, history_length=400, seed=3))
    vectors = world.dataset.items["content_embedding"]
    codebook = fit_residual_kmeans(vectors[1:], (8, 48), seed=0, keys=np.arange(1, len(vectors)))
    examples = history.build_history_examples(world.dataset.log, world.dataset.schema)
    last_rows = np.array(sorted({user: row for row, user in enumerate(examples[F.USER_ID])}.values()))
    semantic_ids = hisac.SemanticIds.from_codebook(codebook, vectors)
    return world, codebook, semantic_ids, {name: values[last_rows] for name, values in examples.items()}


def _subcategory_of_paths(world, codebook, paths, agent_mask):
    """The planted sub-category each live agent path stands for (majority of its items)."""
    item_codes = codebook.assign(world.dataset.items["content_embedding"][1:])
    subcategory = world.dataset.items["subcategory"][1:]
    chosen = set()
    for path, live in zip(paths, agent_mask):
        members = np.all(item_codes == path, axis=1)
        if live and members.any():
            chosen.add(int(np.bincount(subcategory[members]).argmax()))
    return chosen


def _share_found(world, codebook, examples, paths, agent_mask, interests):
    found = [np.mean([interest in _subcategory_of_paths(world, codebook, paths[row], agent_mask[row])
                      for interest in interests[user]]) for row, user in enumerate(examples[F.USER_ID])]
    return float(np.mean(found))


def test_voting_selects_planted_majors_and_keeps_rare_interests_when_fanout_allows(planted):
    world, codebook, semantic_ids, examples = planted
    codes, _, known = semantic_ids(tf.constant(examples["hist_item_id"]))
    mask = tf.constant(examples[F.HISTORY_MASK] > 0) & known
    wide = hisac.HierarchicalVoting(codebook.level_sizes, fanouts=(8, 3))(codes, mask)
    narrow = hisac.HierarchicalVoting(codebook.level_sizes, fanouts=(3, 1))(codes, mask)
    share = lambda voted, interests: _share_found(world, codebook, examples, voted[0].numpy(),  # noqa: E731
                                                  voted[2].numpy(), interests)
    assert share(wide, world.major_interests) == 1.0
    assert share(wide, world.rare_interests) >= 0.95          # 3% of events each, kept with fan-out 3
    assert share(narrow, world.rare_interests) < 0.3          # 3 agents: the rare ones are voted out
    assert share(narrow, world.major_interests) > 0.8


def test_padded_and_unknown_events_never_vote():
    voting = hisac.HierarchicalVoting((4, 3), fanouts=(2, 1))
    codes = tf.constant([[[1, 0], [1, 0], [2, 2], [3, 1], [3, 1], [3, 1]]])
    mask = tf.constant([[True, True, True, False, False, False]])  # code 3 is in padding only
    paths, votes, agent_mask = voting(codes, mask)
    np.testing.assert_array_equal(paths.numpy()[0], [[1, 0], [2, 2]])
    np.testing.assert_array_equal(votes.numpy()[0], [2.0, 1.0])
    assert agent_mask.numpy().all()


def test_more_agents_than_distinct_codes_are_masked_and_weights_sum_to_one():
    voting = hisac.HierarchicalVoting((4, 3), fanouts=(4, 3))
    paths, votes, agent_mask = voting(tf.constant([[[1, 0], [1, 0], [2, 2]]]), tf.constant([[True, True, True]]))
    assert voting.num_agents == 12 and int(tf.reduce_sum(tf.cast(agent_mask, tf.int32))) == 2
    weights = hisac.agent_weights(votes, agent_mask).numpy()[0]
    assert weights.sum() == pytest.approx(1.0) and sorted(weights[weights > 0]) == pytest.approx([1 / 3, 2 / 3])


def test_fanouts_are_checked_against_the_codebook():
    with pytest.raises(ValueError, match="level\\(s\\) \\[2\\] keep more children than the level has codes"):
        hisac.HierarchicalVoting((4, 3), fanouts=(2, 5))
    with pytest.raises(ValueError, match="one fan-out per codebook level"):
        hisac.HierarchicalVoting((4, 3), fanouts=(2,))


def _reconstruction_error(routing, semantic, mask, prototypes, agent_mask):
    weights = routing.routing_weights(semantic, mask, prototypes, agent_mask)
    agents = routing(semantic, semantic, mask, prototypes, agent_mask)
    error = tf.reduce_sum(tf.square(semantic - tf.einsum("blk,bkd->bld", weights, agents)), axis=-1)
    real = tf.cast(mask, tf.float32)
    return float(tf.reduce_sum(error * real) / tf.reduce_sum(real))


def test_soft_routing_reconstructs_the_history_better_than_hard_assignment(planted):
    world, codebook, semantic_ids, examples = planted
    codes, semantic, known = semantic_ids(tf.constant(examples["hist_item_id"]))
    mask = tf.constant(examples[F.HISTORY_MASK] > 0) & known
    paths, _, agent_mask = hisac.HierarchicalVoting(codebook.level_sizes, fanouts=(3, 1))(codes, mask)
    prototypes = semantic_ids.prototypes(paths)
    soft = hisac.SoftRoutingAttention(temperature=codebook.statistics["quantisation_error"][0])
    hard = hisac.SoftRoutingAttention(temperature=1e-4)
    assert (_reconstruction_error(soft, semantic, mask, prototypes, agent_mask)
            < 0.97 * _reconstruction_error(hard, semantic, mask, prototypes, agent_mask))


def _routing_inputs(batch=3, length=13, agents=5, semantic_dim=4, dim=6, seed=0):
    """Random routing inputs; the last row has no live agent (and so routes nothing)."""
    rng = np.random.default_rng(seed)
    agent_mask = rng.random((batch, agents)) > 0.4
    agent_mask[-1] = False
    return (tf.constant(rng.normal(size=(batch, length, semantic_dim)), tf.float32),
            tf.Variable(rng.normal(size=(batch, length, dim)).astype(np.float32)),
            tf.constant(rng.random((batch, length)) > 0.3),
            tf.constant(rng.normal(size=(batch, agents, semantic_dim)), tf.float32), tf.constant(agent_mask))


def _routed_by_the_definition(semantic, values, mask, prototypes, agent_mask, temperature):
    """The paper's soft routing written out whole: a softmax over live agents of -||s - p||^2 / T."""
    live = agent_mask[:, None, :] & mask[:, :, None]
    weights = masked_softmax(-hisac.squared_distances(semantic, prototypes) / temperature, live)
    totals = tf.reduce_sum(weights, axis=1)
    return tf.math.divide_no_nan(tf.einsum("blk,bld->bkd", weights, values), totals[..., None]), totals


@pytest.mark.parametrize("chunk_size", [1, 4, 13, 512])
@pytest.mark.parametrize("temperature", [1e-4, 1.0])
@pytest.mark.parametrize("compiled", [True, False], ids=["tf.function", "eager"])
def test_chunked_routing_and_its_gradient_are_the_routing_of_the_whole_history(chunk_size, temperature, compiled):
    semantic, values, mask, prototypes, agent_mask = _routing_inputs()
    routing = hisac.SoftRoutingAttention(temperature, chunk_size=chunk_size)

    def routed_and_gradient(route):
        with tf.GradientTape() as tape:
            vectors, totals = route(semantic, values, mask, prototypes, agent_mask)
            loss = tf.reduce_sum(tf.sin(3.0 * vectors)) + tf.reduce_sum(totals)
        return vectors, totals, tape.gradient(loss, values)

    if compiled:
        routed_and_gradient = tf.function(routed_and_gradient)
    expected = routed_and_gradient(lambda *inputs: _routed_by_the_definition(*inputs, temperature))
    for got, want in zip(routed_and_gradient(routing.route), expected):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=2e-5)
    assert not np.any(expected[0].numpy()[-1]), "a row without live agents routes nothing"


@pytest.mark.parametrize("chunk_size", [4, 512], ids=["chunked", "one piece"])
def test_routing_gives_no_gradient_to_the_frozen_semantic_space(chunk_size):
    semantic, values, mask, prototypes, agent_mask = _routing_inputs()
    semantic, prototypes = tf.Variable(semantic), tf.Variable(prototypes)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(hisac.SoftRoutingAttention(0.5, chunk_size=chunk_size)(semantic, values, mask,
                                                                                    prototypes, agent_mask))
    assert tape.gradient(loss, [semantic, prototypes]) == [None, None]


@pytest.mark.parametrize("length_known", [True, False], ids=["one piece", "chunked (unknown length)"])
def test_routing_an_empty_history_gives_zero_agents_and_an_empty_gradient(length_known):
    semantic, values, mask, prototypes, agent_mask = _routing_inputs(length=0)
    routing = hisac.SoftRoutingAttention(0.5, chunk_size=4)

    def routed_and_gradient(semantic, values, mask):
        with tf.GradientTape() as tape:
            tape.watch(values)
            vectors = routing(semantic, values, mask, prototypes, agent_mask)
            loss = tf.reduce_sum(vectors)
        return vectors, tape.gradient(loss, values)

    if not length_known:
        routed_and_gradient = tf.function(routed_and_gradient, input_signature=[
            tf.TensorSpec([3, None, 4]), tf.TensorSpec([3, None, 6]), tf.TensorSpec([3, None], tf.bool)])
    vectors, gradient = routed_and_gradient(semantic, tf.convert_to_tensor(values), mask)
    assert vectors.shape == (3, 5, 6) and not np.any(vectors.numpy()) and gradient.shape == (3, 0, 6)


@pytest.mark.parametrize("length, loops", [(4, False), (5, True), (None, True)])
def test_routing_loops_over_chunks_only_when_the_history_may_not_fit_in_one(length, loops):
    routing = hisac.SoftRoutingAttention(0.5, chunk_size=4)
    routed = tf.function(routing.call).get_concrete_function(
        tf.TensorSpec([2, length, 3]), tf.TensorSpec([2, length, 6]), tf.TensorSpec([2, length], tf.bool),
        tf.TensorSpec([2, 5, 3]), tf.TensorSpec([2, 5], tf.bool))
    op_types = {op.type for op in routed.graph.get_operations()}
    assert ("While" in op_types or "StatelessWhile" in op_types) == loops


def test_routing_chunk_size_is_checked_and_kept_in_the_config():
    with pytest.raises(ValueError, match="chunk_size must be a whole number of events >= 1, got 0"):
        hisac.SoftRoutingAttention(chunk_size=0)
    config = hisac.SoftRoutingAttention(0.5, chunk_size=64).get_config()
    assert hisac.SoftRoutingAttention.from_config(config).chunk_size == 64


def _encoder_inputs(semantic_ids, item_ids, mask, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    batch, length = item_ids.shape
    return {base.HISTORY_EMBEDDINGS: tf.constant(rng.normal(size=(batch, length, dim)), tf.float32),
            base.HISTORY_MASK: tf.constant(mask), base.HISTORY_ITEM_ID: tf.constant(item_ids, tf.int64),
            base.CANDIDATE_EMBEDDING: tf.constant(rng.normal(size=(batch, dim)), tf.float32),
            base.CANDIDATE_ITEM_ID: tf.constant(rng.integers(1, 31, size=batch), tf.int64),
            base.HISTORY_TIME_GAP: tf.constant(rng.integers(0, 10**6, size=(batch, length)), tf.int64)}


@pytest.fixture(scope="module")
def small_tables():
    rng = np.random.default_rng(1)
    vectors = np.concatenate([np.zeros((1, 4)), rng.normal(size=(30, 4)) + np.repeat(np.eye(4) * 4, 8, 0)[:30]])
    codebook = fit_residual_kmeans(vectors[1:], (4, 3), seed=0)
    return codebook, vectors.astype(np.float32)


@pytest.mark.parametrize("candidate_routing, agent_dim", [(True, 6 + 4), (False, 6)])
def test_precomputed_agents_give_the_in_graph_interest(small_tables, candidate_routing, agent_dim):
    codebook, vectors = small_tables
    encoder = hisac.HiSACEncoder(hisac.SemanticIds.from_codebook(codebook, vectors), fanouts=(2, 2),
                                 candidate_routing=candidate_routing)
    item_ids = np.random.default_rng(2).integers(0, 31, size=(5, 12))
    inputs = _encoder_inputs(encoder.semantic_ids, item_ids, item_ids > 0)
    in_graph = encoder(inputs)
    agents = encoder.compute_agents(inputs)
    assert agents["agent_vectors"].shape == (5, 4, agent_dim) and encoder.agent_dim(6) == agent_dim
    served = encoder.attend_agents(agents["agent_vectors"], agents["agent_mask"], agents["agent_weights"],
                                   inputs[base.CANDIDATE_EMBEDDING], inputs[base.CANDIDATE_ITEM_ID])
    np.testing.assert_allclose(served.numpy(), in_graph.numpy(), rtol=1e-6, atol=1e-6)


def test_before_the_scorer_has_learnt_the_interest_is_the_vote_weighted_mean_of_agents(small_tables):
    """The votes are the candidate attention's prior: with a constant scorer a one-event agent
    does not weigh as much as the main interest (a uniform mix stalled training for some seeds)."""
    codebook, vectors = small_tables
    encoder = hisac.HiSACEncoder(hisac.SemanticIds.from_codebook(codebook, vectors), fanouts=(2, 2),
                                 candidate_routing=False)
    item_ids = np.array([[1, 1, 1, 2, 2, 2, 3, 9, 9, 17, 25, 26]])
    inputs = _encoder_inputs(encoder.semantic_ids, item_ids, item_ids > 0)
    encoder(inputs)
    last = encoder.agent_scorer.attention._scorer.layers[-1]
    last.set_weights([np.zeros_like(weight) for weight in last.get_weights()])  # every agent scores the same
    agents = encoder.compute_agents(inputs)
    weights = agents["agent_weights"].numpy()
    assert len(set(np.round(weights[0][weights[0] > 0], 4))) > 1  # the agents really got unequal votes
    expected = np.einsum("bk,bkd->bd", weights, agents["agent_vectors"].numpy())
    np.testing.assert_allclose(encoder(inputs).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_a_routed_candidate_starts_from_its_own_semantic_agent(small_tables):
    """Candidate routing: with a constant scorer the candidate's attention over the agents is its
    soft-routing distribution (softmax of -distance / temperature to the agents' prototypes), so a
    candidate of a one-event interest reads that interest's agent, not the history's majority;
    each agent's value carries the embedding of the candidate's distance bucket."""
    codebook, vectors = small_tables
    semantic_ids = hisac.SemanticIds.from_codebook(codebook, vectors)
    encoder = hisac.HiSACEncoder(semantic_ids, fanouts=(2, 2), temperature=2.0)
    item_ids = np.array([[1, 1, 1, 2, 2, 2, 3, 4, 5, 6, 7, 25]])  # one event of the fourth group (items 25-30)
    inputs = _encoder_inputs(semantic_ids, item_ids, item_ids > 0)
    inputs[base.CANDIDATE_ITEM_ID] = tf.constant([26], tf.int64)
    encoder(inputs)
    last = encoder.agent_scorer.attention._scorer.layers[-1]
    last.set_weights([np.zeros_like(weight) for weight in last.get_weights()])
    agents = encoder.compute_agents(inputs)
    live = agents["agent_mask"].numpy()[0]
    ranking, prototypes = agents["agent_vectors"].numpy()[0, :, :6], agents["agent_vectors"].numpy()[0, :, 6:]
    distances = ((prototypes - vectors[26]) ** 2).sum(-1) / 2.0
    routing = np.where(live, np.exp(-(distances - distances[live].min())), 0.0)
    routing /= routing.sum()
    buckets = np.minimum(np.floor(2 * np.log2(1 + distances)), hisac.STATISTIC_BUCKETS - 1).astype(int)
    values = ranking + encoder.agent_scorer.match_embedding.embeddings.numpy()[buckets]
    np.testing.assert_allclose(encoder(inputs).numpy()[0], routing @ values, rtol=1e-4, atol=1e-5)
    own = int(np.argmax(routing))
    assert routing[own] > 0.9 and agents["agent_weights"].numpy()[0, own] < 0.15  # a minor agent, read first


@pytest.mark.parametrize("name", ["hisac", "global_clusters"])
def test_empty_or_unknown_history_gives_a_zero_interest(small_tables, name):
    codebook, vectors = small_tables
    semantic_ids = hisac.SemanticIds.from_codebook(codebook, vectors)
    encoder = (hisac.HiSACEncoder(semantic_ids, fanouts=(2, 2)) if name == "hisac"
               else hisac.GlobalClusterEncoder(semantic_ids))
    item_ids = np.array([[0, 0, 0, 0], [0, 0, 31, 500]])  # padding; items newer than the table
    out = encoder(_encoder_inputs(semantic_ids, item_ids, np.array([[False] * 4, [False, False, True, True]])))
    np.testing.assert_array_equal(out.numpy(), np.zeros((2, 6)))


def test_unknown_item_rows_are_marked_and_excluded(small_tables):
    codebook, vectors = small_tables
    vectors = vectors.copy()
    vectors[5] = 0.0  # an item without a semantic vector
    codes, _, known = hisac.SemanticIds.from_codebook(codebook, vectors)(tf.constant([[1, 5, 0, 31, -3]]))
    np.testing.assert_array_equal(known.numpy(), [[True, False, False, False, False]])
    assert codes.shape == (1, 5, 2)


def test_codebook_of_another_version_or_shape_is_refused(small_tables):
    codebook, vectors = small_tables
    encoder = hisac.HiSACEncoder(hisac.SemanticIds.from_codebook(codebook, vectors), fanouts=(2, 2))
    encoder.check_codebook(codebook)
    refit = fit_residual_kmeans(vectors[1:], (4, 3), seed=5)
    with pytest.raises(CodebookError, match="differs from the expected"):
        encoder.check_codebook(refit)
    with pytest.raises(CodebookError, match="level sizes \\(4, 2\\); expected \\(4, 3\\)"):
        encoder.check_codebook(fit_residual_kmeans(vectors[1:], (4, 2), seed=0))
    with pytest.raises(CodebookError, match="expects \\[num_items, 4\\]"):
        hisac.SemanticIds.from_codebook(codebook, vectors[:, :3])


@pytest.mark.parametrize("name", ["hisac", "global_clusters"])
def test_semantic_encoders_round_trip_with_their_tables(small_tables, name, tmp_path):
    codebook, vectors = small_tables
    semantic_ids = hisac.SemanticIds.from_codebook(codebook, vectors)
    encoder = (hisac.HiSACEncoder(semantic_ids, fanouts=(2, 2), temperature=3.0) if name == "hisac"
               else hisac.GlobalClusterEncoder(semantic_ids))
    item_ids = np.random.default_rng(4).integers(0, 31, size=(3, 7))
    helpers.assert_layer_roundtrip(encoder, _encoder_inputs(semantic_ids, item_ids, item_ids > 0), tmp_path)


def test_agents_can_be_computed_before_the_encoder_was_ever_called(small_tables):
    codebook, vectors = small_tables
    encoder = hisac.HiSACEncoder(hisac.SemanticIds.from_codebook(codebook, vectors), fanouts=(2, 2))
    item_ids = np.random.default_rng(5).integers(0, 31, size=(2, 6))
    inputs = _encoder_inputs(encoder.semantic_ids, item_ids, item_ids > 0)
    agents = encoder.compute_agents(inputs)  # e.g. an offline job on a freshly restored model
    served = encoder.attend_agents(agents["agent_vectors"], agents["agent_mask"], agents["agent_weights"],
                                   inputs[base.CANDIDATE_EMBEDDING], inputs[base.CANDIDATE_ITEM_ID])
    np.testing.assert_allclose(served.numpy(), encoder(inputs).numpy(), rtol=1e-6, atol=1e-6)


def test_squared_distances_equal_the_differences_they_replace():
    rng = np.random.default_rng(7)
    points, prototypes = rng.normal(size=(3, 50, 5)) * 4, rng.normal(size=(3, 6, 5)) * 4
    prototypes[0, 0] = points[0, 0]  # a point on its prototype: distance 0, not a negative rounding error
    expected = ((points[:, :, None, :] - prototypes[:, None, :, :]) ** 2).sum(-1)
    distances = hisac.squared_distances(tf.constant(points, tf.float32), tf.constant(prototypes, tf.float32)).numpy()
    np.testing.assert_allclose(distances, expected, rtol=1e-5, atol=1e-4)
    assert distances.min() >= 0.0


def test_semantic_tables_refuse_a_table_without_its_padding_row(small_tables):
    codebook, vectors = small_tables
    known = np.flatnonzero(np.any(vectors != 0, axis=1))
    with pytest.raises(CodebookError, match="row 0 \\(the padding item\\) must be all zeros"):
        hisac.SemanticIds.from_codebook(codebook, vectors[known])  # the usual mistake: every ID shifted by one
    with pytest.raises(CodebookError, match="expected num_items = 40"):
        hisac.SemanticIds.from_codebook(codebook, vectors, num_items=40)
    with pytest.raises(CodebookError, match="NaN or infinity"):
        hisac.SemanticIds.from_codebook(codebook, np.where(vectors > 3, np.nan, vectors))


def test_from_codebook_uses_the_default_temperature(small_tables):
    codebook, vectors = small_tables
    encoder = hisac.HiSACEncoder.from_codebook(codebook, vectors, fanouts=(2, 2))
    level_1 = codebook.statistics["quantisation_error"][0]
    assert encoder.temperature == pytest.approx(registry.HISAC_TEMPERATURE_SCALE * level_1)
    assert hisac.HiSACEncoder.from_codebook(codebook, vectors, temperature=3.0, fanouts=(2, 2)).temperature == 3.0


def test_by_default_every_leaf_of_the_codebook_is_a_candidate_agent(small_tables):
    codebook, vectors = small_tables
    encoder = hisac.HiSACEncoder.from_codebook(codebook, vectors)
    assert encoder.fanouts == (4, 3) and encoder.num_agents == 12
    item_ids = np.array([[0, 1, 2, 9, 17, 25]])   # padding, then items of several leaves
    agents = encoder.compute_agents({"history_item_id": tf.constant(item_ids), "history_mask": tf.constant(item_ids > 0),
                                     "history_embeddings": tf.ones((1, 6, 6)), "candidate_embedding": tf.ones((1, 6))})
    occupied = len({tuple(path) for path in codebook.assign(vectors[item_ids[0, 1:]]).tolist()})
    assert int(agents["agent_mask"].numpy().sum()) == occupied   # the leaves the history occupies, no more
    assert hisac.HiSACEncoder.from_config(encoder.get_config()).fanouts == (4, 3)


def test_the_encoder_routes_in_chunks_of_the_size_it_is_given_with_the_same_interest(small_tables):
    codebook, vectors = small_tables
    item_ids = np.random.default_rng(3).integers(0, 31, size=(3, 40))
    encoders = [hisac.HiSACEncoder.from_codebook(codebook, vectors, fanouts=(2, 2), routing_chunk_size=size)
                for size in (512, 7)]
    inputs = _encoder_inputs(encoders[0].semantic_ids, item_ids, item_ids > 0)
    whole = encoders[0](inputs)
    encoders[1](inputs)
    encoders[1].set_weights(encoders[0].get_weights())
    np.testing.assert_allclose(encoders[1](inputs).numpy(), whole.numpy(), rtol=1e-5, atol=1e-6)
    restored = hisac.HiSACEncoder.from_config(encoders[1].get_config())
    assert encoders[1].interest_agents.routing.chunk_size == 7 and restored.interest_agents.routing.chunk_size == 7
    with pytest.raises(ValueError, match="chunk_size must be a whole number of events >= 1, got 0"):
        hisac.HiSACEncoder.from_codebook(codebook, vectors, routing_chunk_size=0)


def test_a_config_saved_before_candidate_routing_builds_an_encoder_without_it(small_tables):
    codebook, vectors = small_tables
    config = hisac.HiSACEncoder.from_codebook(codebook, vectors, fanouts=(2, 2)).get_config()
    del config["candidate_routing"]
    assert hisac.HiSACEncoder.from_config(config).candidate_routing is False


def test_the_own_leaf_share_rises_to_hard_assignment_as_the_temperature_falls(small_tables):
    codebook, vectors = small_tables
    shares = [hisac.own_leaf_share(codebook, vectors, temperature) for temperature in (1e4, 1.0, 0.01, 1e-4)]
    leaves = len(np.unique(codebook.assign(vectors[1:]), axis=0))
    assert shares[0] == pytest.approx(1 / leaves, rel=0.2)  # very soft: about uniform over the leaves
    assert shares == sorted(shares) and shares[-1] == pytest.approx(1.0, abs=1e-3)
    # The padding row is left out and chunking changes nothing.
    assert hisac.own_leaf_share(codebook, vectors, 1.0, chunk=7) == pytest.approx(shares[1])


def test_the_temperature_for_a_share_routes_that_share_to_the_own_leaf(small_tables):
    codebook, vectors = small_tables
    for share in (0.5, 0.9):
        temperature = hisac.temperature_for_share(codebook, vectors, share)
        assert hisac.own_leaf_share(codebook, vectors, temperature) == pytest.approx(share, abs=1e-3)
    with pytest.raises(ValueError, match="share must be strictly between 0 and 1"):
        hisac.temperature_for_share(codebook, vectors, 1.0)


@pytest.mark.parametrize("candidate_routing", [True, False])
def test_the_two_layers_composed_by_hand_are_hisac(small_tables, candidate_routing):
    """A user's own model can use HiSAC's halves directly: ``InterestAgents`` over the history,
    ``AgentAttention`` for the candidate; with the encoder's own layers that is the encoder."""
    codebook, vectors = small_tables
    semantic_ids = hisac.SemanticIds.from_codebook(codebook, vectors)
    encoder = hisac.HiSACEncoder(semantic_ids, fanouts=(2, 2), candidate_routing=candidate_routing)
    item_ids = np.random.default_rng(4).integers(0, 31, size=(3, 10))
    inputs = _encoder_inputs(semantic_ids, item_ids, item_ids > 0)
    in_graph = encoder(inputs).numpy()
    codes, semantic, known = semantic_ids(inputs[base.HISTORY_ITEM_ID])
    mask = inputs[base.HISTORY_MASK] & known
    agents = encoder.interest_agents({"codes": codes, "semantic": semantic, "mask": mask,
                                      "values": encoder.ranking_values(inputs, codes, mask)})
    candidate_codes, candidate_semantic, candidate_known = semantic_ids(inputs[base.CANDIDATE_ITEM_ID])
    query = inputs[base.CANDIDATE_EMBEDDING] + encoder.code_embedding(candidate_codes, candidate_known)
    by_hand = encoder.agent_scorer({**agents, "query": query, "candidate_semantic": candidate_semantic,
                                    "candidate_known": candidate_known})
    np.testing.assert_allclose(by_hand.numpy(), in_graph, rtol=1e-6, atol=1e-6)
    assert isinstance(encoder.interest_agents, hisac.InterestAgents)
    assert isinstance(encoder.agent_scorer, hisac.AgentAttention)


def test_the_two_layers_round_trip_through_their_configs(small_tables):
    codebook, vectors = small_tables
    agents = hisac.InterestAgents(hisac.SemanticIds.from_codebook(codebook, vectors), fanouts=(2, 3),
                                  temperature=0.5, statistics=False)
    copy = hisac.InterestAgents.from_config(agents.get_config())
    assert (copy.fanouts, copy.temperature, copy.statistics, copy.num_agents) == ((2, 3), 0.5, False, 6)
    scorer = hisac.AgentAttention(temperature=2.0, hidden_units=(8,), candidate_routing=False)
    copy = hisac.AgentAttention.from_config(scorer.get_config())
    assert (copy.temperature, copy.hidden_units, copy.candidate_routing) == (2.0, (8,), False)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        hisac.AgentAttention(temperature=0.0)


def test_fresh_layers_compose_in_a_users_model_as_the_docs_show(small_tables):
    codebook, vectors = small_tables
    semantic_ids = hisac.SemanticIds.from_codebook(codebook, vectors)
    item_ids = np.array([[1, 2, 2, 9, 17, 0], [25, 26, 3, 0, 0, 0]])
    codes, semantic, known = semantic_ids(tf.constant(item_ids, tf.int64))
    mask = tf.constant(item_ids > 0) & known
    values = tf.random.stateless_normal((2, 6, 5), seed=(1, 2))
    agents = hisac.InterestAgents(semantic_ids, fanouts=(2, 2), temperature=0.5)(
        {"codes": codes, "semantic": semantic, "values": values, "mask": mask})
    assert agents["agent_vectors"].shape == (2, 4, 5 + 4)   # [ranking values (D) | prototype (ds)]
    # The leaves with votes under the two most-voted level-1 codes: user 1's events sit in the
    # leaves (0, 0), (0, 2), (1, 2), (2, 0), so level 1 keeps codes 0 and 1 and three leaves vote;
    # user 2's in (1, 1) and (0, 0): two. A path without votes is masked.
    codes_of = codebook.assign(vectors[[1, 2, 9, 17, 25, 26, 3]])
    assert [tuple(code) for code in codes_of] == [(0, 2), (0, 0), (1, 2), (2, 0), (1, 1), (1, 1), (0, 0)]
    np.testing.assert_array_equal(agents["agent_mask"].numpy().sum(axis=1), [3, 2])
    np.testing.assert_allclose(agents["agent_weights"].numpy().sum(axis=1), 1.0, rtol=1e-6)
    _, candidate_semantic, candidate_known = semantic_ids(tf.constant([26, 0], tf.int64))
    interest = hisac.AgentAttention(temperature=0.5)({**agents, "query": tf.ones((2, 5)),
                                                      "candidate_semantic": candidate_semantic,
                                                      "candidate_known": candidate_known})
    assert interest.shape == (2, 5) and np.isfinite(interest.numpy()).all()
