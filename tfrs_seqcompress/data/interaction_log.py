"""A user's own interaction log: the dataset container, and CSV / TFRecord reading and writing.

A log file follows the contract (``features``): one row per event with int64 columns
``user_id, item_id, timestamp, label, category`` plus any event features. ``category`` may
instead come from an optional **item table** (CSV with ``item_id, category``), joined on
``item_id``. IDs must be integers >= 1 (0 is padding / unknown).

Example::

    dataset = load_interaction_log("my_log.csv", item_table="items.csv", history_length=100,
                                   context_features=("hour",))
    write_log_csv(dataset.log, "normalised/log.csv")
"""
from __future__ import annotations

import csv
import dataclasses
import pathlib
from typing import Mapping, Sequence

import numpy as np

from tfrs_seqcompress import features as F


@dataclasses.dataclass
class InteractionDataset:
    """An interaction log in the contract's form, its schema and its item table.

    Attributes:
      log: contract columns (``features.LOG_COLUMNS`` + event features), int64 ``[num_events]``.
      schema: vocabulary sizes, event/context features and the history length L.
      items: the item table, indexed by item ID (row 0 is padding): at least ``category`` int64
        ``[num_items]``; loaders add what they know (``genres``, ``content_embedding``, ...).
      category_names: category ID -> name where known (index 0 is ``"<unknown>"``).
    """

    log: dict[str, np.ndarray]
    schema: F.DataSchema
    items: dict[str, object]
    category_names: list[str]


def _parse_int_column(name: str, values: Sequence[str], path: pathlib.Path) -> np.ndarray:
    try:
        return np.array([int(float(value)) for value in values], dtype=np.int64)
    except ValueError as error:
        raise ValueError(f"{path}: column {name!r} must hold integers, got {error}.") from None


def read_csv_columns(path: pathlib.Path | str) -> dict[str, np.ndarray]:
    """A CSV file with a header row as int64 columns.

    Raises:
      FileNotFoundError / ValueError: missing file, no header, no rows, or a non-integer value.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Interaction log {path} does not exist.")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise ValueError(f"{path} is empty: expected a header row naming the columns {list(F.LOG_COLUMNS)}.")
        rows = list(reader)
    if not rows:
        raise ValueError(f"{path} has a header but no events.")
    return {name: _parse_int_column(name, [row[name] for row in rows], path) for name in reader.fieldnames}


def read_tfrecord_columns(path: pathlib.Path | str) -> dict[str, np.ndarray]:
    """A TFRecord file (optionally GZIP) of ``tf.Example``s with one int64 per column."""
    import tensorflow as tf

    path = str(path)
    compression = "GZIP" if path.endswith(".gz") else None
    columns: dict[str, list[int]] = {}
    for index, record in enumerate(tf.data.TFRecordDataset(path, compression_type=compression).as_numpy_iterator()):
        feature_map = tf.train.Example.FromString(record).features.feature
        if index == 0:
            columns = {name: [] for name in feature_map}
        for name, values in columns.items():
            value = feature_map[name].int64_list.value if name in feature_map else []
            if len(value) != 1:
                raise ValueError(f"{path} record {index}: column {name!r} must be one int64, got {list(value)[:5]}.")
            values.append(value[0])
    if not columns:
        raise ValueError(f"{path} holds no events.")
    return {name: np.array(values, dtype=np.int64) for name, values in columns.items()}


def write_log_csv(log: Mapping[str, np.ndarray], path: pathlib.Path | str) -> pathlib.Path:
    """Writes log columns as a CSV with a header (the form CsvExampleGen reads)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(log)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        writer.writerows(zip(*(np.asarray(log[name]).tolist() for name in names)))
    return path


def join_item_table(log: dict[str, np.ndarray], items: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Adds (or overrides) the log's ``category`` from an item table keyed by ``item_id``.

    Raises:
      ValueError: the table lacks ``item_id`` / ``category``, or a logged item is not in it.
    """
    for name in (F.ITEM_ID, F.CATEGORY):
        if name not in items:
            raise ValueError(f"Item table lacks column {name!r}; expected columns ['item_id', 'category', ...].")
    lookup = dict(zip(items[F.ITEM_ID].tolist(), items[F.CATEGORY].tolist()))
    unknown = sorted(set(np.unique(log[F.ITEM_ID]).tolist()) - set(lookup))
    if unknown:
        raise ValueError(f"{len(unknown)} logged item_id(s) are not in the item table (first: {unknown[:5]}).")
    return {**log, F.CATEGORY: np.array([lookup[item] for item in log[F.ITEM_ID].tolist()], dtype=np.int64)}


def infer_schema(log: Mapping[str, np.ndarray], history_length: int,
                 context_features: Sequence[str] = ()) -> F.DataSchema:
    """The schema a log implies: vocabularies = max ID + 1; every extra column is an event feature."""
    extra = [name for name in log if name not in F.LOG_COLUMNS]
    return F.DataSchema(
        num_users=int(log[F.USER_ID].max()) + 1, num_items=int(log[F.ITEM_ID].max()) + 1,
        num_categories=int(log[F.CATEGORY].max()) + 1, history_length=history_length,
        event_features={name: int(np.asarray(log[name]).max()) + 1 for name in extra},
        context_features=tuple(context_features))


def load_interaction_log(path: pathlib.Path | str, item_table: pathlib.Path | str | None = None,
                         history_length: int = 50, context_features: Sequence[str] = ()) -> InteractionDataset:
    """Loads a user's log (``.csv``, ``.tfrecord`` or ``.tfrecord.gz``) into the contract's form.

    Raises:
      ValueError: a column is missing or malformed, the log is empty, or an item is unknown to
        the item table (all via ``features.validate_log``).
    """
    path = pathlib.Path(path)
    log = read_csv_columns(path) if path.suffix == ".csv" else read_tfrecord_columns(path)
    if item_table is not None:
        log = join_item_table(log, read_csv_columns(item_table))
    # Vocabularies are inferred from the validated log, so its IDs lie inside them by construction.
    log = F.validate_log(log, event_features=tuple(name for name in log if name not in F.LOG_COLUMNS))
    schema = infer_schema(log, history_length, context_features)
    categories = np.zeros(schema.num_items, np.int64)
    categories[log[F.ITEM_ID]] = log[F.CATEGORY]
    names = ["<unknown>"] + [str(index) for index in range(1, schema.num_categories)]
    return InteractionDataset(log=log, schema=schema, items={F.CATEGORY: categories}, category_names=names)
