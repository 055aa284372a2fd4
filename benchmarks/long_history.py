"""Long-history benchmark: do IAT and HiSAC beat the strong simple baselines at L = 1,000 - 10,000?

One block per (dataset, variant, L), each with enough targets to learn from and the same inputs
for every encoder:

* ``synthetic`` worlds (``data.synthetic``), three variants: ``base`` (interests are
  sub-categories, 6 per category column), ``fine`` (24 sub-categories per category column, so the
  category search of SIM-hard is no oracle) and ``distant`` (each rare interest is shown only in
  the first 60% of a user's timeline and comes back rarely afterwards: its evidence sits in the
  distant past of the history);
* ``ml-1m``: MovieLens-1M (6,040 users, 1M ratings, histories up to 2,314).

The ``*_elbow`` blocks are the base and fine worlds with the block codebook's level sizes read off
the items' vectors (``codebook.elbow_level_sizes``, no labels) instead of fixed at (32, 8).

Protocol. Each user's ranking targets are sampled (seeded); targets are split by time into train /
validation / test (the latest 20% of the targets are test, the 10% before them validation:
quantiles of the targets' times). Every encoder gets the same per-event semantic-ID embedding
(from the block's codebook over the items' frozen content vectors: ``RankingModel(semantic_ids=
...)``), so a gain is the compression's, not the inputs'; ``*_nosem`` rows show the baselines
without it. (HiSAC also embeds the semantic IDs inside its encoder; DIN-last-N and IAT read
shorter windows of the same events.) An encoder's
hyper-parameters (its ``grid``) are chosen on the validation AUC with seed 0; the chosen setting
is then trained with seeds 0, 1, 2 and reported on test (mean ± std). IAT reads a bounded window:
the most recent events plus the events retrieved by the candidate's semantic ID (SIM-style), with
their instance tokens fetched batch by batch; ``hisac_iat`` reads every history event's token.

    python -m benchmarks.long_history --blocks synthetic_base_L1000            # one block
    python -m benchmarks.long_history --blocks synthetic_base_L1000 --encoders hisac,sim_hard
    python -m benchmarks.long_history --list                                   # blocks and rows

Every training run is made in a fresh Python process (the block's data loaded again there), so its
peak RSS is the run's own and not the allocator pool earlier runs left; ``--same-process`` trains
in this process instead (faster for small blocks, but later runs' peaks then include that pool).

Results go to ``benchmarks/results/long_history.json`` (a list of blocks, each with ``dataset``,
``variant``, ``history_length``, the validation ``selection`` and the test ``encoders``; written
after every encoder, re-running an encoder replaces its row) and ``long_history.png``.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import itertools
import json
import os
import pathlib
import platform
import subprocess
import sys
import time
from typing import Callable

import numpy as np

import tfrs_seqcompress  # noqa: F401  (sets Keras 2 before TensorFlow loads)
import tensorflow as tf

from benchmarks import memory, plotting
from benchmarks.quality import EpochTimer, long_tail_targets, sample_targets, serving_latency_ms
from tfrs_seqcompress import features as F
from tfrs_seqcompress import metrics, models
from tfrs_seqcompress.data import history, movielens, synthetic, tf_data
from tfrs_seqcompress.hisac import codebook, semantic
from tfrs_seqcompress.iat import source_models
from tfrs_seqcompress.layers import hisac

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
REPO_ROOT = RESULTS_DIR.parent.parent
RESULT_FILE = "long_history.json"
RUNS_FILE = "long_history.runs.jsonl"   # every finished training run, so an interrupted block resumes
SEEDS = (0, 1, 2)
VALIDATION_FRACTION, TEST_FRACTION = 0.1, 0.2


@dataclasses.dataclass(frozen=True)
class Block:
    """One dataset / variant / L, and how much of it to learn from."""

    dataset: str
    variant: str
    history_length: int
    world: dict = dataclasses.field(default_factory=dict)   # synthetic.SyntheticConfig fields
    targets_per_user: int = 80
    codebook: tuple[int, ...] | str = (32, 8)   # level sizes, or ELBOW
    batch_size: int = 256
    epochs: int = 2
    note: str = ""
    grids: dict = dataclasses.field(default_factory=dict)   # row name -> grid (or list of grids) replacing the row's own


_LONG_WORLD = {"num_users": 3000, "mean_history": 1200}
_VERY_LONG_WORLD = {"num_users": 600, "mean_history": 4000}
_FINE = {"num_categories": 4, "subcategories_per_category": 24, "items_per_subcategory": 20}
_DISTANT = {"rare_share": 0.02, "rare_until": 0.6, "rare_return_share": 0.001}
_FEWER = "fewer targets than at L = 1,000 (600 users x 40): a DIN-full epoch over L = 10,000 costs 10x more"
# A block codebook whose level sizes the items' vectors choose, without labels: level 1 at the elbow of its
# quantisation error, level 2 filling ELBOW_LEAVES leaves (``codebook.elbow_level_sizes``; the L = 1,000
# worlds' K study chose every leaf of a 256-leaf codebook).
ELBOW, ELBOW_LEAVES = "elbow", 256
# A grid value meaning "the setting the block's ``hisac`` row chose on validation".
AS_HISAC = "as chosen by hisac"
# The agent budget study (K = 8 ... 256) runs in the base worlds at L = 1,000; elsewhere K is chosen from its largest two.
_K_STUDY = {"hisac": {"fanouts": ((4, 2), (8, 4), (16, 8), (32, 8))}}
# The base world at L = 1,000: the K study at the routing temperature it ran with (0.25 x the level-1
# error), then the study's winner (K = 256) at the temperatures the other blocks chose (the fine
# world 0.05, MovieLens-1M 1.0), so the library's default temperature is chosen across blocks.
_BASE_L1000_GRIDS = {
    **_K_STUDY,
    "hisac": ({**_K_STUDY["hisac"], "temperature_scale": (0.25,)},
              {"fanouts": ((32, 8),), "temperature_scale": (0.05, 1.0)}),
    # HiSAC as the paper deploys it, beside a short-term DIN over the last N events (N among DIN-last-N's
    # choice here, 200, and 50), at the agents hisac chose; SIM-hard on the same base is its control.
    # Seed 0 on validation: 0.8416 (N = 50), 0.8420 (200) against hisac's 0.8419 (docs/benchmarks.md).
    "hisac_short": {"short_term_last_n": (50, 200), "fanouts": ((32, 8),), "temperature_scale": (AS_HISAC,)},
    "sim_hard_short": {"short_term_last_n": (50, 200)},
    # hisac_iat (HiSAC over the history's instance tokens) at the agents and temperature hisac chose, so the
    # two differ in the events' values only.
    "hisac_iat": {"fanouts": (AS_HISAC,), "temperature_scale": (AS_HISAC,)}}


# HiSAC at the library's defaults only (K = 256, every leaf of the (32, 8) codebook; temperature 0.25 x the
# level-1 error): the L = 10,000 blocks, where one HiSAC run takes ~20 minutes.
_HISAC_DEFAULTS_ONLY = {"hisac": {"fanouts": ((32, 8),), "temperature_scale": (0.25,)}}


def _hisac_family(fanouts: tuple[int, ...], scales: tuple[float, ...], short_term: tuple[int, ...] = (20, 50)) -> dict:
    """Block grids for the HiSAC rows at one agent budget: ``hisac`` chooses its routing temperature
    among ``scales`` (x the level-1 error); its ablations and variants run at the one it chose
    (``AS_HISAC``: run ``hisac`` first), so an ablation differs from ``hisac`` in what it ablates
    only; ``hisac_short`` chooses its short-term base's N among ``short_term``."""
    return {"hisac": {"fanouts": (fanouts,), "temperature_scale": scales},
            "hisac_no_candidate_routing": {"fanouts": (fanouts,), "temperature_scale": (AS_HISAC,)},
            "hisac_short": {"short_term_last_n": short_term, "temperature_scale": (AS_HISAC,)},
            "hisac_iat": {"fanouts": (fanouts,), "temperature_scale": (AS_HISAC,)}}


