"""A seeded generator of long, multi-interest interaction logs with planted ground truth (docs/data.md).

The world:

* items in a hierarchy category -> sub-category -> item; each item has a *content embedding*
  (category centre + sub-category offset + item noise), a quality and a price bucket;
* every user has a few **major** interests (sub-categories shown often, drifting from the first
  majors to a later one over time) and several **rare** (long-tail) interests, shown only a few
  times in a whole history but liked as much as the majors; everything else is disliked;
* each event is an impression of an item — from the user's interests or random — with a click
  label ``P(click) = sigmoid(preference[user, sub-category] + quality[item] - bias)``, and rich
  instance features: ``action_type`` (0 none, 1 click, 2 cart, 3 buy) and ``dwell`` that grow with
  how much the user likes the item, the ``hour`` around the user's habit, the user's usual
  ``device``, and the item's ``price`` bucket.

The label of a target therefore depends on the user's preference for its sub-category, which only
the history reveals — for a rare interest, only events seen long ago. Truncating to the last N
events loses that signal; compressing all features of an instance (IAT) carries more than the
item ID (``action_type`` and ``dwell`` say how much the user liked it).

Example::

    world = generate(SyntheticConfig(num_users=200, mean_history=300, seed=7))
    world.dataset.log, world.dataset.schema                # the contract's columns
    world.rare_interests[user_id]                          # planted long-tail sub-categories
"""
from __future__ import annotations

import dataclasses

import numpy as np

from tfrs_seqcompress import features as F
from tfrs_seqcompress.data.interaction_log import InteractionDataset

EVENT_FEATURES = {"action_type": 4, "dwell": 8, "hour": 24, "device": 4, "price": 10}
CONTEXT_FEATURES = ("hour", "device", "price")
_SECONDS_PER_DAY = 86_400
# The click model: preference ~ N(mean, std) for a user's interests and for everything else;
# P(click) = sigmoid(preference + quality - CLICK_BIAS).
INTEREST_PREFERENCE = (2.0, 0.4)
OTHER_PREFERENCE = (-2.0, 0.4)
CLICK_BIAS = 0.5
# A click goes deeper (cart or buy) with P = sigmoid(liking - DEEPER_BIAS); a click's dwell is
# round(DWELL_BASE + liking + N(0, DWELL_NOISE)) clipped to [0, MAX_DWELL] (an impression's: the noise alone).
DEEPER_BIAS, DWELL_BASE, DWELL_NOISE, MAX_DWELL = 1.5, 2.0, 0.7, 7


def _sigmoid(values):
    return 1.0 / (1.0 + np.exp(-values))


def click_probability(liking: np.ndarray) -> np.ndarray:
    """``P(click)`` of an impression whose ``preference + quality`` is ``liking``."""
    return _sigmoid(liking - CLICK_BIAS)


