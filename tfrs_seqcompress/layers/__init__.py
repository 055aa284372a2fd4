"""History encoders for TFRS ranking models; all share ``base.HistoryEncoder``'s interface.

Example::

    from tfrs_seqcompress import layers
    encoder = layers.make_encoder("din_last_n", last_n=50)
"""
from __future__ import annotations

from tfrs_seqcompress.layers.attention import TargetAttention, masked_softmax
from tfrs_seqcompress.layers.base import HistoryEncoder
from tfrs_seqcompress.layers.baselines import DINEncoder, MeanPoolingEncoder, SimHardEncoder
from tfrs_seqcompress.layers.composed import HiSACTokenEncoder
from tfrs_seqcompress.layers.hisac import (GlobalClusterEncoder, HierarchicalVoting, HiSACEncoder, SemanticIds,
                                           SoftRoutingAttention)
from tfrs_seqcompress.layers.iat import IATEncoder, SourceInstanceTransformer, TokenBottleneck
from tfrs_seqcompress.layers.short_term import WithShortTermBase

# Encoder names used by configs, the pipeline and the benchmarks -> (class, default arguments).
ENCODERS = {
    "mean": (MeanPoolingEncoder, {}),
    "din_last_n": (DINEncoder, {"last_n": 20}),
    "din_full": (DINEncoder, {"last_n": None}),
    "sim_hard": (SimHardEncoder, {}),
    "iat": (IATEncoder, {}),  # token_dim comes from the schema (models.build_ranking_model)
    # semantic_ids come from a codebook and item vectors (models.build_ranking_model)
    "global_clusters": (GlobalClusterEncoder, {}),
    "hisac": (HiSACEncoder, {"fanouts": (4, 2)}),
    "hisac_iat": (HiSACTokenEncoder, {"fanouts": (4, 2)}),  # HiSAC routing IAT tokens (layers.composed)
}
# Encoders that read frozen semantic tables (SemanticIds) built from a codebook.
SEMANTIC_ENCODERS = ("global_clusters", "hisac", "hisac_iat")
# Encoders that vote (fanouts, routing temperature): HiSAC and HiSAC over tokens.
VOTING_ENCODERS = ("hisac", "hisac_iat")
# Encoders that read IAT instance tokens (``history_tokens``).
TOKEN_ENCODERS = ("iat", "hisac_iat")


def make_encoder(name: str, **overrides) -> HistoryEncoder:
    """Builds the encoder registered under ``name`` (see ``ENCODERS``), defaults overridden by kwargs.

    Raises:
      ValueError: ``name`` is not registered.
    """
    if name not in ENCODERS:
        raise ValueError(f"Unknown history encoder {name!r}; expected one of {sorted(ENCODERS)}.")
    cls, defaults = ENCODERS[name]
    return cls(**{**defaults, **overrides})


__all__ = ["HistoryEncoder", "TargetAttention", "masked_softmax", "MeanPoolingEncoder", "DINEncoder",
           "SimHardEncoder", "IATEncoder", "SourceInstanceTransformer", "TokenBottleneck", "ENCODERS", "make_encoder",
           "GlobalClusterEncoder", "HierarchicalVoting", "HiSACEncoder", "SemanticIds", "SoftRoutingAttention",
           "SEMANTIC_ENCODERS", "VOTING_ENCODERS", "TOKEN_ENCODERS", "HiSACTokenEncoder", "WithShortTermBase"]