_ELBOW_GRIDS = {"hisac": {"fanouts": (None,), "temperature_scale": (0.05, 0.01)}}

BLOCKS = {
    "synthetic_base_L1000": Block("synthetic", "base", 1000, _LONG_WORLD, grids=_BASE_L1000_GRIDS),
    # The same world with a tenth of the users: what each encoder makes of ~17k training targets.
    "synthetic_base_L1000_small": Block("synthetic", "base_small", 1000, {**_LONG_WORLD, "num_users": 300},
                                        grids=_K_STUDY, note="a tenth of the users of synthetic_base_L1000"),
    # K = 256 (every leaf of the (32, 8) codebook), the winner of the base world's study on validation. The
    # routing temperature is chosen here too: relative to the level-1 error, 0.25 routes an item 60% to its
    # own leaf in this world (89% in the base world), 0.05 92%, 0.01 98% (docs/benchmarks.md); 0.05 won
    # among those three; 1.0 (MovieLens-1M's choice) joined the grid later.
    "synthetic_fine_L1000": Block("synthetic", "fine", 1000, {**_LONG_WORLD, **_FINE},
                                  grids=_hisac_family((32, 8), (0.01, 0.05, 0.25, 1.0))),
    "synthetic_distant_L1000": Block("synthetic", "distant", 1000, {**_LONG_WORLD, **_DISTANT}),
    # The base and fine worlds again, with the block codebook's levels chosen by the elbow rule (ELBOW:
    # (64, 4) for 48 planted sub-categories, (128, 2) for 96, against (32, 8)): every encoder's semantic
    # inputs follow it, and HiSAC's agents are its leaves (fanouts None: all 256). The routing
    # temperatures keep about 85-90% and 97% of an item's weight in its own leaf here
    # (the fine world's (32, 8) choice kept 92%).
    "synthetic_base_L1000_elbow": Block("synthetic", "base_elbow", 1000, _LONG_WORLD, codebook=ELBOW,
                                        grids=_ELBOW_GRIDS),
    "synthetic_fine_L1000_elbow": Block("synthetic", "fine_elbow", 1000, {**_LONG_WORLD, **_FINE}, codebook=ELBOW,
                                        grids=_ELBOW_GRIDS),
    # The L = 10,000 blocks run HiSAC at the library's defaults, not chosen here: at L = 10,000 one HiSAC run
    # takes longer than the base world's whole K study did at L = 1,000.
    "synthetic_base_L10000": Block("synthetic", "base", 10000, _VERY_LONG_WORLD, 40, batch_size=64, note=_FEWER,
                                   grids=_HISAC_DEFAULTS_ONLY),
    # The fine world: the default temperature and the one its L = 1,000 block chose (0.05), chosen on validation.
    "synthetic_fine_L10000": Block("synthetic", "fine", 10000, {**_VERY_LONG_WORLD, **_FINE}, 40, batch_size=64,
                                   note=_FEWER, grids={"hisac": {"fanouts": ((32, 8),),
                                                                 "temperature_scale": (0.25, 0.05)}}),
    "synthetic_distant_L10000": Block("synthetic", "distant", 10000, {**_VERY_LONG_WORLD, **_DISTANT}, 40,
                                      batch_size=64, note=_FEWER, grids=_HISAC_DEFAULTS_ONLY),
    "ml-1m_L200": Block("ml-1m", "ratings", 200, targets_per_user=30, codebook=(16, 8)),
    # HiSAC's routing temperature chosen on this block's validation split among the fine world's choice
    # (0.05 x the level-1 error; items keep 89% of their weight in their own leaf here), 0.25 (46%), 1.0
    # (9%) and 4.0 (the grid grew while 1.0 was its largest and best value); its short-term base over the
    # last 50 events, the N DIN-last-N chose on this block's validation split.
    "ml-1m_L1000": Block("ml-1m", "ratings", 1000, targets_per_user=30, codebook=(16, 8),
                         grids={**_hisac_family((16, 8), (0.05, 0.25, 1.0, 4.0), short_term=(50,)),
                                "mean_short": {"short_term_last_n": (50,)},
                                "sim_hard_short": {"short_term_last_n": (50,)}}),
    # A toy block for the benchmark's own test (tests/test_long_history.py; seconds, not a result).
    "synthetic_smoke_L100": Block("synthetic", "smoke", 100, {"num_users": 40, "mean_history": 150},
                                  targets_per_user=20, batch_size=64, epochs=1),
}


