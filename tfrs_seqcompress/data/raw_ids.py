"""Raw IDs: vocabularies that map a log's string IDs to the contract's integer IDs, and back.

A real log often names users, items, categories and event values by strings (``"u_8f3a"``,
``"electronics"``, ``"click"``) or by 64-bit hashes. The contract's columns index embedding tables,
so each such column, named by the user (``raw_id_columns``, the pipeline's ``--raw-ids``), gets a
vocabulary: its distinct values (as text), sorted, take IDs ``1 .. n`` (0 stays padding / unknown).
Which columns may be raw: ``user_id``, ``item_id``, ``category`` and every event feature
(``RAW_ID_COLUMNS`` + event features); ``timestamp``, ``label`` and a target column stay integers.

The exported model applies the same vocabularies in its graph (``serving.export_serving_model``
with ``vocabularies``), so a serving request carries the raw values, and a value the log never
showed maps to the unknown ID 0.

Example::

    vocabularies = build_vocabularies({"item_id": np.array(["b", "a", "b"])})
    vocabularies                                                # {"item_id": ["a", "b"]}
    encode_columns({"item_id": np.array(["b", "zz"])}, vocabularies)["item_id"]   # [2, 0]
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


def is_raw(values: np.ndarray) -> bool:
    """Whether a column holds raw (string) values rather than integer IDs."""
    return np.asarray(values).dtype.kind in "UOS"


def build_vocabularies(columns: Mapping[str, np.ndarray]) -> dict[str, list[str]]:
    """Each column's distinct values as text, sorted (ID i + 1 is ``vocabulary[i]``).

    Raises:
      ValueError: a raw column holds an empty value ("" is how a request pads a history).
    """
    vocabularies = {}
    for name, values in columns.items():
        distinct = sorted(set(np.asarray(values).astype(str).tolist()))
        if distinct and distinct[0].strip() == "":
            raise ValueError(f"Column {name!r} holds an empty value: every event needs its {name} "
                             "(an empty string is a padded history position in a serving request).")
        vocabularies[name] = distinct
    return vocabularies


def encode_columns(columns: Mapping[str, np.ndarray], vocabularies: Mapping[str, list[str]]) -> dict[str, np.ndarray]:
    """``columns`` with each raw column replaced by its int64 IDs (unknown values: 0)."""
    encoded = dict(columns)
    for name, vocabulary in vocabularies.items():
        if name in columns:
            ids = {value: index + 1 for index, value in enumerate(vocabulary)}
            encoded[name] = np.array([ids.get(value, 0) for value in np.asarray(columns[name]).astype(str).tolist()],
                                     dtype=np.int64)
    return encoded


def decode_ids(name: str, ids: np.ndarray, vocabularies: Mapping[str, list[str]]) -> np.ndarray:
    """The raw values of a column's IDs (0, padding or unknown, becomes ""); other columns unchanged."""
    if name not in vocabularies:
        return np.asarray(ids)
    table = np.array([""] + list(vocabularies[name]), dtype=object)
    return table[np.asarray(ids, dtype=np.int64)]


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


def write_vocabularies(vocabularies: Mapping[str, list[str]], directory: pathlib.Path | str) -> pathlib.Path:
    """Writes the vocabularies as ``vocabularies-<digest>.json`` (named by content, so a path
    changes exactly when they do); returns the path."""
    text = json.dumps({name: list(values) for name, values in sorted(vocabularies.items())}, indent=1)
    path = pathlib.Path(directory) / f"vocabularies-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(text)
    return path


def read_vocabularies(path: pathlib.Path | str) -> dict[str, list[str]]:
    """The vocabularies ``write_vocabularies`` wrote.

    Raises:
      ValueError: the file is not a JSON object of string lists.
    """
    import tensorflow as tf  # reads local and remote (gs://) paths alike

    with tf.io.gfile.GFile(str(path)) as handle:
        loaded = json.load(handle)
    if not isinstance(loaded, dict) or not all(isinstance(values, list) and all(isinstance(v, str) for v in values)
                                               for values in loaded.values()):
        raise ValueError(f"{path}: expected a JSON object mapping each raw column to its list of values.")
    return loaded
