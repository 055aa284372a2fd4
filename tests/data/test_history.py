"""Leakage-safe history building: strictly-earlier events, last L, right-aligned; Beam == in-memory."""
import dataclasses

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing.util import assert_that, equal_to

from tests import helpers
from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import history, history_beam, tf_data


def _row(examples, user, timestamp, item):
    rows = np.flatnonzero((examples[F.USER_ID] == user) & (examples[F.TIMESTAMP] == timestamp)
                          & (examples[F.ITEM_ID] == item))
    assert len(rows) == 1
    return {name: values[rows[0]] for name, values in examples.items()}


def test_history_holds_only_strictly_earlier_events_right_aligned():
    examples = history.build_history_examples(helpers.tiny_log(), helpers.tiny_schema(history_length=3))
    target = _row(examples, user=1, timestamp=300, item=8)
    np.testing.assert_array_equal(target["hist_item_id"], [5, 6, 7])
    np.testing.assert_array_equal(target["hist_mask"], [1, 1, 1])
    np.testing.assert_array_equal(target["hist_hour"], [1, 2, 3])
    # Two events at t=200: neither sees the other (same time is not "before").
    for item in (6, 7):
        tied = _row(examples, user=1, timestamp=200, item=item)
        np.testing.assert_array_equal(tied["hist_item_id"], [0, 0, 5])
        np.testing.assert_array_equal(tied["hist_mask"], [0, 0, 1])


def test_history_keeps_only_the_last_l_events():
    examples = history.build_history_examples(helpers.tiny_log(), helpers.tiny_schema(history_length=3))
    last = _row(examples, user=1, timestamp=400, item=12)
    np.testing.assert_array_equal(last["hist_item_id"], [6, 7, 8])
    np.testing.assert_array_equal(last["hist_timestamp"], [200, 200, 300])


def test_first_event_has_a_fully_masked_history_and_users_never_mix():
    examples = history.build_history_examples(helpers.tiny_log(), helpers.tiny_schema())
    first = _row(examples, user=3, timestamp=50, item=11)
    assert first["hist_mask"].sum() == 0 and first["hist_item_id"].sum() == 0
    second_of_user_2 = _row(examples, user=2, timestamp=160, item=10)
    np.testing.assert_array_equal(second_of_user_2["hist_item_id"][-1:], [9])
    assert second_of_user_2["hist_mask"].sum() == 1


def test_no_history_event_is_at_or_after_its_target_on_random_logs():
    rng = np.random.default_rng(0)
    log = {F.USER_ID: rng.integers(1, 5, 400), F.ITEM_ID: rng.integers(1, 20, 400),
           F.TIMESTAMP: rng.integers(0, 50, 400), F.LABEL: rng.integers(0, 2, 400),
           F.CATEGORY: rng.integers(1, 4, 400), "hour": rng.integers(0, 24, 400)}
    examples = history.build_history_examples(log, helpers.tiny_schema(history_length=8))
    F.validate_examples(examples, helpers.tiny_schema(history_length=8))  # raises on any leak
    valid = examples[F.HISTORY_MASK].astype(bool)
    assert (examples["hist_timestamp"][valid] < np.broadcast_to(examples[F.TIMESTAMP][:, None], valid.shape)[valid]).all()


def _random_log(size=400, seed=0):
    rng = np.random.default_rng(seed)
    return {F.USER_ID: rng.integers(1, 5, size), F.ITEM_ID: rng.integers(1, 20, size),
            F.TIMESTAMP: rng.integers(0, 50, size), F.LABEL: rng.integers(0, 2, size),
            F.CATEGORY: rng.integers(1, 4, size), "hour": rng.integers(0, 24, size)}


def test_history_index_batches_equal_the_materialised_examples_each_epoch_reshuffled():
    schema = helpers.tiny_schema(history_length=8)
    log = _random_log()
    everything = history.build_history_examples(log, schema)
    index = history.HistoryIndex(F.validate_log(log, schema), schema)
    rows = np.arange(0, len(index), 3)  # a sample of targets, as a long-history benchmark takes
    dataset = tf_data.dataset_from_history_index(index, rows, batch_size=32, shuffle_seed=0)
    orders = []
    for _ in range(2):
        batches = list(dataset.as_numpy_iterator())
        built = {name: np.concatenate([batch[name] for batch in batches]) for name in everything}
        order = np.lexsort((built[F.ITEM_ID], built[F.TIMESTAMP], built[F.USER_ID]))
        for name, values in everything.items():  # the same examples, whatever the order
            np.testing.assert_array_equal(built[name][order], values[rows], err_msg=name)
        orders.append(built[F.TIMESTAMP] * 100 + built[F.USER_ID])
    assert not np.array_equal(*orders)  # reshuffled every epoch
    unshuffled = list(tf_data.dataset_from_history_index(index, rows, batch_size=1000).as_numpy_iterator())
    np.testing.assert_array_equal(unshuffled[0][F.HISTORY_MASK], everything[F.HISTORY_MASK][rows])