@dataclasses.dataclass(frozen=True)
class Row:
    """One encoder setting: a registered encoder, its fixed arguments and the grid chosen on validation.

    Grid / fixed keys are ``make_encoder`` arguments, or: ``short_term_last_n`` (a DIN base over
    the last N events), ``semantic_inputs`` (the per-event semantic-ID embedding, default on),
    ``window`` ((recent, retrieved) events of a bounded history), ``clusters`` (global clusters' K),
    ``temperature_scale`` (HiSAC's routing temperature relative to the codebook's level-1 error),
    ``own_leaf_share`` (the temperature at which items keep that share in their own leaf)."""

    encoder: str
    grid: dict = dataclasses.field(default_factory=dict)
    fixed: dict = dataclasses.field(default_factory=dict)
    tokens: bool = False


# HiSAC's routing temperature where a block does not choose it (_hisac_family): a quarter of the
# codebook's level-1 error, the better of the two scales tried on the validation split of
# synthetic_base_L1000 (0.8410 vs 0.8401 at the full error, K = 128, seed 0), which the base blocks'
# recorded runs used. The fine world's study since chose 0.05; the library's default stays 0.25, the
# scale of least total regret over the blocks that chose (docs/benchmarks.md).
_HISAC = {"temperature_scale": 0.25}
_K_LARGE = {"fanouts": ((16, 8), (32, 8))}   # K = 128, 256
ROWS = {
    "mean": Row("mean"),
    "din_last_n": Row("din_last_n", grid={"last_n": (20, 50, 200)}),
    "din_full": Row("din_full"),
    "sim_hard": Row("sim_hard"),
    "global_clusters": Row("global_clusters", grid={"clusters": (32, 128)}),
    "hisac": Row("hisac", grid=_K_LARGE, fixed=_HISAC),
    "hisac_short": Row("hisac", grid={"short_term_last_n": (20, 50)}, fixed={**_HISAC, "fanouts": (16, 8)}),
    # IAT's bounded window (recent, retrieved): the paper reads at most 256 tokens; 32 + 32 joined the
    # grid when a profile put its training step at 2.3x faster than 64 + 64's (docs/benchmarks.md).
    "iat": Row("iat", grid={"window": ((64, 64), (32, 32))}, tokens=True),
    # IAT with its DIN base over the window's 64 recent events only (the token path still reads all 128): the
    # paper's set-up on a short-term base. It was in IAT's grid at L = 10,000 for a quarter less scoring per
    # example, but trained no faster there (docs/benchmarks.md), so it is a row of its own.
    "iat_recent_base": Row("iat", fixed={"window": (64, 64), "base_last_n": 64}, tokens=True),
    "hisac_iat": Row("hisac_iat", fixed={**_HISAC, "fanouts": (16, 8)}, tokens=True),
    "din_last_n_nosem": Row("din_last_n", grid={"last_n": (20, 50, 200)}, fixed={"semantic_inputs": False}),
    "din_full_nosem": Row("din_full", fixed={"semantic_inputs": False}),
    "sim_hard_nosem": Row("sim_hard", fixed={"semantic_inputs": False}),
    "hisac_no_candidate_routing": Row("hisac", grid=_K_LARGE, fixed={**_HISAC, "candidate_routing": False}),
    # Controls for hisac_short: the same short-term base beside a plain whole-history summary (mean pooling),
    # and beside the best simple whole-history baseline (SIM-hard): does the base gain come from HiSAC?
    "mean_short": Row("mean", grid={"short_term_last_n": (20, 50)}),
    "sim_hard_short": Row("sim_hard", grid={"short_term_last_n": (20, 50)}),
}
DEFAULT_ROWS = ("sim_hard", "din_full", "din_last_n", "hisac", "hisac_short", "iat", "hisac_iat")


@dataclasses.dataclass
class Data:
    """A block's data, built once and shared by every encoder and seed."""

    block: Block
    schema: F.DataSchema
    index: history.HistoryIndex
    splits: dict                 # "train" / "validation" / "test" -> target rows of index
    validation_from: int         # the first second of the validation period (source models train before it)
    item_vectors: np.ndarray     # frozen semantic vectors [num_items, dim]
    long_tail: np.ndarray | None  # [num_events] bool, targets from a planted rare interest (synthetic)
    sizes: dict
    analysis: dict = dataclasses.field(default_factory=dict)  # what the data offers (repeat_evidence)
    codebook_levels: tuple[int, ...] = ()  # the block codebook's level sizes (ELBOW resolved)


def time_splits(index: history.HistoryIndex, rows: np.ndarray) -> dict:
    """Targets by time: the latest ``TEST_FRACTION`` of the targets are test, the
    ``VALIDATION_FRACTION`` before them validation, the rest train (quantiles of the targets'
    times, not of the time range: MovieLens' ratings thin out over its last years)."""
    times = index.events[F.TIMESTAMP][rows]
    validation_from, test_from = np.quantile(times, [1 - TEST_FRACTION - VALIDATION_FRACTION, 1 - TEST_FRACTION])
    return {"train": rows[times < validation_from],
            "validation": rows[(times >= validation_from) & (times < test_from)],
            "test": rows[times >= test_from]}, int(validation_from)


