"""``HistoryExampleGen``: interaction-log examples -> leakage-safe history examples, split by time.

A Python-function TFX component whose work is a Beam job (``use_beam=True``): it runs the
library's ``BuildHistoryExamples`` transform on the pipeline's Beam runner (DirectRunner here;
Flink/Spark/Dataflow through ``beam_pipeline_args`` alone) and writes

* ``history_examples``: a standard ``Examples`` artefact with splits ``train`` / ``eval``
  (GZIP TFRecords of ``tf.Example``), ready for Trainer and Evaluator;
* ``schema``: a standard ``Schema`` artefact (TFMD) describing those examples, with vocabulary
  sizes measured on the data.

With a ``codebook`` (HiSAC), a checked copy of it and of the item semantic vectors travels in
``semantic/`` beside the splits of ``history_examples``: the item IDs of these examples are to be
read in that semantic space, and the standard Trainer receives the examples but no custom
artefacts (the schema directory must hold a single file).
"""

import json
import os

import apache_beam as beam
import tensorflow as tf
from tfx import v1 as tfx
from tfx.types import standard_artifact_utils

from pipelines.components import data_schema_io, log_io, semantic_io
from pipelines.components.artifacts import InstanceTokens, SemanticCodebook
from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import history, history_beam
from tfrs_seqcompress.iat import token_beam
from tfrs_seqcompress.iat.store import TokenVersionError


