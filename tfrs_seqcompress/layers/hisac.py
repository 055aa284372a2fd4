"""HiSAC (Hierarchical Sparse Activation Compression) layers, and the global-cluster baseline.

Reference: "HiSAC" (arXiv 2602.21009, 2026); docs/methods.md. The history is compressed into K
interest-agents: items get semantic IDs ``(c1..cH)`` from a global residual codebook
(``tfrs_seqcompress.hisac.codebook``) over *frozen* semantic vectors; the history's codes vote level by
level and the surviving paths are the agents (``HierarchicalVoting``); every event is routed softly
to the agents by semantic distance and each agent averages the routed events' *ranking*
embeddings (``SoftRoutingAttention``); the candidate attends over the K agents. Agents depend on
the history only, so they can be computed once per user offline (``HiSACEncoder.compute_agents``)
and served at O(K) per candidate (``HiSACEncoder.attend_agents``).

Semantic and ranking embeddings are decoupled: ``SemanticIds`` holds the semantic tables as
non-trainable weights (they travel inside a SavedModel), the ranking embeddings come from the
ranking model and are trained.

The method is two composable layers: ``InterestAgents`` (a history -> K agents) and
``AgentAttention`` (a candidate over agents). ``HiSACEncoder`` composes them behind the shared
encoder interface and adds the semantic-ID and time-gap embeddings to the ranking values.

Fallbacks (documented, tested): an event whose item has no semantic vector (ID 0, an ID beyond the
table, or a row marked unknown — e.g. an item newer than the table) neither votes nor is routed;
agents without votes are masked; an empty history gives a zero interest vector.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfrs_seqcompress import registry
from tfrs_seqcompress.hisac.codebook import Codebook, CodebookError
from tfrs_seqcompress.layers import base
from tfrs_seqcompress.layers import chunks
from tfrs_seqcompress.layers.attention import TargetAttention, masked_softmax


@tf.keras.utils.register_keras_serializable(package="tfrs_seqcompress")
class SemanticIds(tf.keras.layers.Layer):
    """Item ID -> semantic ID ``(c1..cH)``, frozen semantic vector, and whether the item is known.

    Built from a fitted ``Codebook`` and the item semantic vectors ``[num_items, semantic_dim]``
    (row i for item ID i; rows of all zeros — such as the padding row 0 — mark unknown items).
    The tables are non-trainable weights; ``get_config`` holds only their shapes and the codebook
    version, so a deserialized layer gets its tables from the saved weights.

    ``call(item_ids [...]) -> (codes [..., H] int32, vectors [..., semantic_dim], known [...] bool)``.

    Example::

        lookup = SemanticIds.from_codebook(codebook, item_vectors)
        codes, vectors, known = lookup(tf.constant([[3, 7, 0]]))
    """

    def __init__(self, num_items: int, semantic_dim: int, level_sizes: Sequence[int], codebook_version: str,
                 item_vectors: np.ndarray | None = None, codewords: Sequence[np.ndarray] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.num_items, self.semantic_dim = int(num_items), int(semantic_dim)
        self.level_sizes, self.codebook_version = tuple(int(size) for size in level_sizes), codebook_version
        if item_vectors is not None and item_vectors.shape != (self.num_items, self.semantic_dim):
            raise ValueError(f"item_vectors must have shape [num_items={self.num_items}, semantic_dim="
                             f"{self.semantic_dim}], got {item_vectors.shape}.")
        self._initial = None
        if item_vectors is not None:
            codebook = Codebook(tuple(codewords))
            known = np.any(item_vectors != 0, axis=1)
            codes = np.where(known[:, None], codebook.assign(item_vectors), 0)
            self._initial = {"item_vectors": item_vectors.astype(np.float32), "item_codes": codes.astype(np.int32),
                             "item_known": known.astype(np.int32)}
            self._initial.update({f"codewords_{h}": level for h, level in enumerate(codebook.codewords)})

    @classmethod
    def from_codebook(cls, codebook: Codebook, item_vectors: np.ndarray, num_items: int | None = None,
                      **kwargs) -> "SemanticIds":
        """The tables of every item: ``item_vectors`` is the *whole* table, row i for item ID i.

        Raises:
          CodebookError: vectors of another dim than the codebook's, not finite, a padding row 0
            that is not all zeros (the usual sign of a table without it, e.g. ``vectors[known]``,
            which would give every item its neighbour's semantic ID), or ``num_items`` rows expected.
        """
        item_vectors = np.asarray(item_vectors, np.float32)
        if item_vectors.ndim != 2 or item_vectors.shape[1] != codebook.dim:
            raise CodebookError(f"item_vectors have shape {item_vectors.shape}; the codebook expects [num_items, "
                                f"{codebook.dim}].")
        if num_items is not None and len(item_vectors) != num_items:
            raise CodebookError(f"item_vectors have {len(item_vectors)} rows; expected num_items = {num_items} "
                                "(row i holds item ID i's vector).")
        if not np.isfinite(item_vectors).all():
            raise CodebookError("item_vectors contain NaN or infinity.")
        if len(item_vectors) == 0 or np.any(item_vectors[0] != 0):
            raise CodebookError("item_vectors row 0 (the padding item) must be all zeros: pass the whole table with "
                                "row i for item ID i (not only the known rows, which would shift every item's "
                                "semantic ID to its neighbour's).")
        return cls(len(item_vectors), codebook.dim, codebook.level_sizes, codebook.version,
                   item_vectors=item_vectors, codewords=codebook.codewords, **kwargs)

    def build(self, input_shape):
        def table(name, shape, dtype):
            initial = self._initial[name] if self._initial else np.zeros(shape, dtype)
            return self.add_weight(name=name, shape=shape, dtype=dtype, trainable=False,
                                   initializer=tf.keras.initializers.Constant(initial))

        self.item_vectors = table("item_vectors", (self.num_items, self.semantic_dim), "float32")
        self.item_codes = table("item_codes", (self.num_items, len(self.level_sizes)), "int32")
        self.item_known = table("item_known", (self.num_items,), "int32")
        self.codewords = [table(f"codewords_{h}", (size, self.semantic_dim), "float32")
                          for h, size in enumerate(self.level_sizes)]
        super().build(input_shape)

    def call(self, item_ids: tf.Tensor):
        item_ids = tf.cast(item_ids, tf.int64)
        in_table = (item_ids > 0) & (item_ids < self.num_items)
        safe = tf.where(in_table, item_ids, tf.zeros_like(item_ids))
        known = in_table & (tf.gather(self.item_known, safe) > 0)
        return tf.gather(self.item_codes, safe), tf.gather(self.item_vectors, safe), known

    def prototypes(self, paths: tf.Tensor) -> tf.Tensor:
        """``paths [..., h]`` codes -> ``[..., semantic_dim]``: the sum of the codewords on each path."""
        return tf.add_n([tf.gather(self.codewords[level], paths[..., level]) for level in range(paths.shape[-1])])

    def check_codebook(self, codebook: Codebook) -> None:
        """Raises ``CodebookError`` unless ``codebook`` is the one these tables were built from."""
        codebook.check(expected_version=self.codebook_version, expected_level_sizes=self.level_sizes,
                       expected_dim=self.semantic_dim)

    def get_config(self):
        return {**super().get_config(), "num_items": self.num_items, "semantic_dim": self.semantic_dim,
                "level_sizes": list(self.level_sizes), "codebook_version": self.codebook_version}


@tf.keras.utils.register_keras_serializable(package="tfrs_seqcompress")
class HierarchicalVoting(tf.keras.layers.Layer):
    """HiSAC's hierarchical voting: the history's semantic IDs elect K = prod(fanouts) interest-agents.

    Every real event votes for its path; a node's votes are its events'. Level 1 keeps the
    ``fanouts[0]`` most-voted codes; level h keeps, under every surviving parent, its
    ``fanouts[h]`` most-voted children. Ties go to the lower code. Padded or unknown events
    never vote; a surviving path without votes is masked (so K may exceed the distinct codes).

    Attributes:
      level_sizes: codes per level of the codebook (H levels).
      fanouts: children kept per surviving node at each level (each <= its level size).

    ``call(codes [B, L, H] int, mask [B, L]) -> (paths [B, K, H] int32, votes [B, K] float32,
    agent_mask [B, K] bool)``; votes are event counts (normalise with ``agent_weights``).
    """

    def __init__(self, level_sizes: Sequence[int], fanouts: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        not_integers = [value for value in (*level_sizes, *fanouts) if int(value) != value or isinstance(value, bool)]
        if not_integers:
            raise ValueError(f"fanouts {tuple(fanouts)} and level sizes {tuple(level_sizes)} must be integers; got "
                             f"{not_integers} (nothing is rounded).")
        self.level_sizes, self.fanouts = tuple(int(s) for s in level_sizes), tuple(int(f) for f in fanouts)
        if len(self.fanouts) != len(self.level_sizes):
            raise ValueError(f"fanouts {self.fanouts} must give one fan-out per codebook level {self.level_sizes}.")
        too_wide = [h + 1 for h, (f, s) in enumerate(zip(self.fanouts, self.level_sizes)) if not 1 <= f <= s]
        if too_wide:
            raise ValueError(f"fanouts {self.fanouts}: level(s) {too_wide} keep more children than the level has "
                             f"codes ({self.level_sizes}) or fewer than 1.")

    @property
    def num_agents(self) -> int:
        return int(np.prod(self.fanouts))

    def call(self, codes: tf.Tensor, mask: tf.Tensor):
        codes = tf.cast(codes, tf.int32)
        votes_of_event = tf.cast(tf.cast(mask, tf.bool), tf.float32)                     # [B, L]
        counts = tf.einsum("bl,blk->bk", votes_of_event, tf.one_hot(codes[..., 0], self.level_sizes[0]))
        votes, top = tf.math.top_k(counts, k=self.fanouts[0])                                # [B, S]
        paths = top[..., None]                                                               # [B, S, 1]
        for level in range(1, len(self.level_sizes)):
            under = tf.reduce_all(tf.equal(codes[:, :, None, :level], paths[:, None, :, :]), axis=-1)  # [B, L, S]
            under = tf.cast(under, tf.float32) * votes_of_event[..., None]
            child = tf.one_hot(codes[..., level], self.level_sizes[level])                  # [B, L, K_h]
            votes, children = tf.math.top_k(tf.einsum("bls,blk->bsk", under, child), k=self.fanouts[level])
            parents = tf.repeat(paths, self.fanouts[level], axis=1)                          # [B, S * f, h]
            paths = tf.concat([parents, tf.reshape(children, [tf.shape(codes)[0], -1, 1])], axis=-1)
            votes = tf.reshape(votes, [tf.shape(codes)[0], -1])
        return paths, votes, votes > 0

    def get_config(self):
        return {**super().get_config(), "level_sizes": list(self.level_sizes), "fanouts": list(self.fanouts)}


def agent_weights(votes: tf.Tensor, agent_mask: tf.Tensor) -> tf.Tensor:
    """Votes normalised over a history's agents (``[B, K]``; all zeros for an empty history)."""
    votes = votes * tf.cast(agent_mask, votes.dtype)
    return tf.math.divide_no_nan(votes, tf.reduce_sum(votes, axis=-1, keepdims=True))


def squared_distances(points: tf.Tensor, prototypes: tf.Tensor) -> tf.Tensor:
    """``||s_l - p_k||^2`` for ``points [B, L, d]`` and ``prototypes [B, K, d]`` -> ``[B, L, K]``.

    Expanded as ``||s||^2 - 2 s.p + ||p||^2`` (one batched matmul) rather than through the
    ``[B, L, K, d]`` differences (128 M floats for a 100-row request at L = 10,000; the speed-up is
    measured by ``benchmarks/hot_path.py``). Clipped at 0 against rounding."""
    cross = tf.einsum("bld,bkd->blk", points, prototypes)
    point_norms = tf.reduce_sum(tf.square(points), axis=-1)[..., None]            # [B, L, 1]
    prototype_norms = tf.reduce_sum(tf.square(prototypes), axis=-1)[:, None, :]   # [B, 1, K]
    return tf.maximum(point_norms - 2.0 * cross + prototype_norms, 0.0)


STATISTIC_BUCKETS = 16
# Events SoftRoutingAttention routes at a time: 32 MB of routing weights at B = 64, K = 256.
ROUTING_CHUNK_SIZE = 512
# A codebook whose items sit exactly on their codewords (error 0) routes as hard assignment.
MIN_TEMPERATURE = 1e-6


def default_temperature(codebook: Codebook, scale: float | None = None) -> float:
    """``scale`` (default ``registry.HISAC_TEMPERATURE_SCALE``, where the default is chosen and on
    what evidence) times the codebook's level-1 error (1.0 when it has no statistics)."""
    scale = registry.HISAC_TEMPERATURE_SCALE if scale is None else scale
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"The routing temperature scale must be a positive number, got {scale}.")
    errors = codebook.statistics.get("quantisation_error") if codebook.statistics else None
    if not errors:
        return 1.0
    return max(scale * float(errors[0]), MIN_TEMPERATURE)