def load_block(block: Block) -> Data:
    started = time.perf_counter()
    world = None
    if block.dataset == "synthetic":
        world = synthetic.generate(synthetic.SyntheticConfig(history_length=block.history_length, seed=0,
                                                             max_history=10_000, **block.world))
        dataset = world.dataset
    elif block.dataset == "ml-1m":
        dataset = movielens.load_movielens_1m(history_length=block.history_length)
    else:
        raise ValueError(f"Unknown dataset {block.dataset!r}.")
    index = history.HistoryIndex(dataset.log, dataset.schema)
    rows = sample_targets(index, block.targets_per_user)
    rows = rows[index.start[rows] > index.first[rows]]  # a target needs at least one earlier event
    splits, validation_from = time_splits(index, rows)
    long_tail = None
    if world is not None:
        long_tail = np.zeros(len(index), bool)
        long_tail[rows] = long_tail_targets(world, {F.USER_ID: index.events[F.USER_ID][rows],
                                                    F.ITEM_ID: index.events[F.ITEM_ID][rows]})
    lengths = index.start[rows] - index.first[rows]
    ceiling = {} if world is None else {"bayes_auc": bayes_auc(world, index, splits["test"])}
    sizes = {**ceiling, "users": int(dataset.schema.num_users - 1), "items": int(dataset.schema.num_items - 1),
             "events": int(len(index)), **{f"{name}_targets": int(len(split)) for name, split in splits.items()},
             "median_history_of_targets": float(np.median(lengths)),
             "targets_with_history_beyond_L": float(np.mean(lengths > block.history_length)),
             "build_seconds": time.perf_counter() - started}
    item_vectors = semantic.content_vectors(dataset)
    levels, choice = codebook_levels(block, item_vectors)
    data = Data(block, dataset.schema, index, splits, validation_from, item_vectors, long_tail, sizes,
                {**choice, **repeat_evidence(index, splits["test"], block.history_length)}, levels)
    data.analysis.update(routing_sharpness(data))
    data.analysis.update(user_rate_evidence(index, splits["test"], block.history_length))
    if world is not None:
        data.analysis.update(evidence_ceilings(data, world))
    del world, dataset
    gc.collect()
    memory.release_free_memory()  # the generator's freed temporaries: a run's peak starts from what the data holds
    return data


def codebook_levels(block: Block, item_vectors: np.ndarray) -> tuple[tuple[int, ...], dict]:
    """The block codebook's level sizes, and for ``ELBOW`` the level-1 errors that chose them (label-free)."""
    if block.codebook != ELBOW:
        return tuple(block.codebook), {}
    known = semantic.known_rows(item_vectors)
    levels, errors = codebook.elbow_level_sizes(item_vectors[known], leaves=ELBOW_LEAVES, keys=known)
    return levels, {"codebook_by_elbow": {"level_sizes": list(levels),
                                          "level_1_error_by_size": {str(size): e for size, e in errors.items()}}}


ROUTING_SCALES = (1.0, 0.25, 0.05, 0.01)


def routing_sharpness(data: Data) -> dict:
    """Label-free: the share of an item's routing weight that stays in its own leaf of the block's
    codebook (``layers.hisac.own_leaf_share``) at each temperature scale (x the level-1 error)."""
    fitted = fit_codebook(data, data.codebook_levels, seed=0)
    level_1 = fitted.statistics["quantisation_error"][0]
    return {"own_leaf_share_by_temperature_scale": {
        str(scale): hisac.own_leaf_share(fitted, data.item_vectors, scale * level_1) for scale in ROUTING_SCALES}}


def window_of(index: history.HistoryIndex, row: int, history_length: int) -> np.ndarray:
    """The index rows of target ``row``'s history window: the user's last ``history_length`` events before it."""
    return np.arange(max(index.first[row], index.start[row] - history_length), index.start[row])


def repeat_evidence(index: history.HistoryIndex, rows: np.ndarray, history_length: int) -> dict:
    """How much of the test set a lookup of the target item itself in the last L events decides:
    the share of targets whose item is in their window, and the test AUC of one feature, that
    item's smoothed past click rate in the window ((clicks + 1) / (views + 2); 0.5 when absent).
    Item-level evidence that attention over raw events (DIN, SIM) reads directly and that
    compressed agents average over the item's semantic neighbours."""
    items, labels = index.events[F.ITEM_ID], index.events[F.LABEL]
    present, rate = np.zeros(len(rows), bool), np.full(len(rows), 0.5)
    for number, row in enumerate(rows):
        window = window_of(index, row, history_length)
        same = items[window] == items[row]
        present[number] = same.any()
        rate[number] = (labels[window][same].sum() + 1) / (same.sum() + 2)
    return {"test_targets_with_item_in_window": float(present.mean()),
            "item_click_rate_test_auc": float(metrics.roc_auc(labels[rows], rate))}


def user_rate_evidence(index: history.HistoryIndex, rows: np.ndarray, history_length: int,
                       recent: tuple[int, ...] = (20, 50)) -> dict:
    """How much of the test set a user's click level decides, with no item in it: the test AUC and
    GAUC of one feature, the user's smoothed click rate ((clicks + 1) / (events + 2)) over the whole
    window and over its last N events. Its AUC is what pooling across users rewards (a user who
    clicks more, or lately more); its GAUC (within a user, over time) shows how little it ranks
    one user's candidates."""
    labels = index.events[F.LABEL]
    clicks = np.concatenate([[0], np.cumsum(labels)])
    start, first = index.start[rows], index.first[rows]
    evidence = {}
    for name, length in [("window", history_length)] + [(f"last_{n}", n) for n in recent]:
        low = np.maximum(first, start - length)
        rate = (clicks[start] - clicks[low] + 1) / (start - low + 2)
        evidence[f"user_click_rate_{name}_test_auc"] = float(metrics.roc_auc(labels[rows], rate))
        evidence[f"user_click_rate_{name}_test_gauc"] = float(
            metrics.gauc(index.events[F.USER_ID][rows], labels[rows], rate))
    return evidence


# The grid over which a target's preference posterior is computed (the planted preferences lie well inside).
_PREFERENCE_GRID = np.linspace(-4.0, 4.0, 161)