@tfx.dsl.components.component(use_beam=True)
def HistoryExampleGen(
    log_examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    history_examples: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Examples],
    schema: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Schema],
    history_length: tfx.dsl.components.Parameter[int],
    eval_fraction: tfx.dsl.components.Parameter[float],
    instance_tokens: tfx.dsl.components.InputArtifact[InstanceTokens] = None,
    codebook: tfx.dsl.components.InputArtifact[SemanticCodebook] = None,
    context_features: tfx.dsl.components.Parameter[str] = "",
    event_features: tfx.dsl.components.Parameter[str] = "",
    targets_per_user: tfx.dsl.components.Parameter[int] = 0,
    target_column: tfx.dsl.components.Parameter[str] = "",
    search_recent: tfx.dsl.components.Parameter[int] = 0,
    search_retrieved: tfx.dsl.components.Parameter[int] = 0,
    split_rule: tfx.dsl.components.Parameter[str] = "time",
    beam_pipeline: tfx.dsl.components.BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Builds history examples of length ``history_length``; the last ``eval_fraction`` of time is eval.

    ``event_features`` / ``context_features`` are comma-separated column names of the log;
    ``target_column`` (optional) a 0/1 column of it marking the ranking targets. With
    ``instance_tokens`` (IAT) every example also carries ``hist_token``, and the schema records
    ``token_dim`` and, as a custom property, the token version. With ``search_recent`` /
    ``search_retrieved`` (not both 0) each example holds a bounded window instead of the last
    ``history_length`` events: its ``search_recent`` latest events plus the ``search_retrieved``
    latest earlier ones of the target's category within the last ``history_length``; the
    schema's L is then ``search_recent + search_retrieved``. ``split_rule`` (``history.SPLIT_RULES``):
    ``"time"`` puts the last ``eval_fraction`` of the log's time range in eval, ``"user_time"``
    the last ``eval_fraction`` of each user's own.
    """
    events_names = tuple(name for name in event_features.split(",") if name)
    context_names = tuple(name for name in context_features.split(",") if name)
    token_dim, token_version = 0, None
    if instance_tokens is not None:
        metadata = token_beam.read_token_metadata(instance_tokens.uri)
        token_dim, token_version = int(metadata["token_dim"]), metadata["version"]
        recorded = instance_tokens.get_string_custom_property("version")
        if recorded != token_version:
            raise TokenVersionError(f"Instance tokens at {instance_tokens.uri} are version {token_version!r} on disk "
                                    f"but {recorded!r} in ML Metadata: the artefact was modified.")
    if codebook is not None:  # a broken or modified codebook fails here, before the Beam job, not after it
        semantic_io.load_semantic_tables(codebook.uri, expected_version=codebook.get_string_custom_property("version"))
    # What each example holds; the vocabularies are measured from the data below (max_ids).
    window = (search_recent, search_retrieved) if search_recent or search_retrieved else None
    example_length = search_recent + search_retrieved if window else history_length
    spec = F.ExampleSpec(history_length=example_length, event_features=events_names,
                         context_features=context_names, token_dim=token_dim, token_version=token_version or "")
    columns = history_beam.event_columns(events_names, target_column or None)
    max_ids_dir = os.path.join(schema.uri, "_max_ids")
    with beam_pipeline as pipeline:
        events = (pipeline
                  | "ListLogFiles" >> beam.Create(log_io.log_files(log_examples))
                  | "ReadLog" >> beam.io.ReadAllFromTFRecord(compression_type=beam.io.filesystem.CompressionTypes.AUTO)
                  | "ParseEvents" >> beam.Map(history_beam.parse_log_example, columns))
        if instance_tokens is not None:
            tokens = (pipeline
                      | "ListTokenFiles" >> beam.Create(token_beam.token_files(instance_tokens.uri))
                      | "ReadTokens" >> beam.io.ReadAllFromTFRecord(
                          compression_type=beam.io.filesystem.CompressionTypes.AUTO)
                      | "ParseTokens" >> beam.Map(token_beam.parse_token_record))
            events = {"events": events, "tokens": tokens}
        outputs = events | "BuildHistories" >> history_beam.BuildHistoryExamples(
            spec, eval_fraction, token_rows=token_beam.user_token_rows if token_dim else None,
            targets_per_user=targets_per_user, target_column=target_column or None,
            search_window=window, search_depth=history_length, split_rule=split_rule)
        for split in history.SPLITS:
            _ = outputs[split] | f"Write{split.title()}" >> beam.io.WriteToTFRecord(
                os.path.join(history_examples.uri, f"Split-{split}", "data_tfrecord"),
                file_name_suffix=".gz", compression_type=beam.io.filesystem.CompressionTypes.GZIP)
        _ = (outputs["max_ids"] | "MaxIdsJson" >> beam.Map(json.dumps)
             | "WriteMaxIds" >> beam.io.WriteToText(os.path.join(max_ids_dir, "max_ids"), shard_name_template=""))

    with tf.io.gfile.GFile(os.path.join(max_ids_dir, "max_ids")) as handle:
        max_ids = json.loads(handle.read())
    tf.io.gfile.rmtree(max_ids_dir)
    data_schema = F.DataSchema(
        num_users=max_ids[F.USER_ID] + 1, num_items=max_ids[F.ITEM_ID] + 1,
        num_categories=max_ids[F.CATEGORY] + 1, history_length=example_length,
        event_features={name: max_ids[name] + 1 for name in events_names}, context_features=context_names,
        token_dim=token_dim, token_version=token_version or "")
    data_schema_io.write_schema(data_schema, schema.uri)
    history_examples.split_names = standard_artifact_utils.encode_split_names(list(history.SPLITS))
    history_examples.set_string_custom_property("split_rule", split_rule)
    history_examples.set_string_custom_property("data_schema", data_schema.to_json())
    schema.set_string_custom_property("data_schema", data_schema.to_json())
    if window:  # how a serving client builds the same window (history.request_search_history)
        for artifact in (schema, history_examples):
            artifact.set_string_custom_property("search_window", json.dumps(
                {"recent": search_recent, "retrieved": search_retrieved, "within_last": history_length,
                 "key": F.CATEGORY}))
    if token_version:
        schema.set_string_custom_property("token_version", token_version)
        history_examples.set_string_custom_property("token_version", token_version)
    if codebook is not None:
        version = semantic_io.checked_copy(codebook.uri, codebook.get_string_custom_property("version"),
                                           data_schema.num_items,
                                           os.path.join(history_examples.uri, semantic_io.SEMANTIC_DIR))
        schema.set_string_custom_property("codebook_version", version)
        history_examples.set_string_custom_property("codebook_version", version)
