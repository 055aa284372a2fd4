"""Property-based fuzzing of the two doors data comes in by: log files and serving requests.

The contract for any input: either the exact data is accepted (a log read back value for value, a
request scored like the model scores it directly) or a clear error is raised (``ValueError`` for a
log, ``InvalidArgumentError`` for a request) — never a crash of another kind, never a silently
changed value, and the file read is left as it was. 500 generated logs and 500 generated requests.
"""
import dataclasses
import re

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfrs_seqcompress import features as F
from tfrs_seqcompress import models, serving
from tfrs_seqcompress.data import history, interaction_log, synthetic, tf_data

FUZZ = settings(max_examples=500, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# ----------------------------------------------------------------------------- log files

HEADER = ("user_id", "item_id", "timestamp", "label", "category")
_EXACT = re.compile(r"\s*[+-]?[0-9]+\s*")
BAD_TOKENS = ["1.5", "2e3", "inf", "-inf", "nan", "", " ", "abc", "１２", "٣", "0x10", "1_000", "--1", "+",
              str(1 << 63), str(-(1 << 63) - 1), "7.0", "1;0"]


def _cell(name: str):
    good = st.sampled_from(["0", "1"]) if name == "label" else st.integers(-3, 10**9).map(str)
    spaced = good.map(lambda text: f" {text} ")
    return st.one_of(good, good, good, spaced, st.sampled_from(BAD_TOKENS), st.integers(-(1 << 64), 1 << 64).map(str))


_row = st.tuples(*[_cell(name) for name in HEADER]).map(list)
_rows = st.lists(st.one_of(_row, _row, _row, _row.map(lambda row: row[:-1]), _row.map(lambda row: row + ["9"])),
                 min_size=1, max_size=6)


def _expected_log(rows):
    """The log the reader must return for ``rows``, or None when it must refuse them (the contract,
    written out independently of the reader)."""
    if any(len(row) != len(HEADER) for row in rows):
        return None
    if not all(_EXACT.fullmatch(cell) for row in rows for cell in row):
        return None
    values = np.array([[int(cell) for cell in row] for row in rows], dtype=object)
    if (values < -(1 << 63)).any() or (values > (1 << 63) - 1).any():
        return None
    log = {name: values[:, column].astype(np.int64) for column, name in enumerate(HEADER)}
    if not np.isin(log["label"], (0, 1)).all():
        return None
    for name in ("user_id", "item_id", "category"):
        if (log[name] < 0).any() or (log[name] > interaction_log.MAX_ID).any():
            return None
    return log


@FUZZ
@given(rows=_rows)
def test_a_generated_log_is_read_exactly_or_refused_with_a_value_error(tmp_path, rows):
    path = tmp_path / "log.csv"
    text = ",".join(HEADER) + "\n" + "".join(",".join(row) + "\n" for row in rows)
    path.write_text(text, encoding="utf-8")
    expected = _expected_log(rows)
    if expected is None:
        with pytest.raises(ValueError):
            interaction_log.load_interaction_log(path)
    else:
        log = interaction_log.load_interaction_log(path).log
        for name in HEADER:
            np.testing.assert_array_equal(log[name], expected[name])
    assert path.read_text(encoding="utf-8") == text  # the user's file is never touched


# ----------------------------------------------------------------------------- serving requests

LENGTH = 8


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A trained DIN-full model's ``serving_default`` reloaded from its SavedModel, and good examples."""
    world = synthetic.generate(synthetic.SyntheticConfig(num_users=20, mean_history=60, history_length=LENGTH, seed=4))
    schema = world.dataset.schema
    examples = history.build_history_examples(world.dataset.log, schema, min_history=1)
    tf.keras.utils.set_random_seed(0)
    model = models.build_ranking_model(schema, "din_full")
    model.fit(tf_data.dataset_from_columns(examples, 256), epochs=1, verbose=0)
    export_dir = tmp_path_factory.mktemp("fuzz_model") / "1"
    serving.export_serving_model(model, str(export_dir))
    signature = tf.saved_model.load(str(export_dir)).signatures[serving.SIGNATURE_NAME]
    rows = np.flatnonzero(examples[F.HISTORY_MASK].sum(axis=1) >= 3)[:50]
    good = {name: values[rows] for name, values in examples.items() if name != F.LABEL}
    return signature, model, schema, good


def _break_order(columns, row):
    times = columns["hist_timestamp"][row]
    times[-1], times[-2] = times[-2] - 1, times[-1]


def _break_leakage(columns, row):
    columns["hist_timestamp"][row, -1] = columns[F.TIMESTAMP][row] + 1


def _break_mask(columns, row):
    columns[F.HISTORY_MASK][row, :] = columns[F.HISTORY_MASK][row, ::-1]
    columns[F.HISTORY_MASK][row, 0], columns[F.HISTORY_MASK][row, -1] = 1, 0


def _negative(name):
    def edit(columns, row):
        columns[name][row] = -columns[name][row] - 1
    return edit


def _set_label(columns, row):
    columns["hist_label"][row, -1] = 3


# Edits that break the contract (the request must be refused) and edits that keep it (scored).
BREAKING = [_break_order, _break_leakage, _break_mask, _negative(F.ITEM_ID), _negative(F.CATEGORY),
            _negative("hist_item_id"), _set_label]


def _unknown_item(columns, row):
    columns[F.ITEM_ID][row] = 10**7  # newer than the model: served as the unknown ID


def _other_candidate(columns, row):
    columns[F.ITEM_ID][row] = max(1, columns[F.ITEM_ID][row] // 2)


KEEPING = [_unknown_item, _other_candidate]


@FUZZ
@given(data=st.data())
def test_a_generated_request_is_scored_exactly_or_refused(served, data):
    signature, model, schema, good = served
    size = data.draw(st.integers(1, 4))
    rows = data.draw(st.lists(st.integers(0, len(good[F.USER_ID]) - 1), min_size=size, max_size=size))
    columns = {name: values[rows].copy() for name, values in good.items()}
    # Each (edit, row) at most once: negating an ID twice would restore it.
    edits = data.draw(st.lists(st.tuples(st.sampled_from(BREAKING + KEEPING), st.integers(0, size - 1)), max_size=3,
                               unique=True))
    for edit, row in sorted(edits, key=lambda pair: pair[0] in BREAKING):  # a kept edit may not undo a break
        edit(columns, row)
    request = tf.constant(F.to_tf_examples(columns))
    if any(edit in BREAKING for edit, _ in edits):
        with pytest.raises(tf.errors.InvalidArgumentError):
            signature(examples=request)
        return
    scores = signature(examples=request)[serving.SCORE_KEY].numpy()
    direct = tf.sigmoid(model({name: tf.constant(values) for name, values in columns.items()})).numpy()
    np.testing.assert_allclose(scores, direct, rtol=1e-5, atol=1e-6)
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
