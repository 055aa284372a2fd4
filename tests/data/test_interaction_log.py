"""Users' own logs: CSV and TFRecord in the contract's form, with an optional item table."""
import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import interaction_log


def test_csv_round_trip_with_context_features(tmp_path):
    path = interaction_log.write_log_csv(helpers.tiny_log(), tmp_path / "log.csv")
    dataset = interaction_log.load_interaction_log(path, history_length=7, context_features=("hour",))
    for name, values in helpers.tiny_log().items():
        np.testing.assert_array_equal(dataset.log[name], values)
    assert dataset.schema == F.DataSchema(num_users=4, num_items=13, num_categories=4, history_length=7,
                                          event_features={"hour": 9}, context_features=("hour",))


def test_item_table_supplies_the_category(tmp_path):
    log = helpers.tiny_log()
    categories = dict(zip(log[F.ITEM_ID].tolist(), log.pop(F.CATEGORY).tolist()))
    log_path = interaction_log.write_log_csv(log, tmp_path / "log.csv")
    items_path = interaction_log.write_log_csv(
        {F.ITEM_ID: np.array(list(categories)), F.CATEGORY: np.array(list(categories.values()))}, tmp_path / "items.csv")
    dataset = interaction_log.load_interaction_log(log_path, item_table=items_path)
    np.testing.assert_array_equal(dataset.log[F.CATEGORY], helpers.tiny_log()[F.CATEGORY])


def test_item_missing_from_item_table_is_named(tmp_path):
    log = helpers.tiny_log()
    del log[F.CATEGORY]
    log_path = interaction_log.write_log_csv(log, tmp_path / "log.csv")
    items_path = interaction_log.write_log_csv({F.ITEM_ID: np.array([5]), F.CATEGORY: np.array([1])},
                                               tmp_path / "items.csv")
    with pytest.raises(ValueError, match="7 logged item_id\\(s\\) are not in the item table \\(first: \\[6, 7, 8"):
        interaction_log.load_interaction_log(log_path, item_table=items_path)


def test_tfrecord_log(tmp_path):
    path = str(tmp_path / "log.tfrecord.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for record in F.to_tf_examples(helpers.tiny_log()):
            writer.write(record)
    dataset = interaction_log.load_interaction_log(path)
    np.testing.assert_array_equal(dataset.log[F.TIMESTAMP], helpers.tiny_log()[F.TIMESTAMP])


def test_text_in_an_id_column_is_named(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp,label,category\n1,abc,5,1,2\n")
    with pytest.raises(ValueError, match="line 2, column 'item_id': 'abc' is not an exact integer"):
        interaction_log.load_interaction_log(path)


def test_header_only_csv_is_empty(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp,label,category\n")
    with pytest.raises(ValueError, match="has a header but no events"):
        interaction_log.load_interaction_log(path)


def test_file_type_is_read_from_the_name_in_any_case(tmp_path):
    path = tmp_path / "LOG.CSV"
    interaction_log.write_log_csv(helpers.tiny_log(), path)
    dataset = interaction_log.load_interaction_log(path)
    np.testing.assert_array_equal(dataset.log[F.ITEM_ID], helpers.tiny_log()[F.ITEM_ID])


def test_exact_integers_with_signs_and_spaces_are_read_exactly(tmp_path):
    path = tmp_path / "log.csv"
    big = (1 << 62) + 1  # above 2^53: a float round trip would merge it with its neighbours
    path.write_text(f"user_id,item_id,timestamp,label,category\n+1, 5 ,{big},1,2\n")
    columns = interaction_log.read_csv_columns(path)
    assert columns[F.USER_ID][0] == 1 and columns[F.ITEM_ID][0] == 5 and columns[F.TIMESTAMP][0] == big


def test_a_byte_order_mark_is_not_part_of_the_first_column_name(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp,label,category\n1,5,100,1,2\n", encoding="utf-8-sig")
    assert interaction_log.load_interaction_log(path).log[F.USER_ID].tolist() == [1]


def test_a_target_column_is_kept_in_the_log_but_is_no_event_feature(tmp_path):
    path = tmp_path / "log.csv"
    header = "user_id,item_id,timestamp,label,category,hour,is_target\n"
    path.write_text(header + "1,5,100,1,2,3,0\n1,6,200,0,3,4,1\n")
    dataset = interaction_log.load_interaction_log(path, target_column="is_target")
    assert list(dataset.log["is_target"]) == [0, 1] and "is_target" not in dataset.schema.event_features
    assert "hour" in dataset.schema.event_features
    with pytest.raises(ValueError, match="--target-column 'chosen' is not a column of the log"):
        interaction_log.load_interaction_log(path, target_column="chosen")


@pytest.mark.parametrize("marks, message", [((0, 2), "must be 0 \\(history only\\) or 1"), ((0, 0), "marks no event")])
def test_a_bad_target_column_is_refused(tmp_path, marks, message):
    path = tmp_path / "log.csv"
    path.write_text(f"user_id,item_id,timestamp,label,category,is_target\n1,5,100,1,2,{marks[0]}\n1,6,200,0,3,{marks[1]}\n")
    with pytest.raises(ValueError, match=message):
        interaction_log.load_interaction_log(path, target_column="is_target")


@pytest.mark.parametrize("column", ["label", "hour"])
def test_a_contract_or_context_column_is_refused_as_the_target_column(tmp_path, column):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp,label,category,hour\n1,5,100,1,2,3\n1,6,200,0,3,4\n")
    with pytest.raises(ValueError, match=f"--target-column '{column}' is a contract or context column"):
        interaction_log.load_interaction_log(path, context_features=("hour",), target_column=column)
