"""The data contract: parse specs, and validation errors that name the feature and expected form."""
import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import history


@pytest.fixture
def examples():
    return history.build_history_examples(helpers.tiny_log(), helpers.tiny_schema())


def test_parse_spec_reads_back_serialized_examples(examples):
    schema = helpers.tiny_schema()
    parsed = tf.io.parse_example(F.to_tf_examples(examples), F.example_parse_spec(schema))
    assert sorted(parsed) == sorted(examples)
    for name, values in examples.items():
        np.testing.assert_array_equal(parsed[name].numpy(), values)


def test_schema_json_round_trip():
    schema = helpers.tiny_schema()
    assert F.DataSchema.from_json(schema.to_json()) == schema


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_items=0), "num_items must be a positive int"),
    (dict(context_features=("device",)), "context_features \\['device'\\] are not event_features"),
    (dict(event_features={"label": 2}), "may not reuse contract column names"),
])
def test_schema_rejects_inconsistent_settings(kwargs, message):
    settings = dict(num_users=3, num_items=5, num_categories=2, history_length=4)
    with pytest.raises(ValueError, match=message):
        F.DataSchema(**{**settings, **kwargs})


def test_a_schema_splits_into_its_vocabularies_and_the_example_spec():
    schema = F.DataSchema(num_users=3, num_items=5, num_categories=2, history_length=4,
                          event_features={"hour": 25, "rating": 6}, context_features=("hour",), token_dim=2,
                          token_version="v1")
    spec = F.ExampleSpec(history_length=4, event_features=("hour", "rating"), context_features=("hour",),
                         token_dim=2, token_version="v1")
    assert schema.example_spec == spec
    assert F.example_feature_shapes(spec) == F.example_feature_shapes(schema)
    assert spec.outcome_features == schema.outcome_features == ("rating",)


@pytest.mark.parametrize("kwargs, message", [
    (dict(history_length=0), "history_length must be a positive int"),
    (dict(context_features=("device",)), "context_features \\['device'\\] are not event_features"),
    (dict(event_features=("hist_x",)), "use reserved names"),
    (dict(token_dim=-1), "token_dim must be an int >= 0"),
])
def test_an_example_spec_rejects_inconsistent_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        F.ExampleSpec(**{"history_length": 4, **kwargs})


def test_log_missing_column_is_named():
    log = helpers.tiny_log()
    del log[F.CATEGORY]
    with pytest.raises(ValueError, match="missing column\\(s\\) \\['category'\\]"):
        F.validate_log(log, event_features=("hour",))


def test_log_wrong_dtype_is_named():
    log = {**helpers.tiny_log(), F.ITEM_ID: np.array([5.0, 6, 7, 8, 9, 10, 11, 12])}
    with pytest.raises(ValueError, match="'item_id' must hold integers \\(int64\\), got dtype float64"):
        F.validate_log(log)


def test_empty_log_is_rejected():
    empty = {name: np.array([], dtype=np.int64) for name in F.LOG_COLUMNS}
    with pytest.raises(ValueError, match="Interaction log is empty"):
        F.validate_log(empty)


def test_non_binary_label_is_rejected():
    log = {**helpers.tiny_log(), F.LABEL: np.array([0, 1, 2, 1, 0, 1, 1, 0])}
    with pytest.raises(ValueError, match="'label' must be 0 or 1"):
        F.validate_log(log)


def test_unknown_ids_are_rejected_with_the_vocabulary():
    log = {**helpers.tiny_log(), F.ITEM_ID: np.array([5, 6, 7, 8, 9, 10, 11, 99])}
    with pytest.raises(ValueError, match="'item_id' has 1 unknown ID\\(s\\) \\(first: 99\\); expected values in \\[0, 20\\)"):
        F.validate_log(log, helpers.tiny_schema())


def test_misspelt_feature_is_named(examples):
    examples["hist_itemid"] = examples.pop("hist_item_id")
    with pytest.raises(ValueError, match="missing feature\\(s\\) \\['hist_item_id'\\].*Unexpected features \\['hist_itemid'\\]"):
        F.validate_examples(examples, helpers.tiny_schema())


def test_wrong_shape_is_named(examples):
    examples["hist_category"] = examples["hist_category"][:, :3]
    with pytest.raises(ValueError, match="'hist_category' must have shape \\[batch, 6\\] \\(history length L=6\\), got \\[8, 3\\]"):
        F.validate_examples(examples, helpers.tiny_schema())


def test_history_longer_than_l_is_rejected(examples):
    with pytest.raises(ValueError, match="'hist_item_id' must have shape \\[batch, 4\\].*got \\[8, 6\\].*truncated"):
        F.validate_examples(examples, helpers.tiny_schema(history_length=4))


def test_unsorted_history_is_rejected(examples):
    row = int(np.argmax(examples[F.HISTORY_MASK].sum(1)))
    valid = np.flatnonzero(examples[F.HISTORY_MASK][row])
    examples["hist_timestamp"][row, valid] = examples["hist_timestamp"][row, valid][::-1]
    with pytest.raises(ValueError, match=f"History of example {row} is not sorted by time"):
        F.validate_examples(examples, helpers.tiny_schema())


def test_future_event_in_history_is_leakage(examples):
    row = int(np.argmax(examples[F.HISTORY_MASK].sum(1)))
    examples["hist_timestamp"][row, -1] = examples["timestamp"][row]
    with pytest.raises(ValueError, match=f"Leakage in example {row}"):
        F.validate_examples(examples, helpers.tiny_schema())


def test_left_aligned_mask_is_rejected(examples):
    row = int(np.argmax(examples[F.HISTORY_MASK].sum(1)))
    examples[F.HISTORY_MASK][row] = examples[F.HISTORY_MASK][row][::-1]
    with pytest.raises(ValueError, match="not right-aligned"):
        F.validate_examples(examples, helpers.tiny_schema())