def test_min_history_drops_targets_with_too_few_earlier_events():
    schema = helpers.tiny_schema(history_length=8)
    examples = history.build_history_examples(_random_log(), schema, min_history=5)
    everything = history.build_history_examples(_random_log(), schema)
    assert 0 < len(examples[F.LABEL]) < len(everything[F.LABEL])
    assert (examples[F.HISTORY_MASK].sum(axis=1) >= 5).all()
    assert len(examples[F.LABEL]) == (everything[F.HISTORY_MASK].sum(axis=1) >= 5).sum()


def test_time_split_puts_the_last_fraction_of_time_in_eval():
    examples = history.build_history_examples(helpers.tiny_log(), helpers.tiny_schema())
    cutoff = history.time_cutoff(helpers.tiny_log()[F.TIMESTAMP], eval_fraction=0.25)
    assert cutoff == 312  # 400 - 0.25 * (400 - 50), rounded
    train, evaluation = history.split_by_time(examples, cutoff)
    assert train[F.TIMESTAMP].max() < cutoff <= evaluation[F.TIMESTAMP].min()
    assert len(train[F.TIMESTAMP]) + len(evaluation[F.TIMESTAMP]) == 8


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_bad_eval_fraction_is_rejected(fraction):
    with pytest.raises(ValueError, match="eval_fraction must lie in \\(0, 1\\)"):
        history.time_cutoff(np.array([1, 2]), fraction)


@pytest.mark.parametrize("given", ["schema", "example_spec"])
def test_beam_transform_matches_in_memory_builder(given):
    schema = helpers.tiny_schema(history_length=3)
    log = helpers.tiny_log()
    examples = history.build_history_examples(log, schema)
    train, evaluation = history.split_by_time(examples, history.time_cutoff(log[F.TIMESTAMP], 0.25))
    # The pipeline knows no vocabulary before this step: it builds from the example spec alone.
    what = schema if given == "schema" else schema.example_spec
    with beam.Pipeline() as pipeline:
        outputs = (pipeline | beam.Create(helpers.log_events(log))
                   | history_beam.BuildHistoryExamples(what, eval_fraction=0.25))
        for split, expected in (("train", train), ("eval", evaluation)):
            assert_that(outputs[split] | f"Decode{split}" >> beam.Map(helpers.decoded_example),
                        equal_to([helpers.decoded_example(record) for record in F.to_tf_examples(expected)]), label=split)
        assert_that(outputs["max_ids"], equal_to([{F.USER_ID: 3, F.ITEM_ID: 12, F.CATEGORY: 3, "hour": 8}]),
                    label="max_ids")


def test_log_example_missing_column_is_named():
    example = tf.train.Example()
    example.features.feature[F.USER_ID].int64_list.value.append(1)
    with pytest.raises(ValueError, match="missing column 'item_id'"):
        history_beam.parse_log_example(example.SerializeToString(), F.LOG_COLUMNS)


def test_log_example_with_text_column_is_rejected():
    example = tf.train.Example()
    for name in F.LOG_COLUMNS:
        example.features.feature[name].int64_list.value.append(1)
    example.features.feature[F.ITEM_ID].ClearField("int64_list")
    example.features.feature[F.ITEM_ID].bytes_list.value.append(b"movie")
    with pytest.raises(ValueError, match="'item_id' must be one int64 per event, got bytes_list"):
        history_beam.parse_log_example(example.SerializeToString(), F.LOG_COLUMNS)


def _brute_force_search(index, row, recent, retrieved, keys):
    """The rows a bounded history should hold, by plain Python over the sorted log."""
    earlier = list(range(index.first[row], index.start[row]))
    newest = earlier[-recent:] if recent else []
    reach = max(index.first[row], index.start[row] - index.schema.history_length)
    older = [r for r in range(reach, index.start[row] - recent) if keys[r] == keys[row]]
    return (older[-retrieved:] if retrieved else []) + newest


