"""Bad-input corpus, library API: logs, log files, history examples, the ranking model, codebooks
and token stores. Each case asserts the specific error (type and message naming the feature or
file) and that nothing already written — the saved codebook, token store and log files, and the
caller's in-memory log, examples and model weights — was changed by the refused call."""
import copy
import dataclasses
import pathlib
import shutil
import types

import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tfrs_seqcompress import features as F
from tfrs_seqcompress import models
from tfrs_seqcompress.data import history, interaction_log, tf_data
from tfrs_seqcompress.hisac.codebook import Codebook, CodebookError, fit_residual_kmeans
from tfrs_seqcompress.iat.store import TokenStore, TokenVersionError

TOKEN_SCHEMA = dataclasses.replace(helpers.tiny_schema(), token_dim=2, token_version="tokens-v1")
# A second CSV row that must be refused, never coerced: name -> row (line 3 of its file).
BAD_CSV_ROWS = {"fractional_item": "1,6.7,200,1,2", "label_half": "1,6,200,0.5,2", "exponent_time": "1,6,2e3,1,2",
                "infinite_time": "1,6,inf,1,2", "beyond_int64": f"{1 << 63},6,200,1,2", "full_width_digits": "1,６,200,1,2",
                "missing_field": "1,6,200,1", "extra_field": "1,6,200,1,2,9"}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """What a user already has on disk and in memory when a bad input arrives."""
    root = tmp_path_factory.mktemp("written")
    schema, log = helpers.tiny_schema(), helpers.tiny_log()
    vectors = np.random.default_rng(0).normal(size=(40, 4))
    codebook = fit_residual_kmeans(vectors, (4, 2), seed=0)
    codebook.save(root / "codebook")
    tokens = np.random.default_rng(1).random((len(log[F.USER_ID]), 2)).astype(np.float32)
    store = TokenStore.build(log, tokens, version="tokens-v1", scheme="user_order")
    store.save(root / "tokens")
    interaction_log.write_log_csv(log, root / "log.csv")
    (root / "items.csv").write_text("item_id,category\n5,1\n6,2\n")
    (root / "not_an_int.csv").write_text("user_id,item_id,timestamp,label,category\n1,abc,100,1,2\n")
    header = "user_id,item_id,timestamp,label,category"
    for name, row in BAD_CSV_ROWS.items():
        (root / f"{name}.csv").write_text(f"{header}\n1,5,100,1,2\n{row}\n")
    (root / "mask_column.csv").write_text(f"{header},mask\n1,5,100,1,2,1\n2,6,50,0,1,1\n")
    (root / "huge_user_id.csv").write_text(f"{header}\n1,5,100,1,2\n{1 << 40},6,50,0,1\n")
    (root / "log.txt").write_text(f"{header}\n1,5,100,1,2\n")
    (root / "duplicated_items.csv").write_text("item_id,category\n5,1\n6,2\n5,3\n")
    (root / "empty.csv").write_text("")
    (root / "header_only.csv").write_text("user_id,item_id,timestamp,label,category\n")
    (root / "no_timestamp.csv").write_text("user_id,item_id,label,category\n1,5,1,2\n")
    with tf.io.TFRecordWriter(str(root / "float_label.tfrecord")) as writer:
        example = tf.train.Example()
        for name in F.LOG_COLUMNS:
            example.features.feature[name].int64_list.value.append(1)
        example.features.feature[F.LABEL].Clear()
        example.features.feature[F.LABEL].float_list.value.append(0.7)
        writer.write(example.SerializeToString())
    examples = history.build_history_examples(log, schema)
    token_examples = store.attach(examples)
    tf.keras.utils.set_random_seed(0)
    model = models.build_ranking_model(schema, "din_full")
    model({name: tf.constant(values) for name, values in examples.items()})
    return types.SimpleNamespace(root=root, schema=schema, log=log, examples=examples, vectors=vectors,
                                 codebook=codebook, store=store, token_examples=token_examples, model=model)


def _edited(columns: dict, name: str, change) -> dict:
    """A copy of ``columns`` whose ``name`` is ``change(copy of the column)`` (the caller's stay intact)."""
    edited = {key: np.array(values) for key, values in columns.items()}
    edited[name] = change(edited[name])
    return edited


def _set_last(values, value, column=-1):
    values[-1, column] = value
    return values


def _longest_history_edited(w, change):
    """The examples with ``change(times of the example with the longest history)`` applied."""
    row = int(np.argmax(w.examples[F.HISTORY_MASK].sum(axis=1)))
    assert w.examples[F.HISTORY_MASK][row, -2:].all()

    def edit(times):
        times[row] = change(times[row], w.examples[F.TIMESTAMP][row])
        return times
    return _edited(w.examples, "hist_timestamp", edit)


