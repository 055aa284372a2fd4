"""The synthetic generator: deterministic, long multi-interest histories, planted ground truth."""
import numpy as np
import pytest

from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import synthetic

SMALL = synthetic.SyntheticConfig(num_users=40, mean_history=150, history_length=50, seed=3)


def test_same_seed_same_world_other_seed_other_world():
    first, again = synthetic.generate(SMALL), synthetic.generate(SMALL)
    for name in first.dataset.log:
        np.testing.assert_array_equal(first.dataset.log[name], again.dataset.log[name])
    other = synthetic.generate(synthetic.SyntheticConfig(num_users=40, mean_history=150, seed=4))
    assert not np.array_equal(first.dataset.log[F.ITEM_ID][:100], other.dataset.log[F.ITEM_ID][:100])


def test_follows_the_contract_with_rich_event_features():
    world = synthetic.generate(SMALL)
    F.validate_log(world.dataset.log, world.dataset.schema)
    assert set(synthetic.EVENT_FEATURES) <= set(world.dataset.log)
    assert world.dataset.items["content_embedding"].shape == (SMALL.num_items + 1, SMALL.content_dim)


def test_rare_interests_are_rare_but_liked_and_majors_dominate():
    world = synthetic.generate(SMALL)
    log, items = world.dataset.log, world.dataset.items
    subcategory = items["subcategory"][log[F.ITEM_ID]]
    users = log[F.USER_ID]
    is_rare = (subcategory[:, None] == world.rare_interests[users]).any(axis=1)
    is_major = (subcategory[:, None] == world.major_interests[users]).any(axis=1)
    assert is_rare.mean() < 0.06 < 0.5 < is_major.mean()
    # Rare interests are liked as much as majors; everything else is mostly disliked.
    other = ~(is_rare | is_major)
    assert log[F.LABEL][is_rare].mean() > 0.7 and log[F.LABEL][is_major].mean() > 0.7
    assert log[F.LABEL][other].mean() < 0.3


def test_instance_features_carry_how_much_the_user_liked_the_item():
    log = synthetic.generate(SMALL).dataset.log
    clicked = log[F.LABEL] == 1
    assert (log["action_type"][~clicked] == 0).all() and (log["action_type"][clicked] >= 1).all()
    assert log["dwell"][clicked].mean() > log["dwell"][~clicked].mean() + 2


def test_histories_can_reach_ten_thousand_events():
    config = synthetic.SyntheticConfig(num_users=3, mean_history=10_000, min_history=10_000, max_history=10_000)
    log = synthetic.generate(config).dataset.log
    assert np.bincount(log[F.USER_ID]).max() == 10_000


def test_impossible_config_is_rejected():
    with pytest.raises(ValueError, match="min_history \\(50\\) exceeds max_history \\(10\\)"):
        synthetic.SyntheticConfig(min_history=50, max_history=10)


def test_distant_variant_keeps_rare_interest_evidence_in_the_distant_past():
    """``rare_until``: rare interests fill the early timeline; afterwards they only come back at
    ``rare_return_share`` and random impressions avoid them."""
    config = synthetic.SyntheticConfig(num_users=40, mean_history=600, min_history=300, seed=3, rare_share=0.02,
                                       rare_until=0.6, rare_return_share=0.001)
    world = synthetic.generate(config)
    log = world.dataset.log
    users = log[F.USER_ID]
    order = np.lexsort((log[F.TIMESTAMP], users))
    rank = np.arange(len(order)) - np.searchsorted(users[order], users[order])
    progress = np.empty(len(order))
    progress[order] = rank / (np.bincount(users)[users[order]] - 1)
    subcategory = world.dataset.items["subcategory"][log[F.ITEM_ID]]
    is_rare = (subcategory[:, None] == world.rare_interests[users]).any(axis=1)
    early, late = progress < 0.6, progress > 0.6
    assert is_rare[early].mean() > 0.05 and is_rare[late].mean() < 0.006  # 3 x 2% early; 3 x 0.1% late
    assert 0 < is_rare[late].sum()  # but they do come back: the targets that test long memory
    with pytest.raises(ValueError, match="rare_until must lie in"):
        synthetic.SyntheticConfig(rare_until=0.0)
