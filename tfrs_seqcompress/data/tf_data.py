"""``tf.data`` input pipelines over history examples: from in-memory columns or TFRecord files.

Example::

    train = dataset_from_columns(train_columns, batch_size=512, shuffle_seed=0)
    evaluation = dataset_from_tfrecords("Split-eval/*.gz", schema, batch_size=1024)
    long = dataset_from_history_index(history.HistoryIndex(log, schema), train_rows, 256, shuffle_seed=0)
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import history


def dataset_from_columns(columns: Mapping[str, np.ndarray], batch_size: int,
                         shuffle_seed: int | None = None) -> tf.data.Dataset:
    """Batches of feature dicts from example columns; shuffled when ``shuffle_seed`` is given."""
    dataset = tf.data.Dataset.from_tensor_slices({name: np.asarray(values) for name, values in columns.items()})
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(next(iter(columns.values()))), seed=shuffle_seed,
                                  reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def dataset_from_history_index(index: "history.HistoryIndex", rows: np.ndarray, batch_size: int,
                               shuffle_seed: int | None = None,
                               build: Callable[[np.ndarray], Mapping[str, np.ndarray]] | None = None
                               ) -> tf.data.Dataset:
    """Batches of the history examples of target ``rows``, built batch by batch from the log.

    Memory holds one batch of ``[batch, L]`` histories at a time (plus the prefetched one), not
    every example's: what long histories (L = 1,000 - 10,000) need. With ``shuffle_seed`` the rows
    are permuted afresh every epoch (seeded by the epoch), else they keep their order. ``build``
    turns a batch of rows into examples (default ``index.examples``; e.g. ``index.search_examples``
    with tokens for a bounded IAT window).
    """
    rows = np.asarray(rows)
    if rows.size == 0:
        raise ValueError("No target rows to build history examples for.")
    build = build or index.examples
    sample = build(rows[:1])
    signature = {name: tf.TensorSpec((None,) + values.shape[1:], tf.as_dtype(values.dtype))
                 for name, values in sample.items()}
    epochs = iter(range(1 << 62))

    def batches():
        order = rows if shuffle_seed is None else np.random.default_rng([shuffle_seed, next(epochs)]).permutation(rows)
        for begin in range(0, len(order), batch_size):
            yield build(order[begin:begin + batch_size])

    return tf.data.Dataset.from_generator(batches, output_signature=signature).prefetch(2)


def dataset_from_tfrecords(file_patterns: str | Sequence[str], schema: F.DataSchema, batch_size: int,
                           shuffle_seed: int | None = None, with_label: bool = True) -> tf.data.Dataset:
    """Batches of parsed history examples from GZIP TFRecord files (as the pipeline writes them).

    Raises:
      ValueError: the patterns match no file.
    """
    patterns = [file_patterns] if isinstance(file_patterns, str) else list(file_patterns)
    files = sorted(path for pattern in patterns for path in tf.io.gfile.glob(pattern))
    if not files:
        raise ValueError(f"No TFRecord files match {patterns}.")
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
    if shuffle_seed is not None:
        dataset = dataset.shuffle(10_000, seed=shuffle_seed, reshuffle_each_iteration=True)
    spec = F.example_parse_spec(schema, with_label)
    return (dataset.batch(batch_size)
            .map(lambda serialized: tf.io.parse_example(serialized, spec), num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def split_file_pattern(examples_dir: str, split: str) -> str:
    """The file pattern of one split (``Split-<split>/*``) of an ``Examples`` directory.

    Raises:
      ValueError: the directory has no such split; the message lists the splits it has.
    """
    available = sorted(path.rsplit("Split-", 1)[-1] for path in tf.io.gfile.glob(f"{examples_dir}/Split-*"))
    if split not in available:
        raise ValueError(f"Unknown split {split!r} in {examples_dir}; expected one of {available}.")
    return f"{examples_dir}/Split-{split}/*"