def log_likelihood(liking: np.ndarray, labels: np.ndarray, action_type: np.ndarray, dwell: np.ndarray) -> np.ndarray:
    """``log P(label, action_type, dwell | liking)`` of events under the world's model (broadcast over
    ``liking``; the ``hour``, ``device`` and ``price`` of an event do not depend on it)."""
    from scipy.special import ndtr  # a dependency of the TensorFlow stack; only this analysis needs it

    clicked = labels > 0
    deeper = _sigmoid(liking - DEEPER_BIAS)
    centre = np.where(clicked, DWELL_BASE + liking, 0.0)
    upper = np.where(dwell >= MAX_DWELL, 1.0, ndtr((dwell + 0.5 - centre) / DWELL_NOISE))
    lower = np.where(dwell <= 0, 0.0, ndtr((dwell - 0.5 - centre) / DWELL_NOISE))
    tiny = 1e-12
    return (np.where(clicked, np.log(click_probability(liking) + tiny), np.log1p(-click_probability(liking) + tiny))
            + np.where(clicked, np.log(np.where(action_type >= 2, deeper, 1.0 - deeper) + tiny), 0.0)
            + np.log(np.maximum(upper - lower, tiny)))


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Sizes and knobs of the synthetic world (defaults: a small world that builds in ~1 s).

    Attributes:
      num_users, num_categories, subcategories_per_category, items_per_subcategory: world size.
      content_dim: dimension of the item content embeddings.
      mean_history, max_history, min_history: events per user (log-normal, clipped).
      major_interests, rare_interests: planted interests per user.
      rare_share: expected share of a user's events from each rare interest.
      random_share: share of impressions drawn uniformly from all items.
      rare_until: the share of each user's timeline during which the rare interests are shown at
        ``rare_share`` (1.0: all of it). Afterwards a rare interest comes back only at
        ``rare_return_share`` (the targets that test long memory) and random impressions avoid it,
        so the evidence for it sits in the distant past of the history.
      rare_return_share: expected share of the events after ``rare_until`` from each rare interest.
      days: time span of the log.
      history_length: L of the returned schema.
      seed: makes everything deterministic.
    """

    num_users: int = 300
    num_categories: int = 8
    subcategories_per_category: int = 6
    items_per_subcategory: int = 40
    content_dim: int = 16
    mean_history: int = 300
    max_history: int = 10_000
    min_history: int = 20
    major_interests: int = 3
    rare_interests: int = 3
    rare_share: float = 0.01
    random_share: float = 0.3
    rare_until: float = 1.0
    rare_return_share: float = 0.0
    days: int = 365
    history_length: int = 200
    seed: int = 0

    def __post_init__(self):
        for name in ("num_users", "num_categories", "subcategories_per_category", "items_per_subcategory",
                     "content_dim", "mean_history", "max_history", "min_history", "history_length", "days"):
            if getattr(self, name) < 1:
                raise ValueError(f"SyntheticConfig.{name} must be >= 1, got {getattr(self, name)}.")
        if self.min_history > self.max_history:
            raise ValueError(f"min_history ({self.min_history}) exceeds max_history ({self.max_history}).")
        if self.major_interests + self.rare_interests > self.num_subcategories:
            raise ValueError(f"{self.major_interests} major + {self.rare_interests} rare interests need more than "
                             f"{self.num_subcategories} sub-categories.")
        if not 0 <= self.rare_share * self.rare_interests + self.random_share < 1:
            raise ValueError("rare_share * rare_interests + random_share must lie in [0, 1).")
        if not 0 < self.rare_until <= 1 or not 0 <= self.rare_return_share <= self.rare_share:
            raise ValueError(f"rare_until must lie in (0, 1] and rare_return_share in [0, rare_share]; got "
                             f"{self.rare_until} and {self.rare_return_share}.")

    @property
    def num_subcategories(self) -> int:
        return self.num_categories * self.subcategories_per_category

    @property
    def num_items(self) -> int:
        return self.num_subcategories * self.items_per_subcategory


@dataclasses.dataclass
class SyntheticWorld:
    """A generated dataset plus its planted ground truth (user and sub-category IDs start at 1).

    Attributes:
      dataset: the log, schema and item table (``items`` also holds ``subcategory``,
        ``content_embedding`` ``[num_items, content_dim]`` and ``quality``).
      major_interests: ``[num_users + 1, major_interests]`` sub-category IDs (row 0 unused).
      rare_interests: ``[num_users + 1, rare_interests]`` sub-category IDs.
      preference: ``[num_users + 1, num_subcategories + 1]`` the latent liking behind the labels.
    """

    dataset: InteractionDataset
    major_interests: np.ndarray
    rare_interests: np.ndarray
    preference: np.ndarray
    config: SyntheticConfig


def _items(config: SyntheticConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    subcategory = np.repeat(np.arange(1, config.num_subcategories + 1), config.items_per_subcategory)
    category = (subcategory - 1) // config.subcategories_per_category + 1
    category_centres = rng.normal(size=(config.num_categories + 1, config.content_dim)) * 2.0
    subcategory_offsets = rng.normal(size=(config.num_subcategories + 1, config.content_dim)) * 0.8
    content = (category_centres[category] + subcategory_offsets[subcategory]
               + rng.normal(size=(config.num_items, config.content_dim)) * 0.25)
    # Row 0 is the padding item.
    pad = lambda values: np.concatenate([np.zeros((1,) + values.shape[1:], values.dtype), values])  # noqa: E731
    return {
        F.CATEGORY: pad(category.astype(np.int64)),
        "subcategory": pad(subcategory.astype(np.int64)),
        "content_embedding": pad(content.astype(np.float32)),
        "quality": pad(rng.normal(scale=0.5, size=config.num_items)),
        "price": pad(rng.integers(0, EVENT_FEATURES["price"], size=config.num_items)),
    }


def _user_events(config, rng, items, majors, rares, preference_row, length):
    """One user's events (time ascending) as contract columns."""
    times = np.sort(rng.integers(0, config.days * _SECONDS_PER_DAY, size=length))
    progress = np.arange(length) / max(length - 1, 1)
    # Major weights drift: early majors fade, the last major rises over the user's lifetime.
    major_weights = np.ones((length, len(majors)))
    major_weights[:, -1] = 0.1 + 1.5 * progress
    major_weights[:, :-1] *= (1.2 - progress)[:, None]
    late = progress >= config.rare_until if config.rare_until < 1 else np.zeros(length, bool)
    rare_share = np.where(late, config.rare_return_share, config.rare_share)[:, None]
    major_share = 1.0 - config.random_share - rare_share * len(rares)
    weights = np.concatenate([major_weights / major_weights.sum(1, keepdims=True) * major_share,
                              np.repeat(rare_share, len(rares), axis=1),
                              np.full((length, 1), config.random_share)], axis=1)
    source = (rng.random(length)[:, None] > np.cumsum(weights, axis=1)).sum(axis=1)
    interests = np.concatenate([majors, rares])
    per_subcategory = config.items_per_subcategory
    chosen_subcategory = interests[np.minimum(source, len(interests) - 1)]
    interest_items = (chosen_subcategory - 1) * per_subcategory + 1 + rng.integers(0, per_subcategory, size=length)
    random_items = rng.integers(1, config.num_items + 1, size=length)
    for _ in range(4 if late.any() else 0):  # late random impressions avoid the rare interests (redrawn; 4 draws leave ~1e-5)
        hits_rare = late & np.isin(items["subcategory"][random_items], rares)
        random_items[hits_rare] = rng.integers(1, config.num_items + 1, size=int(hits_rare.sum()))
    item_ids = np.where(source == len(interests), random_items, interest_items)

    liking = preference_row[items["subcategory"][item_ids]] + items["quality"][item_ids]
    labels = (rng.random(length) < click_probability(liking)).astype(np.int64)
    deeper = rng.random(length) < _sigmoid(liking - DEEPER_BIAS)
    action_type = np.where(labels == 0, 0, 1 + deeper + (deeper & (rng.random(length) < 0.4)))
    dwell = np.clip(np.round(labels * (DWELL_BASE + liking) + rng.normal(scale=DWELL_NOISE, size=length)), 0,
                    MAX_DWELL)
    habit_hour = rng.integers(0, 24)
    return {
        F.ITEM_ID: item_ids,
        F.TIMESTAMP: times,
        F.LABEL: labels,
        F.CATEGORY: items[F.CATEGORY][item_ids],
        "action_type": action_type.astype(np.int64),
        "dwell": dwell.astype(np.int64),
        "hour": ((habit_hour + np.round(rng.normal(scale=2.5, size=length))) % 24).astype(np.int64),
        "device": np.where(rng.random(length) < 0.8, rng.integers(0, 4), rng.integers(0, 4, size=length)),
        "price": items["price"][item_ids],
    }


