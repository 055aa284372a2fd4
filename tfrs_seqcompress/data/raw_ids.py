"""Raw IDs: vocabularies that map a log's string IDs to the contract's integer IDs, and back.

A real log often names users, items, categories and event values by strings (``"u_8f3a"``,
``"electronics"``, ``"click"``) or by 64-bit hashes. The contract's columns index embedding tables,
so each such column, named by the user (``raw_id_columns``, the pipeline's ``--raw-ids``), gets a
vocabulary: its distinct values (as text), sorted, take IDs ``1 .. n`` (0 stays padding / unknown;
an event feature's values take ``0 .. n - 1``, as integer event features start at 0). A later
log keeps the earlier vocabulary's IDs and appends the values it adds (``previous``).
Which columns may be raw: ``user_id``, ``item_id``, ``category`` and every event feature
(``RAW_ID_COLUMNS`` + event features); ``timestamp``, ``label`` and a target column stay integers.

The exported model applies the same vocabularies in its graph (``serving.export_serving_model``
with ``vocabularies``), so a serving request carries the raw values, and a value the log never
showed maps to the unknown ID (``unknown_id``).

Example::

    vocabularies = build_vocabularies({"item_id": np.array(["b", "a", "b"])})
    vocabularies                                                # {"item_id": ["a", "b"]}
    encode_columns({"item_id": np.array(["b", "zz"])}, vocabularies)["item_id"]   # [2, 0]
    build_vocabularies({"item_id": np.array(["a", "c"])}, previous=vocabularies)  # {"item_id": ["a", "b", "c"]}
"""
from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Mapping, Sequence

import numpy as np

from tfrs_seqcompress import features as F

# The contract columns that may hold raw values (event features may too); never time or label.
RAW_ID_COLUMNS = (F.USER_ID, F.ITEM_ID, F.CATEGORY)
LATEST_FILE = "vocabularies.json"


def is_raw(values: np.ndarray) -> bool:
    """Whether a column holds raw (string) values rather than integer IDs."""
    return np.asarray(values).dtype.kind in "UOS"


def first_id(column: str) -> int:
    """The ID of a column's first vocabulary value: 1 for ``user_id``, ``item_id`` and ``category``
    (0 is padding / unknown), 0 for an event feature (whose 0 is a real value, as in the contract)."""
    return 1 if column in RAW_ID_COLUMNS else 0


def unknown_id(column: str, vocabulary: Sequence[str]) -> int:
    """The ID of a value the vocabulary does not hold: 0 for an ID column; for an event feature the
    first value beyond its vocabulary, which the models embed in their unknown row."""
    return 0 if column in RAW_ID_COLUMNS else len(vocabulary)


def build_vocabularies(columns: Mapping[str, np.ndarray],
                       previous: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[str]]:
    """Each column's distinct values as text: ``previous``'s values first, in their order (their IDs
    stay as they were: a model trained on an earlier vocabulary reads the same IDs), then the new
    ones, sorted. Value i has ID ``first_id(column) + i``.

    Raises:
      ValueError: a value is empty ("" is how a request pads a history) or holds a line break (the
        exported model reads its vocabularies one value per line).
    """
    vocabularies = {}
    for name, values in columns.items():
        known = list((previous or {}).get(name, ()))
        distinct = sorted(set(np.asarray(values).astype(str).tolist()) - set(known))
        if distinct and distinct[0].strip() == "":
            raise ValueError(f"Column {name!r} holds an empty value: every event needs its {name} "
                             "(an empty string is a padded history position in a serving request).")
        broken = next((value for value in distinct if "\n" in value or "\r" in value), None)
        if broken is not None:
            raise ValueError(f"Column {name!r} holds a value with a line break ({broken!r}); raw IDs are one line each.")
        vocabularies[name] = known + distinct
    return vocabularies


def encode_columns(columns: Mapping[str, np.ndarray], vocabularies: Mapping[str, list[str]]) -> dict[str, np.ndarray]:
    """``columns`` with each raw column replaced by its int64 IDs (unknown values: ``unknown_id``)."""
    encoded = dict(columns)
    for name, vocabulary in vocabularies.items():
        if name in columns:
            ids = {value: first_id(name) + index for index, value in enumerate(vocabulary)}
            unknown = unknown_id(name, vocabulary)
            encoded[name] = np.array([ids.get(value, unknown) for value in np.asarray(columns[name]).astype(str).tolist()],
                                     dtype=np.int64)
    return encoded


def decode_ids(name: str, ids: np.ndarray, vocabularies: Mapping[str, Sequence[str]]) -> np.ndarray:
    """The raw values of a column's IDs (padding and unknown IDs become ""); other columns unchanged."""
    if name not in vocabularies:
        return np.asarray(ids)
    vocabulary = list(vocabularies[name])
    positions = np.asarray(ids, dtype=np.int64) - first_id(name)
    known = (positions >= 0) & (positions < len(vocabulary))
    return np.where(known, np.array(vocabulary + [""], dtype=object)[np.where(known, positions, len(vocabulary))], "")


def check_raw_id_columns(columns: Sequence[str], where: str, target_column: str | None = None) -> None:
    """Refuses raw-ID columns where the contract needs integers (``timestamp``, ``label``, the
    target column).

    Raises:
      ValueError: naming the column and the columns that may be raw.
    """
    for name in columns:
        if name in (F.TIMESTAMP, F.LABEL) or name == target_column:
            raise ValueError(f"{where}: column {name!r} cannot hold raw IDs: it must hold integers (raw IDs may be "
                             f"{list(RAW_ID_COLUMNS)} and event features).")


def vocabularies_json(vocabularies: Mapping[str, Sequence[str]]) -> str:
    """The vocabularies' file content (column -> values, columns sorted), as ``read_vocabularies`` reads it."""
    return json.dumps({name: list(values) for name, values in sorted(vocabularies.items())}, indent=1)


def write_vocabularies(vocabularies: Mapping[str, Sequence[str]], directory: pathlib.Path | str) -> pathlib.Path:
    """Writes the vocabularies as ``vocabularies-<digest>.json`` (named by content, so a path
    changes exactly when they do) and as ``vocabularies.json``, the latest, which the next run
    extends (``previous`` of ``build_vocabularies``); returns the digest-named path."""
    text = vocabularies_json(vocabularies)
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"vocabularies-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    for target in (path, directory / LATEST_FILE):
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
    return path


def read_vocabularies(path: pathlib.Path | str) -> dict[str, list[str]]:
    """The vocabularies ``write_vocabularies`` wrote (a local path, or any path TensorFlow reads).

    Raises:
      ValueError: the file is not a JSON object of string lists.
    """
    if "://" in str(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(str(path)) as handle:
            loaded = json.load(handle)
    else:
        loaded = json.loads(pathlib.Path(path).read_text())
    if not isinstance(loaded, dict) or not all(isinstance(values, list) and all(isinstance(v, str) for v in values)
                                               for values in loaded.values()):
        raise ValueError(f"{path}: expected a JSON object mapping each raw column to its list of values.")
    return loaded
