"""Logs of raw IDs: the columns a user names are mapped by sorted vocabularies; the rest stay strict."""
import numpy as np
import pytest
import tensorflow as tf

from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import interaction_log, raw_ids
from tfrs_seqcompress.hisac import semantic

LOG = ("user_id,item_id,timestamp,label,device,is_target\n"
       "u-b,sku-2,10,1,phone,1\n"
       "u-b,sku-1,20,0,web,0\n"
       "u-a,sku-2,15,1,phone,1\n")
ITEMS = "item_id,category\nsku-1,books\nsku-2,toys\n"
RAW = ("user_id", "item_id", "category", "device")


def load(tmp_path, log=LOG, **arguments):
    (tmp_path / "log.csv").write_text(log)
    (tmp_path / "items.csv").write_text(ITEMS)
    return interaction_log.load_interaction_log(tmp_path / "log.csv", tmp_path / "items.csv", 5, ("device",),
                                                **{"target_column": "is_target", "raw_id_columns": RAW, **arguments})


def test_each_named_column_is_mapped_by_its_sorted_values_in_the_item_table_too(tmp_path):
    dataset = load(tmp_path)
    assert dataset.vocabularies == {"user_id": ["u-a", "u-b"], "item_id": ["sku-1", "sku-2"],
                                    "category": ["books", "toys"], "device": ["phone", "web"]}
    assert dataset.log[F.USER_ID].tolist() == [2, 2, 1] and dataset.log[F.ITEM_ID].tolist() == [2, 1, 2]
    assert dataset.log[F.CATEGORY].tolist() == [2, 1, 2]
    assert dataset.log["device"].tolist() == [0, 1, 0]   # an event feature's values start at 0, as in the contract
    assert dataset.log["is_target"].tolist() == [1, 0, 1] and dataset.log[F.TIMESTAMP].tolist() == [10, 20, 15]
    assert dataset.schema.num_items == 3 and dataset.schema.event_features == {"device": 2}
    assert dataset.category_names == ["<unknown>", "books", "toys"]


def test_a_later_log_keeps_the_earlier_ids_and_appends_its_new_values(tmp_path):
    earlier = load(tmp_path)
    later = load(tmp_path, log=LOG + "u-0,sku-1,30,1,kiosk,1\n", previous_vocabularies=earlier.vocabularies)
    assert later.vocabularies["user_id"] == ["u-a", "u-b", "u-0"]   # "u-0" sorts first, yet comes last
    assert later.vocabularies["device"] == ["phone", "web", "kiosk"]
    assert later.log[F.USER_ID].tolist() == [2, 2, 1, 3] and later.log["device"].tolist() == [0, 1, 0, 2]


def test_the_runner_extends_the_vocabularies_its_previous_run_staged(tmp_path):
    from pipelines import local_runner

    (tmp_path / "log.csv").write_text(LOG.replace(",is_target", ",category").replace(",1\n", ",7\n").replace(
        ",0\n", ",7\n"))
    args = local_runner.parse_args(["--data", str(tmp_path / "log.csv"), "--raw-ids", "user_id,item_id,device",
                                    "--pipeline-root", str(tmp_path / "root")])
    first = local_runner.prepare_log(args, args.pipeline_root)
    (tmp_path / "log.csv").write_text((tmp_path / "log.csv").read_text() + "u-0,sku-0,30,1,phone,7\n")
    dataset, _ = local_runner.load_log(args)
    assert dataset.vocabularies["item_id"] == ["sku-1", "sku-2", "sku-0"]
    second = local_runner.prepare_log(args, args.pipeline_root, (dataset, "log"))
    assert first[2] != second[2] and raw_ids.read_vocabularies(second[2]) == dataset.vocabularies


def test_a_string_in_a_column_not_named_raw_is_refused_with_the_flag_to_use(tmp_path):
    with pytest.raises(ValueError, match="column 'device': 'phone' is not an exact integer.*name it in raw_id_columns"):
        load(tmp_path, raw_id_columns=("user_id", "item_id", "category"))