def posterior_click_probability(world: synthetic.SyntheticWorld, events: dict, target_quality: float) -> float:
    """``P(click)`` of a target under the world's own model, given the history events that share
    its interest (``events``: their ``label``, ``action_type``, ``dwell`` and item ``quality``): the
    posterior of the user's preference (the planted interest / other mixture as the prior) times
    the click model. Clicks and their depth and dwell, which grow with the liking, are the evidence."""
    grid = _PREFERENCE_GRID
    share = (world.config.major_interests + world.config.rare_interests) / world.config.num_subcategories
    log_prior = np.logaddexp(
        np.log(share) - (grid - synthetic.INTEREST_PREFERENCE[0]) ** 2 / (2 * synthetic.INTEREST_PREFERENCE[1] ** 2),
        np.log(1 - share) - (grid - synthetic.OTHER_PREFERENCE[0]) ** 2 / (2 * synthetic.OTHER_PREFERENCE[1] ** 2))
    evidence = synthetic.log_likelihood(grid[:, None] + events["quality"][None, :], events[F.LABEL],
                                        events["action_type"], events["dwell"])
    log_posterior = log_prior + evidence.sum(axis=1)
    posterior = np.exp(log_posterior - log_posterior.max())
    return float(posterior @ synthetic.click_probability(grid + target_quality) / posterior.sum())


def evidence_ceilings(data: Data, world: synthetic.SyntheticWorld) -> dict:
    """What the history can tell at best, on the test split: the test AUC of the posterior click
    probability (``posterior_click_probability``) when a target's evidence is the window's events of
    its own sub-category (the planted truth: a history-only ceiling, conservative as it ignores how
    often an interest is shown), of its codebook leaf (what HiSAC's agents can group at best with
    this block's codebook) and of its category column (SIM-hard's search, without learning more)."""
    index, rows, length = data.index, data.splits["test"], data.block.history_length
    items, labels = index.events[F.ITEM_ID], index.events[F.LABEL]
    quality = world.dataset.items["quality"]
    columns = {F.LABEL: labels, "action_type": index.events["action_type"], "dwell": index.events["dwell"],
               "quality": quality[items]}
    keys = {"subcategory": world.dataset.items["subcategory"][items],
            "codebook_leaf": leaf_keys(data, fit_codebook(data, data.codebook_levels, seed=0)),
            "category": world.dataset.items[F.CATEGORY][items]}
    ceilings = {}
    for name, key in keys.items():
        probability = np.zeros(len(rows))
        for number, row in enumerate(rows):
            window = window_of(index, row, length)
            same = window[key[window] == key[row]]
            probability[number] = posterior_click_probability(
                world, {column: values[same] for column, values in columns.items()}, quality[items[row]])
        ceilings[f"{name}_evidence_test_auc"] = float(metrics.roc_auc(labels[rows], probability))
    return ceilings


def bayes_auc(world: synthetic.SyntheticWorld, index: history.HistoryIndex, rows: np.ndarray) -> float:
    """The test AUC of the world's own click model (the planted preference + item quality): what no
    encoder can exceed except by chance, so a gap to it is what is left to learn."""
    users, items = index.events[F.USER_ID][rows], index.events[F.ITEM_ID][rows]
    liking = world.preference[users, world.dataset.items["subcategory"][items]] + world.dataset.items["quality"][items]
    return metrics.roc_auc(index.events[F.LABEL][rows], liking)


def fit_codebook(data: Data, level_sizes: tuple[int, ...], seed: int) -> codebook.Codebook:
    known = semantic.known_rows(data.item_vectors)
    return codebook.fit_residual_kmeans(data.item_vectors[known], level_sizes, seed=seed, keys=known)


def leaf_keys(data: Data, fitted: codebook.Codebook) -> np.ndarray:
    """Every event's finest semantic ID (one int per path), the key IAT's window retrieves by."""
    codes = fitted.assign(data.item_vectors)
    leaf = np.zeros(len(codes), np.int64)
    for level, size in enumerate(fitted.level_sizes):
        leaf = leaf * size + codes[:, level]
    leaf[~np.any(data.item_vectors != 0, axis=1)] = -1
    return leaf[data.index.events[F.ITEM_ID]]


# Source models trained in this process, by (block, seed, token_dim): ``iat`` and ``hisac_iat`` of
# one block read the tokens of the same source model per seed (trained once, its time reported for both).
_SOURCE_MODELS: dict[int, tuple] = {}


def event_tokens(data: Data, seed: int, token_dim: int, result: dict) -> tuple[np.ndarray, str]:
    """Trains (once per seed) a user-order IAT source model on the training period's events and
    returns every event's token ``[num_events, d]`` in the index's row order, and its version."""
    events = data.index.events
    key = (data.block.dataset, data.block.variant, data.block.history_length, seed, token_dim)
    if key not in _SOURCE_MODELS:
        train_log = {name: values[events[F.TIMESTAMP] < data.validation_from] for name, values in events.items()}
        started = time.perf_counter()
        source = source_models.train_source_model(train_log, data.schema, "user_order", token_dim=token_dim,
                                                  epochs=1, seed=seed)
        del train_log
        _SOURCE_MODELS[key] = (source, time.perf_counter() - started)
    source, seconds = _SOURCE_MODELS[key]
    result["source_train_seconds"] = seconds
    return source_models.compute_tokens(source, events), source.fingerprint()


def settings_of(row: Row, block: Block, name: str = "", hisac_chosen: dict | None = None,
                levels: tuple[int, ...] | None = None) -> list[dict]:
    """Every combination of the row's grid (or the block's grid for the row; a list of grids: the
    combinations of each in turn), each merged over its fixed arguments (fan-outs wider than the
    block's codebook, of level sizes ``levels`` if given, are left out; ``fanouts`` None keeps every
    leaf); ``AS_HISAC`` values are those of ``hisac_chosen`` (the block's ``hisac`` row's chosen setting)."""
    grid = block.grids.get(name, row.grid)
    if isinstance(grid, (list, tuple)):  # a union of grids
        return [setting for part in grid for setting in settings_of(
            row, dataclasses.replace(block, grids={name: part}), name, hisac_chosen, levels)]
    grid = dict(grid)
    for key, values in grid.items():
        if AS_HISAC in values:
            if not hisac_chosen or key not in hisac_chosen:
                raise ValueError(f"Row {name!r} of block {block.dataset} {block.variant} L = {block.history_length} "
                                 f"runs at the {key} hisac chose: run the hisac row of the block first.")
            grid[key] = (hisac_chosen[key],)
    names = sorted(grid)
    settings = [{**row.fixed, **dict(zip(names, values))} for values in itertools.product(*(grid[n] for n in names))]
    levels = levels or (() if block.codebook == ELBOW else block.codebook)
    fits = lambda setting: all(f <= s for f, s in zip(setting.get("fanouts") or (), levels))  # noqa: E731
    return [setting for setting in settings if fits(setting)]


