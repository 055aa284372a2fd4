"""A user's own interaction log: the dataset container, and CSV / TFRecord reading and writing.

A log file follows the contract (``features``): one row per event with int64 columns
``user_id, item_id, timestamp, label, category`` plus any event features. ``category`` may
instead come from an optional **item table** (CSV with ``item_id, category``), joined on
``item_id``. IDs are integers >= 1 (0 is padding / unknown), or raw: the columns named in
``raw_id_columns`` (``user_id``, ``item_id``, ``category``, event features) are read as strings and
mapped to IDs ``1 .. n`` by a vocabulary (``raw_ids``), which the dataset keeps so that the
exported model can map a request's raw values the same way.

Example::

    dataset = load_interaction_log("my_log.csv", item_table="items.csv", history_length=100,
                                   context_features=("hour",))
    write_log_csv(dataset.log, "normalised/log.csv")
"""
from __future__ import annotations

import csv
import dataclasses
import pathlib
import re
from typing import Mapping, Sequence

import numpy as np

from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import raw_ids


@dataclasses.dataclass
class InteractionDataset:
    """An interaction log in the contract's form, its schema and its item table.

    Attributes:
      log: contract columns (``features.LOG_COLUMNS`` + event features), int64 ``[num_events]``.
      schema: vocabulary sizes, event/context features and the history length L.
      items: the item table, indexed by item ID (row 0 is padding): at least ``category`` int64
        ``[num_items]``; loaders add what they know (``genres``, ``content_embedding``, ...).
      category_names: category ID -> name where known (index 0 is ``"<unknown>"``).
      vocabularies: column -> its raw values, for the columns the file held as strings
        (``raw_ids``): ID i + 1 is ``vocabularies[column][i]``; empty when every ID was an integer.
    """

    log: dict[str, np.ndarray]
    schema: F.DataSchema
    items: dict[str, object]
    category_names: list[str]
    vocabularies: dict[str, list[str]] = dataclasses.field(default_factory=dict)


# An exact integer in ASCII digits: "12", "-3", "+7". Never "1.0", "1e3", "inf" or other scripts' digits.
_EXACT_INTEGER = re.compile(r"[+-]?[0-9]+")
_INT64 = (-(1 << 63), (1 << 63) - 1)
# IDs index embedding tables directly (vocabulary = max ID + 1): a larger ID is a hashed or raw ID.
MAX_ID = 100_000_000
CSV_SUFFIXES = (".csv",)
TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrecord.gz", ".tfrecords.gz")


def _exact_int(text: str, where: str) -> int:
    """``text`` as an int if it is an exact integer in int64's range, else ``ValueError`` at ``where``."""
    stripped = text.strip()
    if len(stripped) > 21 or not _EXACT_INTEGER.fullmatch(stripped):  # int64 has at most 19 digits and a sign
        raise ValueError(f"{where}: {text!r} is not an exact integer (expected ASCII digits, no decimals, "
                         "exponents or infinities; nothing is rounded).")
    value = int(stripped)
    if not _INT64[0] <= value <= _INT64[1]:
        raise ValueError(f"{where}: {text!r} is outside the int64 range.")
    return value