def _last_event_older_than_the_one_before(times, _):
    times[-1] = times[-2] - 1
    return times


def _last_event_at_request_time(times, request_time):
    times[-1] = request_time
    return times


def _truncated_copy(source: pathlib.Path, destination: pathlib.Path, drop: str) -> pathlib.Path:
    shutil.copytree(source, destination, dirs_exist_ok=True)
    (destination / drop).write_bytes((destination / drop).read_bytes()[:10])
    return destination


def _metadata_without(source: pathlib.Path, destination: pathlib.Path, key: str) -> pathlib.Path:
    import json
    shutil.copytree(source, destination, dirs_exist_ok=True)
    metadata = json.loads((destination / "metadata.json").read_text())
    del metadata[key]
    (destination / "metadata.json").write_text(json.dumps(metadata))
    return destination


def _hisac(w, **arguments):
    from tfrs_seqcompress import layers
    vectors = np.concatenate([np.zeros((1, 4)), w.vectors[:19]]).astype(np.float32)
    return layers.HiSACEncoder(layers.SemanticIds.from_codebook(w.codebook, vectors), **arguments)


def _model_features(w, **changes):
    features = {name: tf.constant(values) for name, values in w.examples.items()}
    features.update(changes)
    for name in [name for name, value in changes.items() if value is None]:
        del features[name]
    return features