def build_model(data: Data, row: Row, setting: dict, fitted: codebook.Codebook, schema: F.DataSchema,
                semantic_codebook: codebook.Codebook | None = None):
    arguments = {key: value for key, value in setting.items()
                 if key not in ("semantic_inputs", "window", "clusters", "short_term_last_n", "temperature_scale",
                                "own_leaf_share")}
    if "temperature_scale" in setting:  # relative to the codebook's level-1 error
        arguments["temperature"] = hisac.default_temperature(fitted, setting["temperature_scale"])
    if "own_leaf_share" in setting:  # label-free: how sharply agents follow the codebook
        arguments["temperature"] = hisac.temperature_for_share(fitted, data.item_vectors, setting["own_leaf_share"])
    return models.build_ranking_model(
        schema, row.encoder, codebook=fitted, item_vectors=data.item_vectors,
        semantic_inputs=setting.get("semantic_inputs", True), short_term_last_n=setting.get("short_term_last_n"),
        semantic_codebook=semantic_codebook, **arguments)


def example_builder(data: Data, row: Row, setting: dict, fitted: codebook.Codebook, seed: int,
                    result: dict) -> tuple[F.DataSchema, Callable]:
    """The schema a row's model is built for and the function that builds its example batches from
    target rows: the last N events for DIN-last-N, a bounded window for IAT, the tokens (made here,
    their cost noted in ``result``) for token rows."""
    schema, block = data.schema, data.block
    build, arrays = data.index.examples, None
    if row.tokens:
        tokens, version = event_tokens(data, seed, 16, result)
        arrays = {"token": tokens}
        schema = dataclasses.replace(schema, token_dim=16, token_version=version)
    if "window" in setting:
        recent, retrieved = setting["window"]
        keys = leaf_keys(data, fitted)
        schema = dataclasses.replace(schema, history_length=recent + retrieved)
        build = lambda rows: data.index.search_examples(rows, recent, retrieved, keys, arrays)  # noqa: E731
    elif row.encoder == "din_last_n":  # it reads the last N events: build (and pay for) only those
        last_n = min(setting["last_n"], block.history_length)
        schema = dataclasses.replace(schema, history_length=last_n)
        build = lambda rows: data.index.examples(rows, arrays, length=last_n)  # noqa: E731
    elif arrays is not None:
        build = lambda rows: data.index.examples(rows, arrays)  # noqa: E731
    if row.tokens:
        version_id = F.token_version_id(schema.token_version)
        inner = build
        build = lambda rows: {**inner(rows), F.TOKEN_VERSION: np.full(len(rows), version_id, np.int64)}  # noqa: E731
    return schema, build


def run_one(data: Data, row: Row, setting: dict, seed: int, splits: tuple[str, ...]) -> dict:
    """Trains one model on the train targets; metrics on ``splits``, costs, peak memory."""
    tf.keras.backend.clear_session()
    gc.collect()
    memory.release_free_memory()
    memory.reset_peak()
    result: dict = {"rss_at_start_mb": memory.rss_mb()}   # what the process holds before the run (runtime, data)
    block = data.block
    fitted = fit_codebook(data, data.codebook_levels, seed)  # the semantic inputs every encoder gets
    encoder_codebook = fit_codebook(data, (setting["clusters"],), seed) if "clusters" in setting else fitted
    schema, build = example_builder(data, row, setting, fitted, seed, result)
    tf.keras.utils.set_random_seed(seed)
    model = build_model(data, row, setting, encoder_codebook, schema, semantic_codebook=fitted)
    timer = EpochTimer()
    train = tf_data.dataset_from_history_index(data.index, data.splits["train"], block.batch_size,
                                               shuffle_seed=seed, build=build)
    model.fit(train, epochs=block.epochs, verbose=0, callbacks=[timer])
    result["train_examples_per_second"] = len(data.splits["train"]) / timer.seconds[-1]
    for split in splits:
        rows = data.splits[split]
        predicted = models.predict_probabilities(
            model, tf_data.dataset_from_history_index(data.index, rows, block.batch_size, build=build))
        scores = metrics.ranking_metrics(predicted["user_id"], predicted["label"], predicted["probability"])
        result.update({f"{split}_{name}": value for name, value in scores.items()})
        if data.long_tail is not None and split == "test":
            rare = data.long_tail[rows]
            result["test_auc_long_tail"] = metrics.roc_auc(predicted["label"][rare], predicted["probability"][rare])
    result.update(serving_latency_ms(model, schema, build(data.splits["test"][:100])))
    result["peak_rss_mb"] = memory.peak_rss_mb()
    return result


def summarise(runs: list[dict]) -> dict:
    """Mean and std over the runs of every figure all of them have (runs recorded by an older
    version may lack a newer figure)."""
    summary = {}
    for name in [name for name in runs[0] if all(name in run for run in runs)]:
        values = np.array([run[name] for run in runs], dtype=float)
        summary[name] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
    return summary


def _jsonable(setting: dict) -> dict:
    return {key: list(value) if isinstance(value, tuple) else value for key, value in setting.items()}


# Block settings that choose which runs are made, not what one run does: a widened grid re-uses the
# finished runs and its rows still compare with the block's others.
_SELECTION_SETTINGS = ("grids", "note")
# Bump when a change to the models or the data path changes what a run trains, so that finished runs
# made before it are trained again instead of re-used (0: runs keyed without a revision). Not bumped
# for the event-feature embedding rows moving from v to v + 1 (row 0 then unknown): on benchmark data
# every value is in range, so the two only relabel the rows a value uses (docs/benchmarks.md).
MODEL_REVISION = 0