def test_search_examples_hold_the_recent_events_and_the_latest_earlier_events_of_the_targets_key():
    from tfrs_seqcompress.data import synthetic
    world = synthetic.generate(synthetic.SyntheticConfig(num_users=30, mean_history=300, seed=1, history_length=200))
    index = history.HistoryIndex(world.dataset.log, world.dataset.schema)
    keys = index.events[F.CATEGORY].copy()
    rows = np.random.default_rng(0).choice(len(index), 300, replace=False)
    tokens = np.random.default_rng(1).random((len(index), 3)).astype(np.float32)
    examples = index.search_examples(rows, recent=8, retrieved=5, event_keys=keys, event_arrays={"token": tokens})
    assert examples["hist_item_id"].shape == (300, 13) and examples["hist_token"].shape == (300, 13, 3)
    for position, row in enumerate(rows):
        expected = _brute_force_search(index, row, 8, 5, keys)
        mask = examples[F.HISTORY_MASK][position].astype(bool)
        assert mask.sum() == len(expected) and np.all(np.diff(mask.astype(int)) >= 0)  # padding first
        np.testing.assert_array_equal(examples["hist_item_id"][position][mask], index.events[F.ITEM_ID][expected])
        np.testing.assert_array_equal(examples["hist_timestamp"][position][mask], index.events[F.TIMESTAMP][expected])
        np.testing.assert_array_equal(examples["hist_token"][position][mask], tokens[expected])
        assert not examples["hist_token"][position][~mask].any()
    # An ordinary history example of length 13: the contract's checks (order, leakage, padding) pass.
    F.validate_examples({name: values for name, values in examples.items() if name != "hist_token"},
                        dataclasses.replace(world.dataset.schema, history_length=13))


def test_search_examples_refuse_an_empty_window_and_keys_of_the_wrong_length():
    index = history.HistoryIndex(helpers.tiny_log(), helpers.tiny_schema(history_length=3))
    with pytest.raises(ValueError, match="must be >= 0 and not both 0"):
        index.search_examples(np.arange(3), 0, 0, np.zeros(len(index), np.int64))
    with pytest.raises(ValueError, match=r"event_keys must be \[num_events=8\] integers"):
        index.search_examples(np.arange(3), 2, 2, np.zeros(5, np.int64))


def test_a_shorter_window_holds_the_same_last_events():
    index = history.HistoryIndex(helpers.tiny_log(), helpers.tiny_schema(history_length=3))
    full, short = index.examples(), index.examples(length=2)
    for name, values in short.items():
        expected = full[name][:, -2:] if name.startswith(F.HISTORY_PREFIX) else full[name]
        np.testing.assert_array_equal(values, expected)


def test_a_request_history_is_the_training_history_of_a_target_at_that_time():
    log, schema = helpers.tiny_log(), helpers.tiny_schema(history_length=3)
    examples = history.build_history_examples(log, schema)
    tokens = np.arange(len(log[F.USER_ID]) * 2, dtype=np.float32).reshape(-1, 2)
    for row in range(len(examples[F.USER_ID])):
        user, time = int(examples[F.USER_ID][row]), int(examples[F.TIMESTAMP][row])
        built = history.request_history(log, user, time, schema, event_arrays={"token": tokens})
        for name in [n for n in examples if n.startswith(F.HISTORY_PREFIX)]:
            np.testing.assert_array_equal(built[name], examples[name][row], err_msg=name)
        expected_tokens = np.zeros((3, 2), np.float32)
        rows = [i for i in np.lexsort((log[F.ITEM_ID], log[F.TIMESTAMP]))
                if log[F.USER_ID][i] == user and log[F.TIMESTAMP][i] < time][-3:]
        if rows:
            expected_tokens[3 - len(rows):] = tokens[rows]
        np.testing.assert_array_equal(built["hist_token"], expected_tokens)
    empty = history.request_history(log, user_id=99, request_time=10**9, schema=schema)
    assert not empty[F.HISTORY_MASK].any()
    with pytest.raises(ValueError, match=r"needs event column\(s\) \['hour'\]"):
        history.request_history({k: v for k, v in log.items() if k != "hour"}, 1, 300, schema)