def own_leaf_share(codebook: Codebook, item_vectors: np.ndarray, temperature: float, chunk: int = 4096) -> float:
    """How sharply soft routing at ``temperature`` follows the codebook: the mean routing weight an
    item sends to its own leaf when every leaf of the codebook is a live agent (label-free: the
    codebook and the item vectors only; rows of all zeros are left out). 1.0 is hard assignment;
    a low share means each agent mixes in its neighbours' events.

    Example::

        own_leaf_share(codebook, item_vectors, default_temperature(codebook))   # e.g. 0.89
    """
    vectors = np.asarray(item_vectors, np.float64)
    vectors = vectors[np.any(vectors != 0, axis=1)]
    codes = codebook.assign(vectors)
    leaves, own = np.unique(codes, axis=0, return_inverse=True)
    prototypes = codebook.reconstruct(leaves).astype(np.float64)
    shares, prototype_norms = [], (prototypes ** 2).sum(axis=1)
    for start in range(0, len(vectors), chunk):
        points = vectors[start:start + chunk]
        distances = np.maximum((points ** 2).sum(axis=1)[:, None] - 2 * points @ prototypes.T + prototype_norms, 0.0)
        logits = -(distances - distances.min(axis=1, keepdims=True)) / temperature
        weights = np.exp(logits)
        shares.append(weights[np.arange(len(weights)), own.reshape(-1)[start:start + chunk]] / weights.sum(axis=1))
    return float(np.concatenate(shares).mean())