def run_defining(settings: dict) -> dict:
    """The block settings a training run's result depends on (all but ``_SELECTION_SETTINGS``)."""
    return {key: value for key, value in settings.items() if key not in _SELECTION_SETTINGS}


def run_in_fresh_process(block_name: str, settings: dict, name: str, setting: dict, seed: int) -> dict:
    """``run_one`` of the row ``name`` in a new Python process that loads block ``block_name`` (whose
    run-defining ``settings`` the parent holds) again: its peak RSS is the run's own (runtime, data
    and the run), not the pool of earlier runs."""
    request = {"block": block_name, "settings": settings, "row": name, "setting": _jsonable(setting), "seed": seed}
    completed = subprocess.run([sys.executable, "-m", "benchmarks.long_history", "--child-run", json.dumps(request)],
                               cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def child_run(request: dict) -> dict:
    """The child side of ``run_in_fresh_process``: checks the block is the block the parent holds (a
    block changed in between would make the run another block's), loads it and trains the run."""
    block = BLOCKS[request["block"]]
    settings = run_defining(json.loads(json.dumps(block_settings(block))))
    if settings != request["settings"]:
        raise ValueError(f"block {request['block']} here has settings {settings}, the parent's "
                         f"{request['settings']}: the run would belong to another block")
    data = load_block(block)
    as_tuple = lambda value: tuple(map(as_tuple, value)) if isinstance(value, list) else value  # noqa: E731
    setting = {key: as_tuple(value) for key, value in request["setting"].items()}
    return run_one(data, ROWS[request["row"]], setting, request["seed"], ("validation", "test"))


class RunCheckpoint:
    """Finished runs, one JSON line each, keyed by the block's settings and data sizes, the row's
    definition, the setting and the seed: a re-started block re-uses them instead of training
    again (hours at L = 1,000), and a run of other settings or data never matches. With
    ``block_name`` a new run is trained in a fresh process (``run_in_fresh_process``)."""

    def __init__(self, path: pathlib.Path, header: dict, block_name: str | None = None):
        self.path, self.block_name = path, block_name
        self.block = {"settings": run_defining(header["settings"]),
                      "sizes": {k: v for k, v in header["sizes"].items() if k != "build_seconds"}}
        self.done = {}
        if path.exists():
            for line in path.read_text().splitlines():
                entry = json.loads(line)
                self.done[entry["key"]] = entry["result"]

    def key(self, name: str, setting: dict, seed: int) -> str:
        row = ROWS[name]
        revision = [MODEL_REVISION] if MODEL_REVISION else []
        return json.dumps([self.block, name, row.encoder, _jsonable(row.fixed), row.tokens, _jsonable(setting), seed,
                           *revision], sort_keys=True)

    def run(self, data: Data, name: str, setting: dict, seed: int) -> dict:
        key = self.key(name, setting, seed)
        if key not in self.done:
            if self.block_name is None:
                self.done[key] = run_one(data, ROWS[name], setting, seed, ("validation", "test"))
            else:
                self.done[key] = run_in_fresh_process(self.block_name, self.block["settings"], name, setting, seed)
            with self.path.open("a") as file:
                file.write(json.dumps({"key": key, "result": self.done[key]}) + "\n")
        return self.done[key]


def run_row(data: Data, name: str, seeds: tuple[int, ...], log, checkpoint: RunCheckpoint,
            hisac_chosen: dict | None = None) -> dict:
    """Selection on validation (seed ``seeds[0]``), then the chosen setting on test over ``seeds``."""
    row = ROWS[name]
    candidates = settings_of(row, data.block, name, hisac_chosen, data.codebook_levels)
    selection, runs = [], {}
    for setting in candidates:
        result = checkpoint.run(data, name, setting, seeds[0])
        selection.append({"setting": _jsonable(setting), "validation_auc": result["validation_auc"],
                          "validation_gauc": result["validation_gauc"],
                          "train_examples_per_second": result["train_examples_per_second"]})
        runs[json.dumps(_jsonable(setting), sort_keys=True)] = result
        log(f"{name} {_jsonable(setting)} seed {seeds[0]}: validation AUC {result['validation_auc']:.4f}, "
            f"test AUC {result['test_auc']:.4f} ({result['train_examples_per_second']:,.0f} ex/s, "
            f"peak {result['peak_rss_mb']:,.0f} MB)")
    best = max(range(len(candidates)), key=lambda i: selection[i]["validation_auc"])
    chosen = candidates[best]
    seed_runs = [runs[json.dumps(_jsonable(chosen), sort_keys=True)]]
    for seed in seeds[1:]:
        seed_runs.append(checkpoint.run(data, name, chosen, seed))
        log(f"{name} {_jsonable(chosen)} seed {seed}: test AUC {seed_runs[-1]['test_auc']:.4f}")
    return {"encoder": row.encoder, "chosen": _jsonable(chosen), "selection": selection, "seeds": list(seeds),
            "runs": seed_runs, "summary": summarise(seed_runs)}


def chosen_by_hisac(path: pathlib.Path, header: dict) -> dict | None:
    """The setting the ``hisac`` row of the block of ``header`` chose, from the results file (None
    if not run yet, or run with other settings)."""
    for existing in read_blocks(path):
        if ((existing["dataset"], existing["variant"], existing["history_length"]) ==
                (header["dataset"], header["variant"], header["history_length"])
                and run_defining(existing["settings"]) == run_defining(header["settings"])
                and "hisac" in existing["encoders"]):
            return existing["encoders"]["hisac"]["chosen"]
    return None


def block_settings(block: Block) -> dict:
    """The block's ``settings`` field of the results file (before the JSON round trip)."""
    return {**dataclasses.asdict(block), "validation_fraction": VALIDATION_FRACTION, "test_fraction": TEST_FRACTION}


def block_header(data: Data) -> dict:
    """The block's fields of the results file, exactly as they read back from JSON (tuples as
    lists at every depth), so a block written before compares equal with the same block now."""
    block = data.block
    header = {"dataset": block.dataset, "variant": block.variant, "history_length": block.history_length,
              "settings": block_settings(block),
              "sizes": data.sizes, "analysis": data.analysis, "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    return json.loads(json.dumps(header))


def read_blocks(path: pathlib.Path) -> list[dict]:
    return json.loads(path.read_text()) if path.exists() else []


def write_block(path: pathlib.Path, block: dict) -> None:
    """Replaces the block with the same dataset / variant / L (merging its encoder rows) and writes the file."""
    blocks = read_blocks(path)
    key = (block["dataset"], block["variant"], block["history_length"])
    for existing in blocks:
        if (existing["dataset"], existing["variant"], existing["history_length"]) == key:
            sizes = lambda header: {k: v for k, v in header["sizes"].items() if k != "build_seconds"}  # noqa: E731
            if not (run_defining(existing["settings"]) == run_defining(block["settings"])
                    and sizes(existing) == sizes(block)):
                raise ValueError(f"{path} holds block {key} made with other settings or data; its rows would not "
                                 "compare with these. Move the file aside (or delete the block) first.")
            existing.update({name: value for name, value in block.items() if name != "encoders"})
            existing["encoders"].update(block["encoders"])
            break
    else:
        blocks.append(block)
    path.write_text(json.dumps(blocks, indent=1))


def add_analysis(path: pathlib.Path) -> list[dict]:
    """Recomputes, for every block of the results file, what needs no training: the synthetic blocks'
    Bayes ceiling (``sizes.bayes_auc``; the worlds are regenerated) and the block's ``analysis``
    (evidence, routing sharpness, the user click-rate feature). Encoder rows are left as they are."""
    blocks = read_blocks(path)
    for block in blocks:
        match = [b for b in BLOCKS.values() if (b.dataset, b.variant, b.history_length) ==
                 (block["dataset"], block["variant"], block["history_length"])]
        if not match:
            continue
        data = load_block(match[0])
        if "bayes_auc" in data.sizes:
            block["sizes"]["bayes_auc"] = data.sizes["bayes_auc"]
        block["analysis"] = json.loads(json.dumps(data.analysis))
        print(f"[long_history] {block['dataset']} {block['variant']} L = {block['history_length']}: analysis "
              f"recomputed{' (Bayes ceiling %.4f)' % data.sizes['bayes_auc'] if 'bayes_auc' in data.sizes else ''}",
              flush=True)
    path.write_text(json.dumps(blocks, indent=1))
    return blocks


def plot(blocks: list[dict], path: pathlib.Path) -> None:
    figure, axes = plotting.subplots(1, max(len(blocks), 1), figsize=(4.5 * max(len(blocks), 1), 4.2), squeeze=False)
    for axis, block in zip(axes[0], blocks):
        names = list(block["encoders"])
        means = [block["encoders"][n]["summary"]["test_auc"]["mean"] for n in names]
        stds = [block["encoders"][n]["summary"]["test_auc"]["std"] for n in names]
        colours = ["#c44e52" if ROWS.get(n, Row("")).encoder.startswith(("hisac", "iat")) else "#4c72b0"
                   for n in names]
        axis.bar(names, means, yerr=stds, capsize=3, color=colours)
        axis.set_ylim(max(0.0, min(m - s for m, s in zip(means, stds)) - 0.02), max(m + s for m, s in zip(means, stds)) + 0.01)
        seeds = max(len(block["encoders"][n]["seeds"]) for n in names)
        axis.set_title(f"{block['dataset']} {block['variant']}, L = {block['history_length']:,}\ntest AUC "
                       f"(mean ± std, {seeds} seeds)", fontsize=9)
        axis.tick_params(axis="x", rotation=60, labelsize=8)
    plotting.save(figure, path)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", default="synthetic_base_L1000", help=f"comma-separated, of {list(BLOCKS)}")
    parser.add_argument("--encoders", default=",".join(DEFAULT_ROWS), help=f"comma-separated, of {list(ROWS)}")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--output-dir", default=str(RESULTS_DIR))
    parser.add_argument("--list", action="store_true", help="print the blocks and rows, then exit")
    parser.add_argument("--analysis", action="store_true",
                        help="only recompute the Bayes ceilings and label-free analysis of the blocks in the results file")
    parser.add_argument("--same-process", action="store_true",
                        help="train every run in this process (default: each in a fresh one, for its own peak RSS)")
    parser.add_argument("--child-run", help=argparse.SUPPRESS)  # one run for run_in_fresh_process, as JSON
    args = parser.parse_args(argv)
    if args.child_run:
        print(json.dumps(child_run(json.loads(args.child_run))), flush=True)
        return []
    if args.list:
        for name, block in BLOCKS.items():
            print(f"block {name}: {block}")
        for name, row in ROWS.items():
            print(f"row {name}: {row}")
        return []
    seeds = tuple(int(seed) for seed in args.seeds.split(","))
    output = pathlib.Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    path = output / RESULT_FILE
    if args.analysis:
        return add_analysis(path)
    for block_name in args.blocks.split(","):
        block = BLOCKS[block_name]
        data = load_block(block)
        _SOURCE_MODELS.clear()
        log = lambda message: print(f"[long_history] {block_name}: {message}", flush=True)  # noqa: E731
        log(f"{data.sizes}")
        header = block_header(data)
        checkpoint = RunCheckpoint(output / RUNS_FILE, header, None if args.same_process else block_name)
        for name in args.encoders.split(","):
            write_block(path, {**header, "encoders": {
                name: run_row(data, name, seeds, log, checkpoint, chosen_by_hisac(path, header))}})
        del data
        gc.collect()
    blocks = read_blocks(path)
    plot(blocks, path.with_suffix(".png"))
    print(f"[long_history] wrote {path} and {path.with_suffix('.png')}")
    return blocks


if __name__ == "__main__":
    main()
