"""The on-disk layout of HiSAC's semantic tables in the pipeline (no TFX import).

``SemanticCodebook`` artefacts hold ``codebook/`` (``Codebook.save``) and ``item_vectors.npy``
(``[num_items, dim]``); ``HistoryExampleGen`` copies the same layout into ``semantic/`` beside
the splits of its ``history_examples``, where the Trainer's ``run_fn`` reads it.
"""
from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from tfrs_seqcompress.hisac.codebook import Codebook, CodebookError

CODEBOOK_DIR = "codebook"
ITEM_VECTORS_FILE = "item_vectors.npy"
SEMANTIC_DIR = "semantic"


def save_item_vectors(directory: str, vectors: np.ndarray) -> None:
    tf.io.gfile.makedirs(directory)
    with tf.io.gfile.GFile(os.path.join(directory, ITEM_VECTORS_FILE), "wb") as handle:
        np.save(handle, vectors)


def load_semantic_tables(directory: str, expected_version: str | None = None) -> tuple[Codebook, np.ndarray]:
    """``(codebook, item_vectors)`` from the layout above.

    Raises:
      CodebookError: a missing, truncated or modified codebook, or another version than expected.
    """
    fitted = Codebook.load(os.path.join(directory, CODEBOOK_DIR), expected_version=expected_version)
    with tf.io.gfile.GFile(os.path.join(directory, ITEM_VECTORS_FILE), "rb") as handle:
        return fitted, np.load(handle)


def copy_tables(source: str, target: str) -> None:
    """Copies the layout (two levels deep) from ``source`` to ``target``."""
    for name in tf.io.gfile.listdir(source):
        name = name.rstrip("/")
        path = os.path.join(source, name)
        if tf.io.gfile.isdir(path):
            tf.io.gfile.makedirs(os.path.join(target, name))
            for inner in tf.io.gfile.listdir(path):
                tf.io.gfile.copy(os.path.join(path, inner), os.path.join(target, name, inner), overwrite=True)
        else:
            tf.io.gfile.makedirs(target)
            tf.io.gfile.copy(path, os.path.join(target, name), overwrite=True)


def checked_copy(source: str, recorded_version: str, num_items: int, target: str) -> str:
    """Copies a ``SemanticCodebook`` artefact's tables to ``target`` after checking them; returns the version.

    Checks the codebook is whole, is the version ML Metadata recorded for the artefact, and has one
    item vector per item ID of the examples. Nothing is written to ``target`` unless all hold.

    Raises:
      CodebookError: missing, truncated or modified tables; another version than recorded; a
        vector table for another number of items (the codebook of another dataset).
    """
    fitted, vectors = load_semantic_tables(source)
    if fitted.version != recorded_version:
        raise CodebookError(f"Codebook at {source} is version {fitted.version!r} on disk but {recorded_version!r} "
                            "in ML Metadata: the artefact was modified.")
    if len(vectors) != num_items:
        raise CodebookError(f"The codebook's item vectors cover {len(vectors)} item IDs; the examples have "
                            f"num_items {num_items}.")
    copy_tables(source, target)
    return recorded_version