def test_a_request_search_history_is_the_search_window_of_a_target_at_that_time():
    from tfrs_seqcompress.data import synthetic
    world = synthetic.generate(synthetic.SyntheticConfig(num_users=12, mean_history=200, seed=2, history_length=150))
    log, schema = world.dataset.log, world.dataset.schema
    index = history.HistoryIndex(log, schema)
    tokens = np.random.default_rng(0).random((len(index), 2)).astype(np.float32)
    keys = index.events[F.CATEGORY]
    rows = np.random.default_rng(1).choice(len(index), 40, replace=False)
    windows = index.search_examples(rows, 6, 4, keys, {"token": tokens})
    served = schema.with_history_length(10)   # the model's schema holds the window (6 + 4), as the pipeline's
    for position, row in enumerate(rows):
        user, time = int(index.events[F.USER_ID][row]), int(index.events[F.TIMESTAMP][row])
        built = history.request_search_history(index.events, user, time, schema, 6, 4, keys, int(keys[row]),
                                               {"token": tokens})
        from_served = history.request_search_history(index.events, user, time, served, 6, 4, keys, int(keys[row]),
                                                     {"token": tokens}, within_last=150)
        for name, values in built.items():
            if name != F.USER_ID:
                np.testing.assert_array_equal(values, windows[name][position], err_msg=name)
                np.testing.assert_array_equal(from_served[name], values, err_msg=name)


def test_the_beam_job_can_rank_a_seeded_sample_of_each_users_events():
    from tfrs_seqcompress.data import synthetic
    world = synthetic.generate(synthetic.SyntheticConfig(num_users=6, mean_history=40, seed=1, history_length=5))
    log, schema = world.dataset.log, world.dataset.schema
    everything = history.build_history_examples(log, schema)
    expected = []
    for user in np.unique(log[F.USER_ID]):
        rows = np.flatnonzero(everything[F.USER_ID] == user)
        expected += [rows[i] for i in history_beam.sampled_targets(user, len(rows), 4)]
    decoded = [helpers.decoded_example(e) for e in F.to_tf_examples(history.select(everything, np.array(expected)))]
    with beam.Pipeline() as pipeline:
        outputs = (pipeline | beam.Create(helpers.log_events(log))
                   | history_beam.BuildHistoryExamples(schema, 0.2, targets_per_user=4))
        both = (outputs["train"], outputs["eval"]) | beam.Flatten() | beam.Map(helpers.decoded_example)
        assert_that(both, equal_to(decoded))
    assert len(decoded) == 4 * len(np.unique(log[F.USER_ID]))  # every user here has more than 4 events
    assert list(history_beam.sampled_targets(3, 10, 4)) == list(history_beam.sampled_targets(3, 10, 4))
    assert list(history_beam.sampled_targets(3, 3, 4)) == [0, 1, 2]


def test_the_beam_job_ranks_only_the_events_a_target_column_marks():
    from tfrs_seqcompress.data import synthetic
    world = synthetic.generate(synthetic.SyntheticConfig(num_users=6, mean_history=40, seed=2, history_length=5))
    schema = world.dataset.schema
    log = {**world.dataset.log, "is_target": (np.random.default_rng(0).random(len(world.dataset.log[F.LABEL]))
                                              < 0.3).astype(np.int64)}
    index = history.HistoryIndex(log, schema)
    everything = index.examples()   # every event's example; the marked ones are the targets
    expected = []
    for user in np.unique(log[F.USER_ID]):
        marked = np.flatnonzero((index.events[F.USER_ID] == user) & (index.events["is_target"] == 1))
        expected += [marked[i] for i in history_beam.sampled_targets(user, len(marked), 3)]
    expected = np.array(expected)
    decoded = [helpers.decoded_example(e) for e in F.to_tf_examples(history.select(everything, expected))]
    # The events arrive as the pipeline's ExampleGen writes them and are parsed with the builder's columns.
    columns = history_beam.event_columns(tuple(schema.event_features), "is_target")
    with beam.Pipeline() as pipeline:
        outputs = (pipeline | beam.Create(F.to_tf_examples(log))
                   | beam.Map(history_beam.parse_log_example, columns)
                   | history_beam.BuildHistoryExamples(schema, 0.2, targets_per_user=3, target_column="is_target"))
        both = (outputs["train"], outputs["eval"]) | beam.Flatten() | beam.Map(helpers.decoded_example)
        assert_that(both, equal_to(decoded))
    # Every earlier event is history, not only the earlier targets: each window holds min(L, earlier events).
    earlier = index.start[expected] - index.first[expected]
    np.testing.assert_array_equal(everything[F.HISTORY_MASK][expected].sum(axis=1), np.minimum(earlier, 5))
    earlier_marked = np.array([index.events["is_target"][index.first[row]:index.start[row]].sum() for row in expected])
    assert (np.minimum(earlier, 5) > earlier_marked).any()