def generate(config: SyntheticConfig = SyntheticConfig()) -> SyntheticWorld:
    """Generates the world described in the module docstring; same config, same world."""
    rng = np.random.default_rng(config.seed)
    items = _items(config, rng)
    num_interests = config.major_interests + config.rare_interests
    majors = np.zeros((config.num_users + 1, config.major_interests), np.int64)
    rares = np.zeros((config.num_users + 1, config.rare_interests), np.int64)
    preference = rng.normal(*OTHER_PREFERENCE, size=(config.num_users + 1, config.num_subcategories + 1))
    lengths = np.clip(rng.lognormal(np.log(config.mean_history), 0.6, size=config.num_users + 1),
                      config.min_history, config.max_history).astype(int)
    parts = []
    for user in range(1, config.num_users + 1):
        interests = rng.choice(np.arange(1, config.num_subcategories + 1), size=num_interests, replace=False)
        majors[user], rares[user] = interests[:config.major_interests], interests[config.major_interests:]
        preference[user, interests] = rng.normal(*INTEREST_PREFERENCE, size=num_interests)
        events = _user_events(config, rng, items, majors[user], rares[user], preference[user], lengths[user])
        events[F.USER_ID] = np.full(lengths[user], user, np.int64)
        parts.append(events)
    log = {name: np.concatenate([part[name] for part in parts]).astype(np.int64) for name in parts[0]}
    schema = F.DataSchema(num_users=config.num_users + 1, num_items=config.num_items + 1,
                          num_categories=config.num_categories + 1, history_length=config.history_length,
                          event_features=EVENT_FEATURES, context_features=CONTEXT_FEATURES)
    log = F.validate_log(log, schema)
    names = ["<unknown>"] + [f"category_{index}" for index in range(1, config.num_categories + 1)]
    dataset = InteractionDataset(log=log, schema=schema, items=items, category_names=names)
    return SyntheticWorld(dataset=dataset, major_interests=majors, rare_interests=rares,
                          preference=preference, config=config)
