"""Reading the interaction log that ExampleGen wrote (shared by the custom components)."""
import os
from typing import Dict, List, Sequence

import numpy as np
import tensorflow as tf
from tfx import v1 as tfx
from tfx.types import standard_artifact_utils

from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import history, interaction_log


def log_files(examples: tfx.types.standard_artifacts.Examples) -> List[str]:
    """Every file of every split of an ExampleGen output.

    Raises:
      ValueError: the artefact holds no files.
    """
    splits = standard_artifact_utils.decode_split_names(examples.split_names)
    files = [path for split in splits for path in tf.io.gfile.glob(os.path.join(examples.uri, f"Split-{split}", "*"))]
    if not files:
        raise ValueError(f"The interaction-log examples at {examples.uri} (splits {splits}) hold no files.")
    return files


def read_log_columns(examples: tfx.types.standard_artifacts.Examples, columns: Sequence[str]) -> Dict[str, np.ndarray]:
    """The whole log in memory as int64 columns (for in-memory training of a source model)."""
    spec = {name: tf.io.FixedLenFeature([], tf.int64) for name in columns}
    data = (tf.data.TFRecordDataset(log_files(examples), compression_type="GZIP").batch(8192)
            .map(lambda records: tf.io.parse_example(records, spec)))
    parts = [{name: values.numpy() for name, values in batch.items()} for batch in data]
    return {name: np.concatenate([part[name] for part in parts]) for name in columns}


def read_training_period(examples: tfx.types.standard_artifacts.Examples, columns: Sequence[str],
                         eval_fraction: float, context_features: Sequence[str] = (), split_rule: str = "time"):
    """``(log, schema, cutoff, train_log)``: the whole log, its inferred schema, the time cutoff
    ``HistoryExampleGen`` uses (None under ``split_rule="user_time"``: each user has their own),
    and the events before it (what stage-1 models may learn from)."""
    log = read_log_columns(examples, columns)
    schema = interaction_log.infer_schema(log, history_length=1, context_features=list(context_features))
    cutoffs = history.event_cutoffs(log[F.USER_ID], log[F.TIMESTAMP], eval_fraction, split_rule)
    in_training = log[F.TIMESTAMP] < cutoffs
    cutoff = int(cutoffs) if split_rule == "time" else None
    return log, schema, cutoff, {name: values[in_training] for name, values in log.items()}