def test_the_beam_job_builds_search_windows_like_the_index():
    # The latest event plus the latest two earlier ones of the target's category, searched over the last 5.
    log = {F.USER_ID: np.array([1] * 8 + [2, 2]), F.ITEM_ID: np.arange(1, 11),
           F.TIMESTAMP: np.array([10, 20, 30, 40, 50, 60, 70, 80, 15, 25]), F.LABEL: np.array([1, 0] * 5),
           F.CATEGORY: np.array([1, 2, 1, 2, 1, 2, 1, 2, 1, 1]), "hour": np.arange(1, 11)}
    schema = F.DataSchema(num_users=3, num_items=11, num_categories=3, history_length=5, event_features={"hour": 11})
    index = history.HistoryIndex(log, schema)
    everything = index.search_examples(np.arange(len(index)), 1, 2, index.events[F.CATEGORY])
    last = int(np.flatnonzero(everything[F.TIMESTAMP] == 80)[0])
    assert everything[F.history_name(F.TIMESTAMP)][last].tolist() == [40, 60, 70]  # 2 of category 2, then the latest
    train, evaluation = history.split_by_time(everything, history.time_cutoff(log[F.TIMESTAMP], 0.25))
    spec = dataclasses.replace(schema.example_spec, history_length=3)
    with beam.Pipeline() as pipeline:
        outputs = (pipeline | beam.Create(helpers.log_events(log))
                   | history_beam.BuildHistoryExamples(spec, 0.25, search_window=(1, 2), search_depth=5))
        for split, expected in (("train", train), ("eval", evaluation)):
            assert_that(outputs[split] | f"Decode{split}" >> beam.Map(helpers.decoded_example),
                        equal_to([helpers.decoded_example(record) for record in F.to_tf_examples(expected)]), label=split)


@pytest.mark.parametrize("window, depth, message", [
    ((1, 1), 5, "must be >= 0 and add up to the examples' L = 3"), ((-1, 4), 5, "must be >= 0 and add up"),
    ((2, 1), 2, "within search_depth = 2"), ((1.5, 1.5), 5, "must be two ints"), ((1, 1, 1), 5, "must be two ints")])
def test_a_search_window_that_does_not_fit_the_examples_is_refused(window, depth, message):
    spec = F.ExampleSpec(history_length=3)
    with pytest.raises(ValueError, match=message):
        history_beam.BuildHistoryExamples(spec, 0.25, search_window=window, search_depth=depth)


def test_a_per_user_split_puts_the_last_part_of_every_users_time_in_eval():
    log = {F.USER_ID: np.array([1] * 5 + [2] * 5), F.ITEM_ID: np.arange(1, 11),
           F.TIMESTAMP: np.array([0, 10, 20, 30, 40, 1000, 1010, 1020, 1030, 1040]),
           F.LABEL: np.array([1, 0] * 5), F.CATEGORY: np.ones(10, np.int64), "hour": np.arange(1, 11)}
    schema = F.DataSchema(num_users=3, num_items=11, num_categories=2, history_length=3, event_features={"hour": 11})
    examples = history.build_history_examples(log, schema)
    # One cutoff for everyone (1040 - 0.25 x 1040 = 780): user 1 only trains, user 2 only evaluates.
    train, evaluation = history.split_by_time(examples, history.event_cutoffs(
        log[F.USER_ID], log[F.TIMESTAMP], 0.25, "time"))
    assert set(train[F.USER_ID]) == {1} and set(evaluation[F.USER_ID]) == {2}
    # Each user's own cutoff (40 - 10 = 30; 1040 - 10 = 1030): both users' last two events evaluate.
    cutoffs = history.event_cutoffs(log[F.USER_ID], log[F.TIMESTAMP], 0.25, "user_time", examples[F.USER_ID])
    train, evaluation = history.split_by_time(examples, cutoffs)
    assert sorted(evaluation[F.TIMESTAMP].tolist()) == [30, 40, 1030, 1040]
    with beam.Pipeline() as pipeline:
        outputs = (pipeline | beam.Create(helpers.log_events(log))
                   | history_beam.BuildHistoryExamples(schema, 0.25, split_rule="user_time"))
        for split, expected in (("train", train), ("eval", evaluation)):
            assert_that(outputs[split] | f"Decode{split}" >> beam.Map(helpers.decoded_example),
                        equal_to([helpers.decoded_example(record) for record in F.to_tf_examples(expected)]), label=split)


def test_an_unknown_split_rule_is_refused():
    with pytest.raises(ValueError, match="Unknown split rule 'per_item'; expected one of \\['time', 'user_time'\\]"):
        history_beam.BuildHistoryExamples(F.ExampleSpec(history_length=3), 0.25, split_rule="per_item")
