"""The one registry of history encoders: names, what each needs, its default arguments (TF-free).

``layers.make_encoder`` builds from it, the pipeline's settings and command line read it (without
importing TensorFlow, so ``--help`` and flag checks stay instant), and a default is written here
once — HiSAC's agent budget and codebook included.

Example::

    from tfrs_seqcompress import registry
    registry.ENCODERS["hisac"].defaults          # {'fanouts': None}: the whole codebook
    registry.TOKEN_ENCODERS                      # ('iat', 'hisac_iat')
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

# HiSAC's defaults: K = prod(HISAC_FANOUTS) agents over a HISAC_CODEBOOK_LEVELS codebook. None: every
# leaf of the codebook is a candidate agent (K = prod(level sizes); a user's agents are the leaves
# their history occupies), the agent budget that won on every long-history benchmark block's
# validation split (K = 8 / 32 / 128 / 256 in the base world: AUC 0.8234 / 0.8353 / 0.8410 / 0.8415;
# the whole (16, 8) codebook on MovieLens-1M).
HISAC_FANOUTS: tuple[int, ...] | None = None
HISAC_CODEBOOK_LEVELS: tuple[int, ...] = (16, 8)
# HiSAC's soft-routing temperature relative to the codebook's level-1 quantisation error (the typical
# squared distance of an item to its level-1 codeword): the scale of least total regret over the
# long-history benchmark's blocks (validation AUC, seed 0; each block's best minus the scale's,
# summed over the synthetic base and fine worlds and MovieLens-1M): 0.05: 0.0172, 0.25: 0.0081,
# 1.0: 0.0113. No scale is best everywhere (0.05 on the synthetic worlds, 1.0 on MovieLens-1M):
# choose it on your validation split (docs/library.md).
HISAC_TEMPERATURE_SCALE: float = 0.25


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    """One registered encoder.

    Attributes:
      name: the registry name (``--encoder``).
      layer: the class name in ``tfrs_seqcompress.layers``.
      defaults: constructor arguments ``make_encoder`` passes unless overridden.
      needs_tokens: reads IAT instance tokens (the pipeline runs ``InstanceCompressor``).
      needs_codebook: reads semantic IDs from a codebook (the pipeline runs ``CodebookFitter``).
      votes: HiSAC's hierarchical voting (fan-outs, routing temperature).
      baseline: reads only the history examples: a yardstick a pipeline candidate can be held to.
    """

    name: str
    layer: str
    defaults: Mapping = dataclasses.field(default_factory=dict)
    needs_tokens: bool = False
    needs_codebook: bool = False
    votes: bool = False
    baseline: bool = False


ENCODERS: dict[str, EncoderSpec] = {spec.name: spec for spec in (
    EncoderSpec("mean", "MeanPoolingEncoder", baseline=True),
    EncoderSpec("din_last_n", "DINEncoder", {"last_n": 20}, baseline=True),
    EncoderSpec("din_full", "DINEncoder", {"last_n": None}, baseline=True),
    EncoderSpec("sim_hard", "SimHardEncoder", baseline=True),
    EncoderSpec("iat", "IATEncoder", needs_tokens=True),  # token_dim comes from the schema
    EncoderSpec("global_clusters", "GlobalClusterEncoder", needs_codebook=True),
    EncoderSpec("hisac", "HiSACEncoder", {"fanouts": HISAC_FANOUTS}, needs_codebook=True, votes=True),
    EncoderSpec("hisac_iat", "HiSACTokenEncoder", {"fanouts": HISAC_FANOUTS}, needs_tokens=True,
                needs_codebook=True, votes=True),
)}
TOKEN_ENCODERS = tuple(name for name, spec in ENCODERS.items() if spec.needs_tokens)
SEMANTIC_ENCODERS = tuple(name for name, spec in ENCODERS.items() if spec.needs_codebook)
VOTING_ENCODERS = tuple(name for name, spec in ENCODERS.items() if spec.votes)
BASELINE_ENCODERS = tuple(name for name, spec in ENCODERS.items() if spec.baseline)


def spec(name: str) -> EncoderSpec:
    """The registered encoder ``name``.

    Raises:
      ValueError: no encoder is registered under ``name``.
    """
    if name not in ENCODERS:
        raise ValueError(f"Unknown history encoder {name!r}; expected one of {sorted(ENCODERS)}.")
    return ENCODERS[name]
