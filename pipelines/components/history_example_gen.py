"""``HistoryExampleGen``: interaction-log examples -> leakage-safe history examples, split by time.

A Python-function TFX component whose work is a Beam job (``use_beam=True``): it runs the
library's ``BuildHistoryExamples`` transform on the pipeline's Beam runner (DirectRunner here;
Flink/Spark/Dataflow through ``beam_pipeline_args`` alone) and writes

* ``history_examples``: a standard ``Examples`` artefact with splits ``train`` / ``eval``
  (GZIP TFRecords of ``tf.Example``), ready for Trainer and Evaluator;
* ``schema``: a standard ``Schema`` artefact (TFMD) describing those examples, with vocabulary
  sizes measured on the data.
"""

import json
from typing import List
import os

import apache_beam as beam
import tensorflow as tf
from tfx import v1 as tfx
from tfx.types import standard_artifact_utils

from pipelines.components import data_schema_io
from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import history, history_beam


def _log_files(examples: tfx.types.standard_artifacts.Examples) -> List[str]:
    splits = standard_artifact_utils.decode_split_names(examples.split_names)
    patterns = [os.path.join(examples.uri, f"Split-{split}", "*") for split in splits]
    files = [path for pattern in patterns for path in tf.io.gfile.glob(pattern)]
    if not files:
        raise ValueError(f"The interaction-log examples at {examples.uri} (splits {splits}) hold no files.")
    return files


@tfx.dsl.components.component(use_beam=True)
def HistoryExampleGen(
    log_examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    history_examples: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Examples],
    schema: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Schema],
    history_length: tfx.dsl.components.Parameter[int],
    eval_fraction: tfx.dsl.components.Parameter[float],
    context_features: tfx.dsl.components.Parameter[str] = "",
    event_features: tfx.dsl.components.Parameter[str] = "",
    beam_pipeline: tfx.dsl.components.BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Builds history examples of length ``history_length``; the last ``eval_fraction`` of time is eval.

    ``event_features`` / ``context_features`` are comma-separated column names of the log.
    """
    events_names = tuple(name for name in event_features.split(",") if name)
    context_names = tuple(name for name in context_features.split(",") if name)
    # Vocabulary sizes are measured below; placeholders of 1 are enough for building examples.
    build_schema = F.DataSchema(num_users=1, num_items=1, num_categories=1, history_length=history_length,
                                event_features={name: 1 for name in events_names},
                                context_features=context_names)
    columns = F.LOG_COLUMNS + events_names
    max_ids_dir = os.path.join(schema.uri, "_max_ids")
    with beam_pipeline as pipeline:
        outputs = (pipeline
                   | "ListLogFiles" >> beam.Create(_log_files(log_examples))
                   | "ReadLog" >> beam.io.ReadAllFromTFRecord(
                       compression_type=beam.io.filesystem.CompressionTypes.AUTO)
                   | "ParseEvents" >> beam.Map(history_beam.parse_log_example, columns)
                   | "BuildHistories" >> history_beam.BuildHistoryExamples(build_schema, eval_fraction))
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
        num_categories=max_ids[F.CATEGORY] + 1, history_length=history_length,
        event_features={name: max_ids[name] + 1 for name in events_names}, context_features=context_names)
    data_schema_io.write_schema(data_schema, schema.uri)
    history_examples.split_names = standard_artifact_utils.encode_split_names(list(history.SPLITS))
    history_examples.set_string_custom_property("data_schema", data_schema.to_json())
    schema.set_string_custom_property("data_schema", data_schema.to_json())
