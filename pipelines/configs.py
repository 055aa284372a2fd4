"""Every setting of the pipeline, in one place (TFX template style).

The local runner builds a ``PipelineConfig`` from these defaults and its command-line flags.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib

from tfrs_seqcompress import registry

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

PIPELINE_NAME = "tfrs_seqcompress"
MODEL_NAME = "ranker"
# Encoders a candidate can be compared with: they read only the history examples themselves.
BASELINE_ENCODERS = registry.BASELINE_ENCODERS
# The Trainer's tf.distribute strategies (``trainer_module.distribution_strategy``).
STRATEGIES = ("default", "mirrored", "multi_worker_mirrored")
# Encoders that need InstanceCompressor's tokens / CodebookFitter's codebook (the registry is TF-free).
TOKEN_ENCODERS = registry.TOKEN_ENCODERS
SEMANTIC_ENCODERS = registry.SEMANTIC_ENCODERS


@dataclasses.dataclass
class PipelineConfig:
    """Settings of one pipeline run.

    Attributes:
      data_dir: the directory of interaction-log files ExampleGen reads (CSV, or TFRecord if
        ``data_format == "tfrecord"``), following the data contract.
      event_features, context_features: the log's extra columns (see ``features.DataSchema``).
      history_length: L.
      targets_per_user: rank at most this many of each user's events (seeded draw); 0 ranks all.
      target_column: a 0/1 column of the log marking the events that are ranking targets (the
        others are history only); empty: every event is a target.
      search_window: ``(recent, retrieved)``: each example holds a bounded history of the
        ``recent`` latest events plus the ``retrieved`` latest earlier events of the target's
        category within the last ``history_length`` (SIM's hard search; the model's L is
        ``recent + retrieved``, so IAT's self-attention stays bounded at any L); empty: the last L.
      eval_fraction: the last fraction of the time range used for evaluation.
      split_rule: whose time range: ``"time"``, the log's (one cutoff for everyone), or
        ``"user_time"``, each user's own (``data.history.SPLIT_RULES``); the stage-1 models
        (tokens, codebook) learn from the same training period.
      encoder: a name from ``tfrs_seqcompress.registry.ENCODERS``.
      epochs, batch_size, learning_rate, embedding_dim, seed: training.
      iat_scheme, token_dim, source_epochs: IAT stage 1 (``InstanceCompressor``), used when the
        encoder reads instance tokens (``TOKEN_ENCODERS``: ``iat``, ``hisac_iat``).
      codebook_levels, fanouts, semantic_dim, codebook_iterations: HiSAC (``CodebookFitter``),
        used when the encoder reads semantic IDs (``SEMANTIC_ENCODERS``; ``global_clusters`` uses level 1);
        ``fanouts`` None: every leaf of the codebook is a candidate agent.
      temperature_scale: HiSAC's soft-routing temperature, x the codebook's level-1 error.
      short_term_last_n: N > 0 adds a DIN over the last N events beside the encoder (and beside the
        baseline encoder, so the comparison stays fair): ``layers.WithShortTermBase``, the way both
        papers deploy their module; 0: none. An agent encoder's ``score_with_agents`` requests then
        carry the user's latest N events beside the agents.
      item_vectors_path: the user's item vectors (CSV ``item_id, v0, ...``) the codebook is fitted
        on; empty: a two-tower model's item embeddings from the training period.
      vocabularies_path: the raw-ID vocabularies of the log (``data.raw_ids``), which the Trainer
        bakes into the exported model (its ``serving_default`` then takes raw IDs; the Evaluators
        read ``serving_ids``, over the examples' integer IDs); empty: the log's IDs are integers.
      min_eval_auc, min_eval_gauc: floors on the candidate's eval AUC and GAUC.
      baseline_encoder: a simple encoder (one of ``BASELINE_ENCODERS``) the candidate must not fall
        behind, trained on the same examples (``BaselineTrainer``); ``None`` skips that comparison.
      max_drop_vs_blessed, max_drop_vs_baseline: how far the candidate's AUC and GAUC may fall
        below the last blessed model's / the baseline encoder's (0 = must be at least as good;
        negative = must improve by that much). Only a model passing every check is pushed.
      model_name: pushed to ``saved_models/<model_name>/<version>``.
      strategy: the Trainer's ``tf.distribute`` strategy (one of ``STRATEGIES``):
        ``multi_worker_mirrored`` trains on every worker ``TF_CONFIG`` lists.
      beam_pipeline_args: where Beam steps run (DirectRunner here; Flink/Spark/Dataflow by flags).
    """

    data_dir: str
    event_features: tuple[str, ...] = ()
    context_features: tuple[str, ...] = ()
    data_format: str = "csv"
    history_length: int = 50
    targets_per_user: int = 0   # 0: every event is a ranking target
    target_column: str = ""
    search_window: tuple[int, ...] = ()
    eval_fraction: float = 0.2
    split_rule: str = "time"
    encoder: str = "hisac"  # the main job demonstrates a method: HiSAC, with its codebook and agents
    epochs: int = 2
    batch_size: int = 512
    learning_rate: float = 1e-3
    embedding_dim: int = 16
    seed: int = 0
    iat_scheme: str = "user_order"
    token_dim: int = 16
    source_epochs: int = 2
    codebook_levels: tuple[int, ...] = registry.HISAC_CODEBOOK_LEVELS
    fanouts: tuple[int, ...] | None = registry.HISAC_FANOUTS
    temperature_scale: float = registry.HISAC_TEMPERATURE_SCALE
    short_term_last_n: int = 0
    semantic_dim: int = 16
    codebook_iterations: int = 20
    item_vectors_path: str = ""
    vocabularies_path: str = ""
    strategy: str = "default"
    min_eval_auc: float = 0.55
    min_eval_gauc: float = 0.5
    baseline_encoder: str | None = "mean"
    max_drop_vs_blessed: float = 0.01
    max_drop_vs_baseline: float = 0.01
    pipeline_name: str = PIPELINE_NAME
    model_name: str = MODEL_NAME
    pipeline_root: str = str(REPO_ROOT / "pipeline_root" / PIPELINE_NAME)
    metadata_path: str = str(REPO_ROOT / "tfx_metadata" / PIPELINE_NAME / "metadata.db")
    serving_model_dir: str = str(REPO_ROOT / "saved_models" / MODEL_NAME)
    beam_pipeline_args: tuple[str, ...] = ("--direct_running_mode=multi_processing",
                                           f"--direct_num_workers={min(2, os.cpu_count() or 1)}")

    @property
    def uses_instance_tokens(self) -> bool:
        return self.encoder in TOKEN_ENCODERS

    @property
    def uses_codebook(self) -> bool:
        return self.encoder in SEMANTIC_ENCODERS

    @property
    def writes_agents(self) -> bool:
        """Agent encoders (HiSAC, HiSAC over tokens, global clusters) get an ``AgentWriter`` after the push."""
        return self.encoder in SEMANTIC_ENCODERS

    def trainer_custom_config(self, encoder: str) -> dict:
        """The Trainer's settings for a model with ``encoder`` (the candidate's or the baseline's)."""
        return {"encoder": encoder, "epochs": self.epochs, "batch_size": self.batch_size,
                "learning_rate": self.learning_rate, "embedding_dim": self.embedding_dim, "seed": self.seed,
                "model_name": self.model_name, "fanouts": list(self.fanouts) if self.fanouts else None,
                "temperature_scale": self.temperature_scale, "short_term_last_n": self.short_term_last_n,
                "strategy": self.strategy,
                "vocabularies_path": self.vocabularies_path}