# (case, the refused call, the error type, what the message must say)
CASES = [
    # -- interaction logs in memory
    ("log_missing_column", lambda w: F.validate_log({k: v for k, v in w.log.items() if k != F.TIMESTAMP}),
     ValueError, r"missing column\(s\) \['timestamp'\]"),
    ("log_column_not_1d", lambda w: F.validate_log(_edited(w.log, F.ITEM_ID, lambda v: v[:, None])),
     ValueError, r"'item_id' must be 1-D"),
    ("log_columns_of_other_lengths", lambda w: F.validate_log(_edited(w.log, F.ITEM_ID, lambda v: v[:-1])),
     ValueError, "differ in length"),
    ("log_empty", lambda w: F.validate_log({k: v[:0] for k, v in w.log.items()}), ValueError, "log is empty"),
    ("log_label_not_binary", lambda w: F.validate_log(_edited(w.log, F.LABEL, lambda v: v * 2)),
     ValueError, "'label' must be 0 or 1"),
    ("log_negative_id", lambda w: F.validate_log(_edited(w.log, F.USER_ID, lambda v: v - 2)),
     ValueError, "'user_id' has negative IDs"),
    ("log_float_ids", lambda w: F.validate_log(_edited(w.log, F.ITEM_ID, lambda v: v + 0.5)),
     ValueError, "'item_id' must hold integers"),
    ("log_unknown_item_id", lambda w: F.validate_log(_edited(w.log, F.ITEM_ID, lambda v: v + 10), w.schema),
     ValueError, r"'item_id' has 3 unknown ID\(s\) \(first: 20\); expected values in \[0, 20\)"),
    ("log_missing_event_feature", lambda w: F.validate_log({k: v for k, v in w.log.items() if k != "hour"}, w.schema),
     ValueError, r"missing column\(s\) \['hour'\]"),
    # -- log files a user brings
    ("csv_not_an_int", lambda w: interaction_log.load_interaction_log(w.root / "not_an_int.csv"),
     ValueError, "not_an_int.csv line 2, column 'item_id': 'abc' is not an exact integer"),
    *[(f"csv_{name}", lambda w, name=name: interaction_log.load_interaction_log(w.root / f"{name}.csv"),
       ValueError, message) for name, message in {
        "fractional_item": "line 3, column 'item_id': '6.7' is not an exact integer",
        "label_half": "line 3, column 'label': '0.5' is not an exact integer",
        "exponent_time": "line 3, column 'timestamp': '2e3' is not an exact integer",
        "infinite_time": "line 3, column 'timestamp': 'inf' is not an exact integer",
        "beyond_int64": "line 3, column 'user_id': '9223372036854775808' is outside the int64 range",
        "full_width_digits": "line 3, column 'item_id': '６' is not an exact integer",
        "missing_field": "line 3: expected 5 fields",
        "extra_field": "line 3: expected 5 fields"}.items()],
    ("csv_reserved_column_name", lambda w: interaction_log.load_interaction_log(w.root / "mask_column.csv"),
     ValueError, r"event_features \['mask'\] use reserved names"),
    ("csv_raw_64_bit_user_id", lambda w: interaction_log.load_interaction_log(w.root / "huge_user_id.csv"),
     ValueError, "column 'user_id' has ID 1099511627776, above 100,000,000"),
    ("log_of_unknown_file_type", lambda w: interaction_log.load_interaction_log(w.root / "log.txt"),
     ValueError, r"log.txt: unknown file type; expected a name ending in one of \['.csv'"),
    ("item_table_lists_an_item_twice",
     lambda w: interaction_log.load_interaction_log(w.root / "log.csv", item_table=w.root / "duplicated_items.csv"),
     ValueError, "item_id 5 is listed 2 times"),
    ("csv_empty", lambda w: interaction_log.load_interaction_log(w.root / "empty.csv"),
     ValueError, "is empty: expected a header row"),
    ("csv_header_only", lambda w: interaction_log.load_interaction_log(w.root / "header_only.csv"),
     ValueError, "has a header but no events"),
    ("csv_missing_column", lambda w: interaction_log.load_interaction_log(w.root / "no_timestamp.csv"),
     ValueError, r"missing column\(s\) \['timestamp'\]"),
    ("csv_does_not_exist", lambda w: interaction_log.load_interaction_log(w.root / "nope.csv"),
     FileNotFoundError, "nope.csv does not exist"),
    ("tfrecord_float_label", lambda w: interaction_log.load_interaction_log(w.root / "float_label.tfrecord"),
     ValueError, "column 'label' must be one int64"),
    ("item_table_lacks_logged_items",
     lambda w: interaction_log.load_interaction_log(w.root / "log.csv", item_table=w.root / "items.csv"),
     ValueError, r"logged item_id\(s\) are not in the item table \(first: \[7, 8, 9"),
    # -- history examples
    ("history_unsorted", lambda w: F.validate_examples(
        _longest_history_edited(w, _last_event_older_than_the_one_before), w.schema),
     ValueError, "not sorted by time"),
    ("history_event_at_request_time", lambda w: F.validate_examples(
        _longest_history_edited(w, _last_event_at_request_time), w.schema),
     ValueError, "Leakage in example"),
    ("history_too_long", lambda w: F.validate_examples(
        _edited(w.examples, "hist_timestamp", lambda v: np.pad(v, ((0, 0), (1, 0)))), w.schema),
     ValueError, r"'hist_timestamp' must have shape \[batch, 6\]"),
    ("history_mask_not_right_aligned", lambda w: F.validate_examples(
        _edited(w.examples, F.HISTORY_MASK, lambda v: v[:, ::-1]), w.schema),
     ValueError, "not right-aligned"),
    ("examples_missing_feature", lambda w: F.validate_examples(
        {k: v for k, v in w.examples.items() if k != "hist_category"}, w.schema),
     ValueError, r"missing feature\(s\) \['hist_category'\]"),
    ("examples_nan_token", lambda w: F.validate_examples(
        _edited(w.token_examples, F.HISTORY_TOKEN, lambda v: _set_last(v, np.nan)), TOKEN_SCHEMA),
     ValueError, "'hist_token' contains NaN or infinity"),
    ("examples_token_of_another_version", lambda w: F.validate_examples(
        w.token_examples, dataclasses.replace(TOKEN_SCHEMA, token_version="tokens-v2")),
     ValueError, "not of version 'tokens-v2'"),
    # -- the ranking model
    ("model_float_ids", lambda w: w.model(_model_features(w, hist_item_id=tf.ones([8, 6]))),
     ValueError, "'hist_item_id' must be an integer tensor"),
    ("model_missing_feature", lambda w: w.model(_model_features(w, hist_mask=None)),
     ValueError, r"missing feature\(s\) \['hist_mask'\]"),
    ("model_history_too_long", lambda w: w.model(_model_features(w, hist_item_id=tf.ones([8, 9], tf.int64))),
     ValueError, r"'hist_item_id' must have shape \[None, 6\]"),
    ("model_unknown_encoder_name", lambda w: models.build_ranking_model(w.schema, "transformer_xl"),
     ValueError, "Unknown history encoder 'transformer_xl'"),
    ("hisac_nan_temperature", lambda w: _hisac(w, fanouts=(2, 2), temperature=float("nan")),
     ValueError, "temperature must be a finite number > 0, got nan"),
    ("hisac_infinite_temperature", lambda w: _hisac(w, fanouts=(2, 2), temperature=float("inf")),
     ValueError, "temperature must be a finite number > 0, got inf"),
    ("hisac_fractional_fanouts", lambda w: _hisac(w, fanouts=(2.9, 1.5)),
     ValueError, r"must be integers; got \[2.9, 1.5\] \(nothing is rounded\)"),
    # -- codebooks
    ("codebook_of_another_version", lambda w: Codebook.load(w.root / "codebook", expected_version="other"),
     CodebookError, "differs from the expected 'other'"),
    ("codebook_of_other_level_sizes", lambda w: Codebook.load(w.root / "codebook", expected_level_sizes=(8, 2)),
     CodebookError, r"level sizes \(4, 2\); expected \(8, 2\)"),
    ("codebook_truncated", lambda w: Codebook.load(
        _truncated_copy(w.root / "codebook", w.root / "codebook_copy", "codewords.npz")),
     CodebookError, "is missing, truncated or lacks metadata"),
    ("codebook_metadata_lacks_version", lambda w: Codebook.load(
        _metadata_without(w.root / "codebook", w.root / "codebook_copy_no_version", "version")),
     CodebookError, "lacks metadata \\(KeyError: 'version'\\)"),
    ("codebook_nan_vectors", lambda w: fit_residual_kmeans(_set_last(w.vectors.copy(), np.nan), (4, 2)),
     ValueError, r"NaN or infinity in 1 row\(s\), first rows \[39\]"),
    ("codebook_more_codes_than_vectors", lambda w: fit_residual_kmeans(w.vectors[:3], (4, 2)),
     ValueError, "has 4 codes but only 3 vectors"),
    ("codebook_vectors_of_another_dim", lambda w: w.codebook.assign(w.vectors[:, :3]),
     ValueError, "have dim 3; the codebook expects dim 4"),
    # -- IAT token stores
    ("token_store_of_another_version", lambda w: TokenStore.load(w.root / "tokens", expected_version="tokens-v2"),
     TokenVersionError, "differs from the expected 'tokens-v2'"),
    ("token_store_of_another_dim", lambda w: TokenStore.load(w.root / "tokens", expected_token_dim=8),
     TokenVersionError, "has token_dim 2; the model expects"),
    ("tokens_attached_of_another_version", lambda w: w.store.attach(w.examples, expected_version="tokens-v2"),
     TokenVersionError, "tokens come from another source model"),
    ("token_store_damaged", lambda w: TokenStore.load(
        _truncated_copy(w.root / "tokens", w.root / "tokens_copy", "tokens.npz")),
     ValueError, "missing or damaged"),
    ("tokens_nan", lambda w: TokenStore.build(w.log, np.full((8, 2), np.nan, np.float32), "v", "user_order"),
     ValueError, "tokens contain NaN or infinity"),
    ("tokens_one_short", lambda w: TokenStore.build(w.log, np.zeros((7, 2), np.float32), "v", "user_order"),
     ValueError, r"tokens must have shape \[8, token_dim\]"),
    # -- splits and datasets
    ("split_of_an_empty_log", lambda w: history.time_cutoff(np.array([], np.int64), 0.2),
     ValueError, "Cannot split an empty log"),
    ("eval_fraction_out_of_range", lambda w: history.check_eval_fraction(1.5),
     ValueError, r"eval_fraction must lie in \(0, 1\), got 1.5"),
    ("no_tfrecord_files", lambda w: tf_data.dataset_from_tfrecords(str(w.root / "missing-*.gz"), w.schema, 8),
     ValueError, "No TFRecord files match"),
    ("schema_of_zero_items", lambda w: dataclasses.replace(w.schema, num_items=0),
     ValueError, "DataSchema.num_items must be a positive int"),
]


def _written_files(root):
    """The fixture's files with their bytes (not the damaged copies some cases make for themselves)."""
    return {path: data for path, data in helpers.file_bytes(root).items() if "_copy" not in str(path)}


@pytest.mark.parametrize("case, call, error, message", CASES, ids=[case[0] for case in CASES])
def test_bad_input_is_refused_and_nothing_written_is_changed(written, case, call, error, message):
    on_disk = _written_files(written.root)
    in_memory = copy.deepcopy((written.log, written.examples, written.token_examples, written.vectors))
    weights = [weight.copy() for weight in written.model.get_weights()]
    with pytest.raises(error, match=message):
        call(written)
    assert _written_files(written.root) == on_disk
    for before, after in zip(in_memory, (written.log, written.examples, written.token_examples, written.vectors)):
        if isinstance(before, dict):
            assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)
        else:
            np.testing.assert_array_equal(before, after)
    for before, after in zip(weights, written.model.get_weights()):
        np.testing.assert_array_equal(before, after)