@pytest.mark.parametrize("column", ["timestamp", "label", "is_target"])
def test_time_label_and_target_column_cannot_be_raw(tmp_path, column):
    with pytest.raises(ValueError, match=f"column '{column}' cannot hold raw IDs"):
        load(tmp_path, raw_id_columns=RAW + (column,))


def test_a_raw_column_the_log_lacks_and_an_empty_raw_value_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"raw ID column\(s\) \['brand'\] are not columns of the log"):
        load(tmp_path, raw_id_columns=RAW + ("brand",))
    with pytest.raises(ValueError, match="Column 'device' holds an empty value"):
        load(tmp_path, log=LOG.replace("web", ""))


def test_64_bit_hashed_ids_become_a_vocabulary_instead_of_a_table_of_that_many_rows(tmp_path):
    hashed = LOG.replace("sku-1", "9223372036854775000").replace("sku-2", "42").replace(",is_target", ",category")
    (tmp_path / "log.csv").write_text(hashed)
    dataset = interaction_log.load_interaction_log(tmp_path / "log.csv", None, 5, (), raw_id_columns=RAW[:2] + RAW[3:])
    assert dataset.vocabularies[F.ITEM_ID] == ["42", "9223372036854775000"] and dataset.schema.num_items == 3


def test_a_tfrecord_log_of_bytes_ids(tmp_path):
    path = str(tmp_path / "log.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for user, item, time in (("u-b", "sku-2", 10), ("u-a", "sku-1", 5)):
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                F.USER_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[user.encode()])),
                F.ITEM_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[item.encode()])),
                **{name: tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
                   for name, value in ((F.TIMESTAMP, time), (F.LABEL, 1), (F.CATEGORY, 3))}})).SerializeToString())
    dataset = interaction_log.load_interaction_log(path, raw_id_columns=("user_id", "item_id"))
    assert dataset.log[F.USER_ID].tolist() == [2, 1] and dataset.vocabularies[F.ITEM_ID] == ["sku-1", "sku-2"]


def test_encode_and_decode_are_inverse_and_unknown_values_get_the_unknown_id():
    vocabularies = {"item_id": ["a", "b"], "device": ["phone", "web"]}
    encoded = raw_ids.encode_columns({"item_id": np.array(["b", "new", "a"], object), "hour": np.array([1, 2, 3]),
                                      "device": np.array(["web", "fridge", "phone"], object)}, vocabularies)
    assert encoded["item_id"].tolist() == [2, 0, 1] and encoded["hour"].tolist() == [1, 2, 3]
    assert encoded["device"].tolist() == [1, 2, 0]   # unknown: beyond the vocabulary, the models' unknown row
    assert raw_ids.decode_ids("item_id", encoded["item_id"], vocabularies).tolist() == ["b", "", "a"]
    assert raw_ids.decode_ids("device", np.array([1, 2, 0, 99]), vocabularies).tolist() == ["web", "", "phone", ""]


def test_a_raw_value_with_a_line_break_is_refused():
    with pytest.raises(ValueError, match="Column 'item_id' holds a value with a line break"):
        raw_ids.build_vocabularies({"item_id": np.array(["a", "b\nc"], object)})


def test_vocabularies_are_staged_by_content_and_read_back(tmp_path):
    path = raw_ids.write_vocabularies({"item_id": ["a", "b"]}, tmp_path)
    assert raw_ids.read_vocabularies(path) == {"item_id": ["a", "b"]}
    assert raw_ids.write_vocabularies({"item_id": ["a", "b"]}, tmp_path) == path
    assert raw_ids.write_vocabularies({"item_id": ["a", "c"]}, tmp_path) != path


def test_item_vectors_keyed_by_raw_item_ids(tmp_path):
    path = tmp_path / "vectors.csv"
    path.write_text("item_id,v0,v1\nsku-2,1.0,2.0\nsku-9,3.0,4.0\n")
    vectors, unused = semantic.read_item_vectors(path, 3, ["sku-1", "sku-2"])
    np.testing.assert_array_equal(vectors, [[0, 0], [0, 0], [1, 2]])
    assert unused == {"items_without_vector": 1, "rows_not_in_log": 1}
