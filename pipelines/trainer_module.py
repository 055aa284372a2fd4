"""The Trainer's ``run_fn``: builds the library's ranking model, trains it, exports it for serving.

Reached by TFX's Trainer as the dotted path ``pipelines.trainer_module.run_fn`` (the package is
installed in the environment, so no module file is packaged). Settings arrive in
``fn_args.custom_config`` (see ``configs.TrainerConfig``).
"""
from __future__ import annotations

import os
import tempfile
import time

import tensorflow as tf
from absl import logging

from pipelines import configs
from pipelines.components import data_schema_io, semantic_io
from tfrs_seqcompress import features as F
from tfrs_seqcompress import layers, models, registry, serving
from tfrs_seqcompress.data import raw_ids, tf_data

WARMUP_EXAMPLES = 32


def distribution_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy named in the Trainer's config.

    ``multi_worker_mirrored`` reads the cluster from ``TF_CONFIG`` (set on every worker by the
    orchestrator, e.g. a Vertex AI custom job with several replicas); without ``TF_CONFIG`` it is
    one worker. It must be created before any other TensorFlow op runs (hence first in ``run_fn``).
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown distribution strategy {name!r}; expected one of {list(configs.STRATEGIES)}.")


def _is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver is None or not resolver.task_type or resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0)


def _sharded_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Workers share the examples by element: a split may have fewer files than workers."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _warmup_examples(eval_files: list[str]) -> list[bytes]:
    files = sorted(path for pattern in eval_files for path in tf.io.gfile.glob(pattern))
    records = tf.data.TFRecordDataset(files, compression_type="GZIP").take(WARMUP_EXAMPLES)
    return [record.numpy() for record in records]


def _semantic_arguments(encoder: str, train_files: list[str], config: dict) -> dict:
    """HiSAC / global clusters: the codebook and item vectors HistoryExampleGen put beside the
    example splits (``<examples>/Split-train/*`` -> ``<examples>/semantic``)."""
    if encoder not in layers.SEMANTIC_ENCODERS:
        return {}
    examples_dir = os.path.dirname(os.path.dirname(train_files[0]))
    codebook, item_vectors = semantic_io.load_semantic_tables(os.path.join(examples_dir, semantic_io.SEMANTIC_DIR))
    arguments = {"codebook": codebook, "item_vectors": item_vectors}
    if encoder in layers.VOTING_ENCODERS:
        fanouts = config.get("fanouts", registry.HISAC_FANOUTS)
        arguments["fanouts"] = tuple(fanouts) if fanouts else None
        arguments["temperature_scale"] = float(config.get("temperature_scale", registry.HISAC_TEMPERATURE_SCALE))
    return arguments


def _short_term_arguments(config: dict) -> dict:
    """``short_term_last_n`` for ``build_ranking_model`` when the config asks for a short-term base."""
    last_n = int(config.get("short_term_last_n") or 0)
    return {"short_term_last_n": last_n} if last_n > 0 else {}


class EpochProgress(tf.keras.callbacks.Callback):
    """One line per epoch on the runner's terminal (``local_runner.PROGRESS_FD``) while the logs go
    to a file; nothing when the runner keeps its logs on the terminal (Keras prints them there)."""

    def __init__(self, encoder: str, epochs: int):
        super().__init__()
        self.encoder, self.epochs = encoder, epochs
        fd = os.environ.get("TFRS_SEQCOMPRESS_PROGRESS_FD")
        self.terminal = os.fdopen(os.dup(int(fd)), "w", buffering=1) if fd else None

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        if self.terminal is not None:
            scores = ", ".join(f"{name} {value:.4f}" for name, value in (logs or {}).items()
                               if name in ("logloss", "auc", "val_logloss", "val_auc"))
            self.terminal.write(f"[pipeline]   training {self.encoder}: epoch {epoch + 1}/{self.epochs}, {scores} "
                                f"({time.time() - self.started:.0f} s)\n")


def run_fn(fn_args) -> None:
    """Trains on ``fn_args.train_files`` and writes a serving SavedModel to ``fn_args.serving_model_dir``."""
    config = dict(fn_args.custom_config or {})
    strategy = distribution_strategy(config.get("strategy", "default"))
    schema = data_schema_io.read_schema(fn_args.schema_path)
    tf.keras.utils.set_random_seed(int(config.get("seed", 0)))
    batch_size = int(config.get("batch_size", 512))
    train = tf_data.dataset_from_tfrecords(fn_args.train_files, schema, batch_size, shuffle_seed=config.get("seed", 0))
    evaluation = tf_data.dataset_from_tfrecords(fn_args.eval_files, schema, batch_size)
    encoder = config.get("encoder", "din_full")
    with strategy.scope():
        model = models.build_ranking_model(schema, encoder, learning_rate=float(config.get("learning_rate", 1e-3)),
                                           embedding_dim=int(config.get("embedding_dim", 16)),
                                           **_semantic_arguments(encoder, fn_args.train_files, config),
                                           **_short_term_arguments(config))
    logging.info("Training encoder %r on %s with %s (%d replicas); schema %s", encoder, fn_args.train_files,
                 type(strategy).__name__, strategy.num_replicas_in_sync, schema)
    model.fit(_sharded_by_data(train), validation_data=_sharded_by_data(evaluation),
              epochs=int(config.get("epochs", 2)), verbose=2,
              callbacks=[tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir),
                         EpochProgress(encoder, int(config.get("epochs", 2)))])
    # Every worker saves (saving syncs the replicas); only the chief's copy is the model.
    export_dir = fn_args.serving_model_dir if _is_chief(strategy) else tempfile.mkdtemp(prefix="non_chief_export_")
    vocabularies = raw_ids.read_vocabularies(config["vocabularies_path"]) if config.get("vocabularies_path") else None
    serving.export_serving_model(model, export_dir, schema, warmup_examples=_warmup_examples(fn_args.eval_files),
                                 model_name=config.get("model_name", "ranker"), vocabularies=vocabularies)
    if export_dir != fn_args.serving_model_dir:
        tf.io.gfile.rmtree(export_dir)
    logging.info("Exported the serving model to %s (label feature %r).", export_dir, F.LABEL)