def temperature_for_share(codebook: Codebook, item_vectors: np.ndarray, share: float,
                          iterations: int = 40) -> float:
    """The routing temperature at which items keep ``share`` of their weight in their own leaf
    (``own_leaf_share``; a bisection over log-temperature between 1e-6 and 1e6 times the level-1
    error): a label-free way to set how sharply agents follow the codebook.

    Raises:
      ValueError: ``share`` outside (0, 1).
    """
    if not 0.0 < share < 1.0:
        raise ValueError(f"share must be strictly between 0 and 1, got {share!r}.")
    errors = codebook.statistics.get("quantisation_error") if codebook.statistics else None
    scale = float(errors[0]) if errors and errors[0] > 0 else 1.0
    low, high = np.log(1e-6 * scale), np.log(1e6 * scale)   # the share falls as the temperature rises
    for _ in range(iterations):
        middle = (low + high) / 2
        if own_leaf_share(codebook, item_vectors, float(np.exp(middle))) > share:
            low = middle
        else:
            high = middle
    return max(float(np.exp((low + high) / 2)), MIN_TEMPERATURE)


def checked_temperature(temperature: float) -> float:
    """``temperature`` as a float, refused unless it is a finite number > 0 (a routing softmax's)."""
    if not isinstance(temperature, (int, float, np.floating)) or not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}.")
    return float(temperature)


