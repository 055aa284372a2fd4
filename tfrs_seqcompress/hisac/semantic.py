"""Item semantic vectors for HiSAC: frozen, from item content or a TFRS two-tower retrieval model.

HiSAC quantises *semantic* vectors, never the ranking embeddings (docs/methods.md): they are made
once, before ranking training, and stay frozen inside the model (``layers.SemanticIds``).

* ``content_vectors``: from what the item table knows — the synthetic world's
  ``content_embedding``; MovieLens genres (multi-hot), release decade and title words (hashed).
* ``read_item_vectors``: a user's own item vectors (content or semantic embeddings), a CSV of
  ``item_id, v0, v1, ...`` (``write_item_vectors_csv`` writes one).
* ``retrieval_vectors``: for logs without item content, the item tower of a two-tower model
  (``tfrs.tasks.Retrieval``, in-batch softmax over the clicked (user, item) pairs) trained on the
  training period only.

Every function returns ``[num_items, dim]`` float32 with row i for item ID i; rows of items
nothing is known about (and the padding row 0) are all zeros, which ``SemanticIds`` treats as
unknown.

Example::

    vectors = content_vectors(dataset)                         # or retrieval_vectors(train_log, schema)
    codebook = fit_residual_kmeans(vectors[known_rows(vectors)], (16, 8))
"""
from __future__ import annotations

import csv
import hashlib
import pathlib
from typing import Mapping, Sequence

import numpy as np

from tfrs_seqcompress import features as F
from tfrs_seqcompress.data.interaction_log import InteractionDataset

TITLE_BUCKETS = 16
DECADES = tuple(range(1920, 2010, 10))


def known_rows(vectors: np.ndarray) -> np.ndarray:
    """Indices of the rows that hold a semantic vector (not all zeros)."""
    return np.flatnonzero(np.any(np.asarray(vectors) != 0, axis=1))


def write_item_vectors_csv(vectors: np.ndarray, path: pathlib.Path | str,
                           item_ids: Sequence[str] | None = None) -> pathlib.Path:
    """Writes the known rows of ``vectors [num_items, dim]`` as ``item_id, v0 .. v{dim-1}`` rows;
    row i's ``item_id`` is i, or ``item_ids[i]`` (raw item IDs, ``data.raw_ids``)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([F.ITEM_ID] + [f"v{d}" for d in range(vectors.shape[1])])
        for item in known_rows(vectors):
            key = int(item) if item_ids is None else item_ids[item]
            writer.writerow([key] + [repr(float(value)) for value in vectors[item]])
    return path


def read_item_vectors(path: pathlib.Path | str, num_items: int,
                      item_vocabulary: Sequence[str] | None = None) -> tuple[np.ndarray, dict]:
    """A CSV of item vectors (header ``item_id, v0, v1, ...``; one row per item) as the table
    ``[num_items, dim]`` float32, row i for item ID i, and counts of what was not used.

    With ``item_vocabulary`` (a log of raw item IDs: ``data.raw_ids``) the file's ``item_id``
    column holds the raw IDs too, and row i is the vector of ``item_vocabulary[i - 1]``.

    Items of the log without a row keep an all-zero row (unknown: they neither vote nor are
    routed); rows of item IDs outside the log's ``1 .. num_items - 1`` have no use in the model
    and are counted, not kept (``{"items_without_vector": n, "rows_not_in_log": m}``).

    Raises:
      FileNotFoundError / ValueError: a missing file; a header that does not start with
        ``item_id`` or has no vector column; a row with another number of fields, an ID that is
        not an integer, a value that is not a finite number, an all-zero vector (it would mark a
        known item unknown: leave the row out), or an item listed twice (the message names the line).
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Item vector file {path} does not exist.")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [field.strip() for field in next(reader, [])]
        if len(header) < 2 or header[0] != F.ITEM_ID:
            raise ValueError(f"{path}: expected a header 'item_id, v0, v1, ...' (the item ID, then one column per "
                             f"vector dimension); got {header}.")
        dim, rows = len(header) - 1, {}
        for row in reader:
            if not row:
                continue
            where = f"{path} line {reader.line_num}"
            if len(row) != dim + 1:
                raise ValueError(f"{where}: expected {dim + 1} fields (item_id and {dim} values), got {len(row)}.")
            try:
                item = row[0].strip() if item_vocabulary is not None else int(row[0])
                vector = np.array([float(value) for value in row[1:]], np.float32)
            except ValueError as error:
                expected = "numbers" if item_vocabulary is not None else "numbers and item_id an integer (raw item IDs: --raw-ids)"
                raise ValueError(f"{where}: v0..v{dim - 1} must be {expected} ({error}).") from None
            if not np.isfinite(vector).all():
                raise ValueError(f"{where}: item {item}'s vector holds NaN or infinity.")
            if not vector.any():
                raise ValueError(f"{where}: item {item}'s vector is all zeros, which marks an item as unknown; "
                                 "leave the row out instead.")
            if item in rows:
                raise ValueError(f"{where}: item_id {item} is listed twice; the file holds one row per item.")
            rows[item] = vector
    if not rows:
        raise ValueError(f"{path} has a header but no item vectors.")
    if item_vocabulary is not None:
        ids = {raw: index + 1 for index, raw in enumerate(item_vocabulary)}
        rows = {ids.get(raw, -1 - index): vector for index, (raw, vector) in enumerate(rows.items())}
    table = np.zeros((num_items, dim), np.float32)
    used = [item for item in rows if 1 <= item < num_items]
    for item in used:
        table[item] = rows[item]
    return table, {"items_without_vector": int(num_items - 1 - len(used)), "rows_not_in_log": len(rows) - len(used)}


