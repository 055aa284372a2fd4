"""``InstanceCompressor``: IAT stage 1 in the pipeline.

Trains the chosen source model (``temporal_order`` or ``user_order``) on the **training period
only** (events before the same time cutoff ``HistoryExampleGen`` uses), then runs a Beam job that
writes the token of every logged event — training and evaluation period alike, since a token
only compresses request-time features. The artefact records the token version (the source
model's fingerprint) as a custom property, so a model trained on these tokens can be tied to them.
"""
import os

import apache_beam as beam
from absl import logging
from tfx import v1 as tfx

from pipelines.components import log_io
from pipelines.components.artifacts import InstanceTokens
from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import history_beam
from tfrs_seqcompress.iat import source_models, token_beam


@tfx.dsl.components.component(use_beam=True)
def InstanceCompressor(
    log_examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    instance_tokens: tfx.dsl.components.OutputArtifact[InstanceTokens],
    scheme: tfx.dsl.components.Parameter[str],
    token_dim: tfx.dsl.components.Parameter[int],
    eval_fraction: tfx.dsl.components.Parameter[float],
    context_features: tfx.dsl.components.Parameter[str] = "",
    event_features: tfx.dsl.components.Parameter[str] = "",
    epochs: tfx.dsl.components.Parameter[int] = 2,
    seed: tfx.dsl.components.Parameter[int] = 0,
    split_rule: tfx.dsl.components.Parameter[str] = "time",
    beam_pipeline: tfx.dsl.components.BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Trains the source model on the training period and writes every event's token."""
    if scheme not in source_models.SCHEMES:
        raise ValueError(f"Unknown IAT scheme {scheme!r}; expected one of {list(source_models.SCHEMES)}.")
    events_names = tuple(name for name in event_features.split(",") if name)
    columns = F.LOG_COLUMNS + events_names
    log, schema, cutoff, train_log = log_io.read_training_period(
        log_examples, columns, eval_fraction, [name for name in context_features.split(",") if name], split_rule)
    logging.info("InstanceCompressor: training a %s source model (d=%d) on %d of %d events (before %s)",
                 scheme, token_dim, len(train_log[F.USER_ID]), len(log[F.USER_ID]),
                 cutoff if cutoff is not None else "each user's cutoff")
    model = source_models.train_source_model(train_log, schema, scheme, token_dim=token_dim, epochs=epochs,
                                             seed=seed, verbose=2)
    source_model_dir = os.path.join(instance_tokens.uri, "source_model")
    version = token_beam.save_source_model(model, source_model_dir)
    with beam_pipeline as pipeline:
        _ = (pipeline
             | "ListLogFiles" >> beam.Create(log_io.log_files(log_examples))
             | "ReadLog" >> beam.io.ReadAllFromTFRecord(compression_type=beam.io.filesystem.CompressionTypes.AUTO)
             | "ParseEvents" >> beam.Map(history_beam.parse_log_example, columns)
             | "WriteTokens" >> token_beam.WriteInstanceTokens(source_model_dir, instance_tokens.uri))
    instance_tokens.set_string_custom_property("version", version)
    instance_tokens.set_string_custom_property("scheme", scheme)
    instance_tokens.set_int_custom_property("token_dim", token_dim)
    instance_tokens.set_int_custom_property("train_events", len(train_log[F.USER_ID]))
    instance_tokens.set_string_custom_property("split_rule", split_rule)
    if cutoff is not None:
        instance_tokens.set_int_custom_property("cutoff", cutoff)