def log_buckets(values: tf.Tensor, buckets: int = STATISTIC_BUCKETS) -> tf.Tensor:
    """``floor(2 * log2(1 + values))`` clipped to ``[0, buckets)`` (negative values count as 0): the
    bucket of an agent's routed event mass or of a candidate's scaled distance to an agent."""
    values = tf.maximum(tf.cast(values, tf.float32), 0.0)
    return tf.cast(tf.minimum(tf.floor(2.0 * tf.math.log1p(values) / tf.math.log(2.0)), buckets - 1), tf.int32)


@tf.keras.utils.register_keras_serializable(package="tfrs_seqcompress")
class SoftRoutingAttention(tf.keras.layers.Layer):
    """HiSAC's Soft-Routing Attention: events are routed softly to agents by semantic distance.

    Event l goes to agent k with weight ``softmax_k(-||s_l - p_k||^2 / temperature)`` over the
    live agents (``s``: the event's frozen semantic vector, ``p``: the agent's prototype); agent k's
    vector is the routing-weighted mean of *all* events' ranking embeddings ``v``. A lower
    temperature approaches hard assignment. Padded or unknown events are routed nowhere.

    A history longer than ``chunk_size`` (or of unknown length) is routed ``chunk_size`` events at
    a time, forward and backward, so the whole ``[B, L, K]`` routing weights never exist at once
    (655 MB at B = 64, L = 10,000, K = 256): memory grows with the chunk, not with L. Only the
    ranking values get a gradient: the semantic vectors and the prototypes are the frozen
    semantic space's.

    Attributes:
      temperature: the routing softmax temperature (> 0).
      chunk_size: events routed at a time (the result does not depend on it, up to float rounding).

    ``call(semantic [B, L, ds], values [B, L, D], mask [B, L], prototypes [B, K, ds],
    agent_mask [B, K]) -> agent_vectors [B, K, D]`` (zeros for an agent nothing is routed to).

    Example::

        routing = SoftRoutingAttention(temperature=0.1)
        agent_vectors = routing(semantic, values, mask, prototypes, agent_mask)   # [B, K, D]
    """

    def __init__(self, temperature: float = 1.0, chunk_size: int = ROUTING_CHUNK_SIZE, **kwargs):
        super().__init__(**kwargs)
        self.temperature, self.chunk_size = checked_temperature(temperature), chunks.checked_size(chunk_size)

    def routing_weights(self, semantic, mask, prototypes, agent_mask) -> tf.Tensor:
        """``[B, L, K]``: each real event's distribution over the live agents.

        The logits are ``-||s - p||^2 / temperature`` plus the event's own ``||s||^2 / temperature``,
        which a softmax over the agents ignores: ``(2 s.p - ||p||^2) / temperature``, one matmul and
        one add per weight (this is the hot loop of HiSAC at long L). A dead agent's logit is the
        dtype's lowest (its prototype zeroed first, whatever it held)."""
        live = tf.cast(agent_mask, tf.bool)
        prototypes = tf.where(live[..., None], prototypes, tf.zeros_like(prototypes))
        offsets = tf.where(live, -tf.reduce_sum(tf.square(prototypes), axis=-1) / self.temperature,
                           prototypes.dtype.min)                                           # [B, K]
        logits = tf.einsum("bld,bkd->blk", semantic, prototypes * (2.0 / self.temperature)) + offsets[:, None, :]
        routed = tf.cast(mask, tf.bool) & tf.reduce_any(live, axis=-1, keepdims=True)       # [B, L]
        return tf.nn.softmax(logits, axis=-1) * tf.cast(routed, logits.dtype)[..., None]

    def call(self, semantic, values, mask, prototypes, agent_mask) -> tf.Tensor:
        return self.route(semantic, values, mask, prototypes, agent_mask)[0]

    def route(self, semantic, values, mask, prototypes, agent_mask) -> tuple[tf.Tensor, tf.Tensor]:
        """``(agent_vectors [B, K, D], routed_mass [B, K])``: the mass is the number of events an
        agent received (the sum of their routing weights), what the routed mean hides."""
        sums, totals = self._routed_sums(tf.stop_gradient(semantic), values, tf.cast(mask, tf.bool),
                                         tf.stop_gradient(prototypes), agent_mask)
        return tf.math.divide_no_nan(sums, totals[..., None]), totals

    def _routed_sums(self, semantic, values, mask, prototypes, agent_mask) -> tuple[tf.Tensor, tf.Tensor]:
        """``(sum_l w_lk v_l [B, K, D], sum_l w_lk [B, K])`` chunk by chunk; the gradient to
        ``values`` recomputes each chunk's weights instead of keeping them. A history whose static
        length fits in one chunk is routed in one piece, with no loop."""
        if values.shape[1] is not None and values.shape[1] <= self.chunk_size:
            w = self.routing_weights(semantic, mask, prototypes, agent_mask)              # [B, L, K]
            return tf.einsum("blk,bld->bkd", w, values), tf.reduce_sum(w, axis=1)
        size = self.chunk_size
        count = chunks.count(tf.shape(values)[1], size)

        def weights(i):                                                                    # [B, size, K]
            return self.routing_weights(chunks.take(semantic, i, size), chunks.take(mask, i, size), prototypes,
                                        agent_mask)

        @tf.custom_gradient
        def sums_of(values):
            kept_by_no_tape = tf.stop_gradient(values)   # eager tapes too: the gradient recomputes the weights
            totals = tf.zeros(tf.shape(agent_mask), values.dtype)                         # [B, K]
            sums = tf.zeros(tf.concat([tf.shape(agent_mask), tf.shape(values)[2:]], axis=0), values.dtype)

            def add_chunk(i, sums, totals):
                w = weights(i)
                return (i + 1, sums + tf.einsum("blk,bld->bkd", w, chunks.take(kept_by_no_tape, i, size)),
                        totals + tf.reduce_sum(w, axis=1))

            sums, totals = chunks.loop(count, add_chunk, (sums, totals))

            def gradient(d_sums, d_totals):   # the totals do not depend on the values
                def value_gradient(i, written):
                    return i + 1, written.write(i, tf.einsum("blk,bkd->lbd", weights(i), d_sums))

                written, = chunks.loop(count, value_gradient, (chunks.pieces(values.dtype, count),))
                return chunks.joined(written, values.shape)                               # [B, L, D]

            return (sums, totals), gradient

        return sums_of(values)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "chunk_size": self.chunk_size}