def content_vectors(dataset: InteractionDataset) -> np.ndarray:
    """Semantic vectors from the item table's content.

    Raises:
      ValueError: the item table has no content (use ``retrieval_vectors``).
    """
    items = dataset.items
    if "content_embedding" in items:
        return np.asarray(items["content_embedding"], np.float32)
    if "genres" in items:
        return _movielens_vectors(items, dataset.schema.num_items, dataset.schema.num_categories)
    raise ValueError(f"The item table has no content to build semantic vectors from (columns {sorted(items)}; "
                     "expected 'content_embedding' or 'genres'). Use semantic.retrieval_vectors(train_log, schema).")


def _movielens_vectors(items: Mapping, num_items: int, num_genres: int) -> np.ndarray:
    """Genres (multi-hot, unit norm, weight 2), release decade (one-hot), title words (hashed, weight 0.5)."""
    genres = np.zeros((num_items, num_genres), np.float32)
    for item, ids in enumerate(items["genres"]):
        genres[item, ids] = 1.0
    genres *= 2.0 / np.maximum(np.linalg.norm(genres, axis=1, keepdims=True), 1.0)
    decade = np.zeros((num_items, len(DECADES) + 1), np.float32)
    title = np.zeros((num_items, TITLE_BUCKETS), np.float32)
    years = items.get("release_year", [0] * num_items)
    for item in range(1, num_items):
        if years[item]:
            decade[item, min(np.searchsorted(DECADES, int(years[item]), side="right"), len(DECADES))] = 1.0
        for word in str(items.get("title", [""] * num_items)[item]).lower().split():
            title[item, int(hashlib.md5(word.encode()).hexdigest(), 16) % TITLE_BUCKETS] += 0.5
    vectors = np.concatenate([genres, decade, title], axis=1)
    vectors[0] = 0.0
    return vectors


def retrieval_vectors(train_log: Mapping[str, np.ndarray], schema: F.DataSchema, dim: int = 16, epochs: int = 3,
                      batch_size: int = 256, seed: int = 0) -> np.ndarray:
    """Item-tower embeddings of a TFRS two-tower retrieval model trained on the clicks of ``train_log``.

    Items never clicked in ``train_log`` keep an all-zero row (unknown to ``SemanticIds``).

    Raises:
      ValueError: ``train_log`` has no clicks.
    """
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    log = F.validate_log(train_log, schema)
    clicked = log[F.LABEL] == 1
    if not clicked.any():
        raise ValueError("retrieval_vectors needs clicks (label 1) in the training log; it has none.")
    tf.keras.utils.set_random_seed(seed)
    user_tower = tf.keras.layers.Embedding(schema.num_users, dim)
    item_tower = tf.keras.layers.Embedding(schema.num_items, dim)

    class TwoTower(tfrs.models.Model):
        def __init__(self):
            super().__init__()
            self.user_tower, self.item_tower = user_tower, item_tower
            self.task = tfrs.tasks.Retrieval()

        def compute_loss(self, features, training=False):
            return self.task(self.user_tower(features[F.USER_ID]), self.item_tower(features[F.ITEM_ID]))

    model = TwoTower()
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    pairs = tf.data.Dataset.from_tensor_slices({F.USER_ID: log[F.USER_ID][clicked], F.ITEM_ID: log[F.ITEM_ID][clicked]})
    model.fit(pairs.shuffle(int(clicked.sum()), seed=seed).batch(batch_size), epochs=epochs, verbose=0)
    vectors = item_tower.embeddings.numpy().astype(np.float32)
    seen = np.zeros(schema.num_items, bool)
    seen[log[F.ITEM_ID][clicked]] = True
    vectors[~seen] = 0.0
    return vectors