def read_csv_columns(path: pathlib.Path | str, raw_columns: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """A CSV file with a header row as int64 columns (exact integers only), except ``raw_columns``,
    read as stripped strings (raw IDs, which ``raw_ids.build_vocabularies`` maps to integer IDs).

    Raises:
      FileNotFoundError / ValueError: missing file, no header, no rows, a row with missing or extra
        fields, or a value that is not an exact int64 integer (the message names line and column).
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Interaction log {path} does not exist.")
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:  # -sig: a BOM is not a name
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header or not any(field.strip() for field in header):
            raise ValueError(f"{path} is empty: expected a header row naming the columns {list(F.LOG_COLUMNS)}.")
        header = [field.strip() for field in header]
        duplicated = sorted({name for name in header if header.count(name) > 1})
        if duplicated or "" in header:
            raise ValueError(f"{path}: the header names every column once; got {header}.")
        texts: list[list[str]] = [[] for _ in header]
        lines: list[int] = []
        for row in reader:
            if not row:
                continue  # a blank line
            if len(row) != len(header):
                raise ValueError(f"{path} line {reader.line_num}: expected {len(header)} fields {header}, "
                                 f"got {len(row)}.")
            lines.append(reader.line_num)
            for values, text in zip(texts, row):
                values.append(text)
    if not lines:
        raise ValueError(f"{path} has a header but no events.")
    return {name: np.array([text.strip() for text in values], dtype=object) if name in raw_columns
            else _int_column(values, name, lines, path) for name, values in zip(header, texts)}


def _int_column(texts: list[str], name: str, lines: list[int], path: pathlib.Path) -> np.ndarray:
    """One CSV column as int64; a value that is not an exact integer is an error naming its line."""
    try:
        return np.array([_exact_int(text, f"{path} line {line}, column {name!r}")
                         for line, text in zip(lines, texts)], dtype=np.int64)
    except ValueError as error:
        if name in (F.TIMESTAMP, F.LABEL):
            raise
        raise ValueError(f"{error} If column {name!r} holds raw (string) IDs, name it in raw_id_columns "
                         "(the pipeline's --raw-ids).") from None


def check_id_sizes(log: Mapping[str, np.ndarray], where: str) -> None:
    """Refuses IDs above ``MAX_ID``: a vocabulary is the largest ID + 1, so a raw or hashed 64-bit ID
    would make an embedding table of that many rows."""
    for name, values in log.items():
        if name != F.TIMESTAMP and len(values) and int(np.max(values)) > MAX_ID:
            raise ValueError(f"{where}: column {name!r} has ID {int(np.max(values))}, above {MAX_ID:,}: IDs index "
                             "embedding tables directly: name the column in raw_id_columns (the pipeline's --raw-ids) to map "
                             "raw or hashed IDs by a vocabulary.")


def read_tfrecord_columns(path: pathlib.Path | str, raw_columns: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """A TFRecord file (optionally GZIP) of ``tf.Example``s with one int64 per column; a column of
    ``raw_columns`` holds one bytes value (or int64, read as its text) per record: a raw ID."""
    import tensorflow as tf

    path = str(path)
    compression = "GZIP" if path.lower().endswith(".gz") else None
    columns: dict[str, list] = {}
    for index, record in enumerate(tf.data.TFRecordDataset(path, compression_type=compression).as_numpy_iterator()):
        feature_map = tf.train.Example.FromString(record).features.feature
        if index == 0:
            columns = {name: [] for name in feature_map}
        for name, values in columns.items():
            feature = feature_map[name] if name in feature_map else None
            value = list(feature.int64_list.value) if feature is not None else []
            if name in raw_columns and feature is not None:
                value = [raw.decode("utf-8", errors="replace").strip() for raw in feature.bytes_list.value] or [
                    str(number) for number in value]
            if len(value) != 1:
                expected = "one bytes or int64 value (a raw ID)" if name in raw_columns else "one int64"
                hint = (f" If column {name!r} holds raw (string) IDs, name it in raw_id_columns (the pipeline's "
                        "--raw-ids)." if feature is not None and feature.bytes_list.value else "")
                raise ValueError(f"{path} record {index}: column {name!r} must be {expected}, got {value[:5]}.{hint}")
            values.append(value[0])
    if not columns:
        raise ValueError(f"{path} holds no events.")
    return {name: np.array(values, dtype=object if name in raw_columns else np.int64)
            for name, values in columns.items()}


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


def read_item_table(path: pathlib.Path | str, raw_columns: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """An item table CSV (``item_id, category``, ...): one row per item (``raw_columns`` as strings).

    Raises:
      ValueError: as ``read_csv_columns``, or an item listed twice.
    """
    items = read_csv_columns(path, raw_columns)
    if F.ITEM_ID in items:
        ids, counts = np.unique(items[F.ITEM_ID], return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"{path}: item_id {ids[counts > 1][0]!r} is listed {int(counts.max())} times; "
                             "an item table holds one row per item.")
    return items


def join_item_table(log: dict[str, np.ndarray], items: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Adds (or overrides) the log's ``category`` from an item table keyed by ``item_id``.

    Raises:
      ValueError: the table lacks ``item_id`` / ``category``, or a logged item is not in it.
    """
    for name in (F.ITEM_ID, F.CATEGORY):
        if name not in items:
            raise ValueError(f"Item table lacks column {name!r}; expected columns ['item_id', 'category', ...].")
    # Raw IDs on either side: items match by their text ("42" in the log is item 42 of the table).
    as_key = str if raw_ids.is_raw(log[F.ITEM_ID]) or raw_ids.is_raw(items[F.ITEM_ID]) else int
    lookup = {as_key(item): category for item, category in zip(items[F.ITEM_ID].tolist(), items[F.CATEGORY].tolist())}
    logged = [as_key(item) for item in log[F.ITEM_ID].tolist()]
    unknown = sorted(set(logged) - set(lookup))
    if unknown:
        raise ValueError(f"{len(unknown)} logged item_id(s) are not in the item table (first: {unknown[:5]}).")
    categories = [lookup[item] for item in logged]
    raw = raw_ids.is_raw(items[F.CATEGORY])
    return {**log, F.CATEGORY: np.array(categories, dtype=object if raw else np.int64)}


def infer_schema(log: Mapping[str, np.ndarray], history_length: int,
                 context_features: Sequence[str] = ()) -> F.DataSchema:
    """The schema a log implies: vocabularies = max ID + 1; every extra column is an event feature."""
    extra = [name for name in log if name not in F.LOG_COLUMNS]
    return F.DataSchema(
        num_users=int(log[F.USER_ID].max()) + 1, num_items=int(log[F.ITEM_ID].max()) + 1,
        num_categories=int(log[F.CATEGORY].max()) + 1, history_length=history_length,
        event_features={name: int(np.asarray(log[name]).max()) + 1 for name in extra},
        context_features=tuple(context_features))


def pop_target_column(log: dict[str, np.ndarray], target_column: str, where: str) -> np.ndarray:
    """Removes and returns the 0/1 column marking the events that are ranking targets.

    Raises:
      ValueError: the column is missing, holds another value than 0 and 1, or marks no event.
    """
    if target_column not in log:
        raise ValueError(f"{where}: --target-column {target_column!r} is not a column of the log "
                         f"(columns {sorted(log)}).")
    marked = np.asarray(log.pop(target_column), np.int64)
    if not np.isin(marked, (0, 1)).all():
        raise ValueError(f"{where}: target column {target_column!r} must be 0 (history only) or 1 (a ranking "
                         f"target), got values {np.unique(marked)[:10].tolist()}.")
    if not marked.any():
        raise ValueError(f"{where}: target column {target_column!r} marks no event as a ranking target.")
    return marked


def load_interaction_log(path: pathlib.Path | str, item_table: pathlib.Path | str | None = None,
                         history_length: int = 50, context_features: Sequence[str] = (),
                         target_column: str | None = None, raw_id_columns: Sequence[str] = (),
                         previous_vocabularies: Mapping[str, Sequence[str]] | None = None) -> InteractionDataset:
    """Loads a user's log (``.csv``, ``.tfrecord`` or ``.tfrecord.gz``) into the contract's form.

    ``target_column`` names a 0/1 column marking which events are ranking targets (every event
    stays history); it is kept in ``log`` but is no event feature of the schema.
    ``raw_id_columns`` names the columns of raw IDs (strings, or numbers too large to index a table
    such as 64-bit hashes): each is mapped to IDs ``1 .. n`` by a vocabulary (``dataset.vocabularies``),
    in the item table too. ``previous_vocabularies`` (an earlier load's ``dataset.vocabularies``)
    keeps the IDs it gave and appends the new values.

    Raises:
      ValueError: a column is missing or malformed, the log is empty, an item is unknown to the
        item table (all via ``features.validate_log``), or a bad target column.
    """
    path = pathlib.Path(path)
    raw_id_columns = tuple(raw_id_columns)
    raw_ids.check_raw_id_columns(raw_id_columns, str(path), target_column)
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        log = read_csv_columns(path, raw_id_columns)
    elif name.endswith(TFRECORD_SUFFIXES):
        log = read_tfrecord_columns(path, raw_id_columns)
    else:
        raise ValueError(f"{path}: unknown file type; expected a name ending in one of "
                         f"{list(CSV_SUFFIXES + TFRECORD_SUFFIXES)} (any case).")
    if item_table is not None:
        log = join_item_table(log, read_item_table(item_table, raw_id_columns))
    missing = sorted(set(raw_id_columns) - set(log))
    if missing:
        raise ValueError(f"{path}: raw ID column(s) {missing} are not columns of the log (columns {sorted(log)}).")
    if target_column and target_column in F.LOG_COLUMNS + tuple(context_features):
        raise ValueError(f"{path}: --target-column {target_column!r} is a contract or context column; mark the "
                         "ranking targets in a column of their own (0: history only, 1: a ranking target).")
    marked = pop_target_column(log, target_column, str(path)) if target_column else None
    vocabularies = raw_ids.build_vocabularies({name: log[name] for name in raw_id_columns}, previous_vocabularies)
    log = raw_ids.encode_columns(log, vocabularies)
    # Vocabularies are inferred from the validated log, so its IDs lie inside them by construction.
    log = F.validate_log(log, event_features=tuple(name for name in log if name not in F.LOG_COLUMNS))
    check_id_sizes(log, str(path))
    schema = infer_schema(log, history_length, context_features)
    if marked is not None:
        log[target_column] = marked
    categories = np.zeros(schema.num_items, np.int64)
    categories[log[F.ITEM_ID]] = log[F.CATEGORY]
    names = ["<unknown>"] + vocabularies.get(F.CATEGORY, [str(index) for index in range(1, schema.num_categories)])
    return InteractionDataset(log=log, schema=schema, items={F.CATEGORY: categories}, category_names=names,
                              vocabularies=vocabularies)