@tf.keras.utils.register_keras_serializable(package="tfrs_seqcompress")
class InterestAgents(tf.keras.layers.Layer):
    """HiSAC's first half: a history -> K interest-agents (they depend on the history only, so
    they can be computed once per user, offline).

    The history's semantic IDs elect the agents (``HierarchicalVoting``); every event is routed
    softly to them by semantic distance and each agent is the routed mean of the events' ranking
    values (``SoftRoutingAttention``). With ``statistics`` each agent also carries what a mean
    hides: the embedding of its routed event mass (a log bucket) is added to its value, and its
    prototype (the semantic point ``AgentAttention`` routes a candidate to) is appended.

    Attributes:
      semantic_ids: the frozen ``SemanticIds`` tables (their codewords give the prototypes).
      fanouts: children kept per level by the voting (K = prod(fanouts) agents); None (the
        default): every leaf of the codebook (``registry.HISAC_FANOUTS``).
      temperature: the soft-routing temperature.
      statistics: add the mass embedding and append the prototypes (HiSAC's candidate routing).
      routing_chunk_size: events routed at a time (``SoftRoutingAttention.chunk_size``): smaller
        lowers the peak memory of long histories; the result does not depend on it.

    ``call({"codes": [B, L, H] int, "semantic": [B, L, ds], "values": [B, L, D], "mask": [B, L]})
    -> {"agent_vectors": [B, K, D (+ ds)], "agent_mask": [B, K] bool, "agent_weights": [B, K]
    (vote shares), "agent_paths": [B, K, H]}``; ``codes`` and ``semantic`` come from
    ``semantic_ids(history_item_id)``, and ``mask`` should leave out events it marks unknown.

    Example::

        codes, semantic, known = semantic_ids(history_item_id)
        agents = InterestAgents(semantic_ids, fanouts=(16, 8), temperature=t)(
            {"codes": codes, "semantic": semantic, "values": history_values, "mask": history_mask & known})
    """

    def __init__(self, semantic_ids: SemanticIds | dict, fanouts: Sequence[int] | None = registry.HISAC_FANOUTS,
                 temperature: float = 1.0, statistics: bool = True, routing_chunk_size: int = ROUTING_CHUNK_SIZE,
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(semantic_ids, dict):
            semantic_ids = tf.keras.layers.deserialize(semantic_ids)
        self.semantic_ids = semantic_ids
        self.voting = HierarchicalVoting(semantic_ids.level_sizes, semantic_ids.level_sizes if fanouts is None else fanouts)
        self.routing = SoftRoutingAttention(temperature, chunk_size=routing_chunk_size)
        self.fanouts, self.temperature, self.statistics = self.voting.fanouts, float(temperature), bool(statistics)

    @property
    def num_agents(self) -> int:
        return self.voting.num_agents

    def build(self, input_shape):
        if self.statistics:
            self.mass_embedding = tf.keras.layers.Embedding(STATISTIC_BUCKETS, int(input_shape["values"][-1]),
                                                            name="agent_mass_embedding")
        super().build(input_shape)

    def call(self, inputs: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        mask = tf.cast(inputs["mask"], tf.bool)
        paths, votes, agent_mask = self.voting(inputs["codes"], mask)
        prototypes = self.semantic_ids.prototypes(paths)
        vectors, mass = self.routing.route(inputs["semantic"], inputs["values"], mask, prototypes, agent_mask)
        if self.statistics:
            vectors = tf.concat([vectors + self.mass_embedding(log_buckets(mass)), prototypes], axis=-1)
        return {"agent_vectors": vectors, "agent_mask": agent_mask, "agent_weights": agent_weights(votes, agent_mask),
                "agent_paths": paths}

    def get_config(self):
        return {**super().get_config(), "semantic_ids": tf.keras.layers.serialize(self.semantic_ids),
                "fanouts": list(self.fanouts), "temperature": self.temperature, "statistics": self.statistics,
                "routing_chunk_size": self.routing.chunk_size}


@tf.keras.utils.register_keras_serializable(package="tfrs_seqcompress")
class AgentAttention(tf.keras.layers.Layer):
    """HiSAC's second half: a candidate attends over precomputed agents, at O(K) per candidate.

    Without candidate routing the agents' vote shares are the attention's prior (weights
    ``∝ votes * exp(score)``): before the scorer has learnt anything the interest is the
    vote-weighted mean of the agents. With it (agents from ``InterestAgents(statistics=True)``:
    ``[ranking vector (D) | prototype (ds)]``) the candidate is routed in the same frozen semantic
    space as the history, ``r_k = softmax_k(-||s_c - p_k||^2 / temperature)`` over the live
    agents, ``r`` is the prior, and each agent's value gets the embedding of the candidate's
    scaled distance bucket (is this the candidate's interest at all, or only the nearest one). A
    candidate without a semantic vector falls back to the vote shares.

    Attributes:
      temperature: the candidate's routing temperature (the history's).
      hidden_units: the attention MLP.
      candidate_routing: route the candidate as described above.

    ``call({"agent_vectors": [B, K, A], "agent_mask": [B, K], "agent_weights": [B, K],
    "query": [B, D], "candidate_semantic": [B, ds], "candidate_known": [B] bool}) -> [B, D]``;
    the query is the candidate's ranking embedding (plus, in HiSAC, its semantic-ID embedding).

    Example::

        _, candidate_semantic, candidate_known = semantic_ids(candidate_item_id)
        interest = AgentAttention(temperature=t)({**agents, "query": candidate_embedding,
                                                  "candidate_semantic": candidate_semantic,
                                                  "candidate_known": candidate_known})
    """

    def __init__(self, temperature: float = 1.0, hidden_units: Sequence[int] = (64, 32),
                 candidate_routing: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.temperature, self.hidden_units = checked_temperature(temperature), tuple(hidden_units)
        self.candidate_routing = bool(candidate_routing)
        self.attention = TargetAttention(self.hidden_units)

    def build(self, input_shape):
        if self.candidate_routing:
            self.match_embedding = tf.keras.layers.Embedding(STATISTIC_BUCKETS, int(input_shape["query"][-1]),
                                                             name="candidate_match_embedding")
        super().build(input_shape)

    def call(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        vectors, live, query = inputs["agent_vectors"], tf.cast(inputs["agent_mask"], tf.bool), inputs["query"]
        votes = inputs["agent_weights"]
        if not self.candidate_routing:
            return self.attention(vectors, live, query, prior=votes)
        dim = query.shape[-1]
        vectors, prototypes = vectors[..., :dim], vectors[..., dim:]
        known = tf.cast(inputs["candidate_known"], tf.bool)
        scaled = squared_distances(inputs["candidate_semantic"][:, None, :], prototypes)[:, 0, :] / self.temperature
        routing = masked_softmax(-scaled, live)
        prior = tf.where(known[:, None], routing, tf.cast(votes, routing.dtype))
        match = tf.where(known[:, None], log_buckets(scaled), STATISTIC_BUCKETS - 1)
        return self.attention(vectors + self.match_embedding(match), live, query, prior=prior)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "hidden_units": list(self.hidden_units),
                "candidate_routing": self.candidate_routing}


class _SemanticEncoder(base.HistoryEncoder):
    """Shared by HiSAC and the global-cluster baseline: owns the frozen ``SemanticIds`` tables, the
    trainable semantic-ID embeddings and the ``AgentAttention`` (``agent_scorer``) subclasses make."""

    required_inputs = base.HistoryEncoder.required_inputs + (base.HISTORY_ITEM_ID, base.CANDIDATE_ITEM_ID)

    def __init__(self, semantic_ids: SemanticIds | dict, hidden_units: Sequence[int] = (64, 32), **kwargs):
        super().__init__(**kwargs)
        if isinstance(semantic_ids, dict):
            semantic_ids = tf.keras.layers.deserialize(semantic_ids)
        self.semantic_ids = semantic_ids
        self.hidden_units = tuple(hidden_units)

    def build(self, input_shape):
        dim = int(input_shape[base.CANDIDATE_EMBEDDING][-1])
        self.time_gap_embedding = tf.keras.layers.Embedding(base.TIME_GAP_BUCKETS, dim, name="time_gap_embedding")
        self.code_embeddings = [tf.keras.layers.Embedding(size, dim, name=f"code_embedding_{level}")
                                for level, size in enumerate(self.semantic_ids.level_sizes)]
        super().build(input_shape)

    def ensure_built(self, dim: int) -> None:
        """Builds the trainable parts when ``compute_agents`` / ``attend_agents`` come before any call."""
        if not self.built:
            self.build({base.CANDIDATE_EMBEDDING: tf.TensorShape([None, dim])})

    def code_embedding(self, codes: tf.Tensor, known: tf.Tensor) -> tf.Tensor:
        """``[..., D]`` trainable embedding of a semantic ID (sum over levels; zero when unknown).

        The IDs are frozen, their embeddings are ranking parameters: items sharing a path share
        them, which is how a candidate finds the agent of its own interest."""
        embedded = tf.add_n([embedding(codes[..., level]) for level, embedding in enumerate(self.code_embeddings)])
        return embedded * tf.cast(known, embedded.dtype)[..., None]

    def ranking_values(self, inputs: Mapping[str, tf.Tensor], codes: tf.Tensor, known: tf.Tensor) -> tf.Tensor:
        """The events' ranking embeddings plus their semantic-ID embedding and their time-decay
        embedding (when a time gap is given)."""
        values = inputs[base.HISTORY_EMBEDDINGS] + self.code_embedding(codes, known)
        if base.HISTORY_TIME_GAP in inputs:
            values += self.time_gap_embedding(base.time_gap_buckets(inputs[base.HISTORY_TIME_GAP]))
        return values

    def check_codebook(self, codebook: Codebook) -> None:
        self.semantic_ids.check_codebook(codebook)

    def agent_dim(self, ranking_dim: int) -> int:
        """The width of one precomputed agent vector for ranking embeddings of width ``ranking_dim``."""
        return ranking_dim

    def attend_agents(self, agent_vectors: tf.Tensor, agent_mask: tf.Tensor, agent_weights: tf.Tensor,
                      candidate_embedding: tf.Tensor, candidate_item_id: tf.Tensor) -> tf.Tensor:
        """O(K) per candidate: the candidate (ranking embedding + semantic-ID embedding) attends
        over ``agent_vectors [B, K, agent_dim]`` through ``agent_scorer`` -> ``[B, D]``."""
        self.ensure_built(candidate_embedding.shape[-1])
        codes, semantic, known = self.semantic_ids(candidate_item_id)
        return self.agent_scorer({"agent_vectors": agent_vectors, "agent_mask": agent_mask,
                                  "agent_weights": agent_weights,
                                  "query": candidate_embedding + self.code_embedding(codes, known),
                                  "candidate_semantic": semantic, "candidate_known": known})

    def encode(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        agents = self.compute_agents(inputs)
        return self.attend_agents(agents["agent_vectors"], agents["agent_mask"], agents["agent_weights"],
                                  inputs[base.CANDIDATE_EMBEDDING], inputs[base.CANDIDATE_ITEM_ID])

    def get_config(self):
        return {**super().get_config(), "semantic_ids": tf.keras.layers.serialize(self.semantic_ids),
                "hidden_units": list(self.hidden_units)}


@tf.keras.utils.register_keras_serializable(package="tfrs_seqcompress")
class HiSACEncoder(_SemanticEncoder):
    """HiSAC through the shared encoder interface: ``InterestAgents`` (voting -> soft routing)
    then ``AgentAttention`` (the candidate over the agents).

    Inputs (besides ``history_embeddings`` ``[B, L, D]``, ``history_mask``, ``candidate_embedding``
    ``[B, D]``): ``history_item_id`` ``[B, L]`` and ``candidate_item_id`` ``[B]`` (looked up in the
    frozen semantic tables; their semantic IDs get trainable embeddings, so a candidate finds the
    agent of its own interest) and, optionally, ``history_time_gap`` ``[B, L]`` (the time-decay
    signal added to the ranking values).

    Candidate routing (``candidate_routing=True``; our design where the paper only says that the
    candidate attends over the agents): the candidate is routed in the same frozen semantic space
    as the history and its routing weights are the prior of its attention over the agents, and
    each agent carries its event mass and the candidate's distance to it (``InterestAgents``,
    ``AgentAttention``). The precomputed agent vector then holds ``[ranking vector (D) |
    prototype (semantic_dim)]``. Without candidate routing the prior is the agents' vote shares.

    Attributes:
      semantic_ids: the frozen ``SemanticIds`` tables (built from a codebook).
      fanouts: children kept per level by the voting (K = prod(fanouts) agents); None (the
        default): every leaf of the codebook (``registry.HISAC_FANOUTS``).
      temperature: the soft-routing temperature (history and candidate alike).
      hidden_units: the candidate-over-agents attention MLP.
      candidate_routing: route the candidate as described above.
      routing_chunk_size: history events routed at a time (smaller: lower peak memory at long L,
        the same result up to float rounding).

    Returns ``[B, D]``. ``compute_agents`` gives the history's agents alone (``agent_vectors``
    ``[B, K, agent_dim(D)]``, ``agent_mask``, ``agent_weights``, ``agent_paths``),
    ``attend_agents`` scores a candidate against precomputed agents: the same interest as
    ``encode``, at O(K) per candidate.

    Example::

        known = semantic.known_rows(item_vectors)               # row i = item ID i; row 0 padding
        codebook = fit_residual_kmeans(item_vectors[known], (32, 8), keys=known)
        encoder = HiSACEncoder.from_codebook(codebook, item_vectors, fanouts=(16, 8))
        interest = encoder({"history_embeddings": h, "history_mask": m, "candidate_embedding": c,
                            "history_item_id": ids, "candidate_item_id": candidate_ids})
    """

    def __init__(self, semantic_ids: SemanticIds | dict, fanouts: Sequence[int] | None = registry.HISAC_FANOUTS,
                 temperature: float = 1.0, hidden_units: Sequence[int] = (64, 32), candidate_routing: bool = True,
                 routing_chunk_size: int = ROUTING_CHUNK_SIZE, **kwargs):
        super().__init__(semantic_ids, hidden_units, **kwargs)
        self.candidate_routing = bool(candidate_routing)
        self.interest_agents = InterestAgents(self.semantic_ids, fanouts, temperature,
                                              statistics=self.candidate_routing, routing_chunk_size=routing_chunk_size,
                                              name="interest_agents")
        self.agent_scorer = AgentAttention(temperature, self.hidden_units, self.candidate_routing, name="agent_attention")
        self.fanouts, self.temperature = self.interest_agents.fanouts, float(temperature)

    @classmethod
    def from_codebook(cls, codebook: Codebook, item_vectors: np.ndarray, temperature: float | None = None,
                      **kwargs) -> "HiSACEncoder":
        """An encoder over ``codebook`` and the *whole* item-vector table (row i = item ID i), with the
        default routing temperature (``default_temperature``) unless one is given.

        Example::

            codebook = fit_residual_kmeans(vectors[known], (32, 8), keys=known)
            encoder = HiSACEncoder.from_codebook(codebook, vectors, fanouts=(16, 8))
        """
        return cls(SemanticIds.from_codebook(codebook, item_vectors),
                   temperature=default_temperature(codebook) if temperature is None else temperature, **kwargs)

    @property
    def num_agents(self) -> int:
        return self.interest_agents.num_agents

    def agent_dim(self, ranking_dim: int) -> int:
        return ranking_dim + (self.semantic_ids.semantic_dim if self.candidate_routing else 0)

    def compute_agents(self, inputs: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        self.ensure_built(inputs[base.CANDIDATE_EMBEDDING].shape[-1])
        codes, semantic, known = self.semantic_ids(inputs[base.HISTORY_ITEM_ID])
        mask = tf.cast(inputs[base.HISTORY_MASK], tf.bool) & known
        return self.interest_agents({"codes": codes, "semantic": semantic, "mask": mask,
                                     "values": self.ranking_values(inputs, codes, mask)})

    def get_config(self):
        return {**super().get_config(), "fanouts": list(self.fanouts), "temperature": self.temperature,
                "candidate_routing": self.candidate_routing,
                "routing_chunk_size": self.interest_agents.routing.chunk_size}

    @classmethod
    def from_config(cls, config):
        # A config saved before candidate routing existed describes an encoder without it.
        return cls(**{"candidate_routing": False, **config})


@tf.keras.utils.register_keras_serializable(package="tfrs_seqcompress")
class GlobalClusterEncoder(_SemanticEncoder):
    """Multi-interest baseline (the paper's K-Means): hard assignment to the nearest global centroid.

    Uses only the codebook's first level: each event belongs to the cluster of its level-1 code;
    a cluster's agent is the mean ranking value of its events; the candidate attends over the
    clusters present in the history. No hierarchy, no voting budget, no soft routing — what HiSAC
    adds on top is measured against this.

    ``semantic_ids``'s level 1 gives the clusters (fit a 1-level codebook with K codes for K
    clusters). Inputs as ``HiSACEncoder``; returns ``[B, D]``.
    """

    def __init__(self, semantic_ids: SemanticIds | dict, hidden_units: Sequence[int] = (64, 32), **kwargs):
        super().__init__(semantic_ids, hidden_units, **kwargs)
        self.agent_scorer = AgentAttention(hidden_units=self.hidden_units, candidate_routing=False,
                                           name="agent_attention")

    @property
    def num_agents(self) -> int:
        return self.semantic_ids.level_sizes[0]

    def compute_agents(self, inputs: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        self.ensure_built(inputs[base.CANDIDATE_EMBEDDING].shape[-1])
        codes, _, known = self.semantic_ids(inputs[base.HISTORY_ITEM_ID])
        mask = tf.cast(inputs[base.HISTORY_MASK], tf.bool) & known
        values = self.ranking_values(inputs, codes, mask)
        membership = tf.one_hot(codes[..., 0], self.num_agents) * tf.cast(mask, tf.float32)[..., None]  # [B, L, K]
        counts = tf.reduce_sum(membership, axis=1)
        vectors = tf.math.divide_no_nan(tf.einsum("blk,bld->bkd", membership, values),
                                        counts[..., None])
        return {"agent_vectors": vectors, "agent_mask": counts > 0,
                "agent_weights": agent_weights(counts, counts > 0)}
