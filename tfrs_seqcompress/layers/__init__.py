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
from tfrs_seqcompress.layers.hisac import (AgentAttention, GlobalClusterEncoder, HierarchicalVoting, HiSACEncoder,
                                           InterestAgents, SemanticIds, SoftRoutingAttention)
from tfrs_seqcompress.layers.iat import IATEncoder, SourceInstanceTransformer, TokenBottleneck
from tfrs_seqcompress.layers.short_term import WithShortTermBase

from tfrs_seqcompress import registry

# Encoder names -> (class, default arguments), from the one registry (``tfrs_seqcompress.registry``).
ENCODERS = {name: (globals()[spec.layer], dict(spec.defaults)) for name, spec in registry.ENCODERS.items()}
SEMANTIC_ENCODERS = registry.SEMANTIC_ENCODERS   # read frozen semantic tables (SemanticIds) from a codebook
VOTING_ENCODERS = registry.VOTING_ENCODERS       # vote (fanouts, routing temperature)
TOKEN_ENCODERS = registry.TOKEN_ENCODERS         # read IAT instance tokens (``history_tokens``)


def make_encoder(name: str, **overrides) -> HistoryEncoder:
    """Builds the encoder registered under ``name`` (see ``registry.ENCODERS``), defaults overridden by kwargs.

    Raises:
      ValueError: ``name`` is not registered.
    """
    registry.spec(name)
    cls, defaults = ENCODERS[name]
    return cls(**{**defaults, **overrides})


__all__ = ["HistoryEncoder", "TargetAttention", "masked_softmax", "MeanPoolingEncoder", "DINEncoder",
           "SimHardEncoder", "IATEncoder", "SourceInstanceTransformer", "TokenBottleneck", "ENCODERS", "make_encoder",
           "GlobalClusterEncoder", "HierarchicalVoting", "HiSACEncoder", "SemanticIds", "SoftRoutingAttention",
           "InterestAgents", "AgentAttention",
           "SEMANTIC_ENCODERS", "VOTING_ENCODERS", "TOKEN_ENCODERS", "HiSACTokenEncoder", "WithShortTermBase"]
