"""The long-history benchmark's protocol on its toy block: time splits, selection on validation,
the chosen setting over seeds, one block per dataset / variant / L, refusal to mix settings."""
import json

import numpy as np
import pytest

from benchmarks import long_history
from tfrs_seqcompress import features as F


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    output = tmp_path_factory.mktemp("long_history")

    def in_this_process(*args, **kwargs):
        pytest.fail("a run was trained in the benchmark's own process, not a fresh one")

    with pytest.MonkeyPatch.context() as patch:  # every run is trained in a fresh process by default
        patch.setattr(long_history, "run_one", in_this_process)
        long_history.main(["--blocks", "synthetic_smoke_L100", "--encoders", "hisac", "--seeds", "0,1",
                           "--output-dir", str(output)])
    return output / long_history.RESULT_FILE


def test_targets_split_by_time_with_the_latest_fifth_as_test():
    data = long_history.load_block(long_history.BLOCKS["synthetic_smoke_L100"])
    times = {name: data.index.events[F.TIMESTAMP][rows] for name, rows in data.splits.items()}
    assert times["train"].max() < data.validation_from <= times["validation"].min()
    assert times["validation"].max() <= times["test"].min()
    total = sum(len(rows) for rows in data.splits.values())
    assert abs(len(data.splits["test"]) / total - 0.2) < 0.02 and abs(len(data.splits["validation"]) / total - 0.1) < 0.02
    assert 0.5 < data.sizes["bayes_auc"] <= 1.0


def test_a_block_holds_every_setting_on_validation_and_the_chosen_one_over_seeds(smoke_results):
    (block,) = json.loads(smoke_results.read_text())
    assert (block["dataset"], block["variant"], block["history_length"]) == ("synthetic", "smoke", 100)
    for name, row in block["encoders"].items():
        best = max(row["selection"], key=lambda entry: entry["validation_auc"])
        assert row["chosen"] == best["setting"], name
        assert row["seeds"] == [0, 1] and len(row["runs"]) == 2
        aucs = [run["test_auc"] for run in row["runs"]]
        assert row["summary"]["test_auc"]["mean"] == pytest.approx(np.mean(aucs))
        assert {"train_examples_per_second", "peak_rss_mb", "serving_ms_p50", "test_auc_long_tail",
                "rss_at_start_mb"} <= set(row["summary"])
        assert all(0 < run["rss_at_start_mb"] <= run["peak_rss_mb"] for run in row["runs"]), name
    assert [entry["setting"]["fanouts"] for entry in block["encoders"]["hisac"]["selection"]] == [[16, 8], [32, 8]]
    assert "serving_agents_ms_p50" in block["encoders"]["hisac"]["summary"]  # the O(K) path is measured too


def test_rows_of_another_setting_are_not_mixed_into_a_block(smoke_results, tmp_path):
    (block,) = json.loads(smoke_results.read_text())
    copy = tmp_path / "long_history.json"
    copy.write_text(smoke_results.read_text())
    other = {**block, "settings": {**block["settings"], "epochs": 5}}
    with pytest.raises(ValueError, match="made with other settings or data"):
        long_history.write_block(copy, other)


def test_an_interrupted_block_resumes_from_its_finished_runs(smoke_results, monkeypatch):
    before = smoke_results.read_text()
    runs_file = smoke_results.parent / long_history.RUNS_FILE
    assert len(runs_file.read_text().splitlines()) == 3  # two settings on validation, then seed 1 of the chosen

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(long_history, "run_one", no_training)
    long_history.main(["--blocks", "synthetic_smoke_L100", "--encoders", "hisac", "--seeds", "0,1",
                       "--output-dir", str(smoke_results.parent), "--same-process"])
    assert json.loads(smoke_results.read_text())[0]["encoders"] == json.loads(before)[0]["encoders"]
    with pytest.raises(AssertionError, match="trained again"):  # another seed is a new run
        long_history.main(["--blocks", "synthetic_smoke_L100", "--encoders", "hisac", "--seeds", "0,2",
                           "--output-dir", str(smoke_results.parent), "--same-process"])


def test_a_block_with_a_grid_compares_equal_to_itself_read_back():
    data = long_history.load_block(long_history.BLOCKS["synthetic_smoke_L100"])
    with_grid = long_history.dataclasses.replace(data.block, grids={"hisac": {"fanouts": ((16, 8), (32, 8))}})
    header = long_history.block_header(long_history.dataclasses.replace(data, block=with_grid))
    assert header["settings"]["grids"] == {"hisac": {"fanouts": [[16, 8], [32, 8]]}}
    assert header == json.loads(json.dumps(header))


def test_the_evidence_posterior_follows_the_history_labels_depth_and_dwell():
    world = long_history.synthetic.generate(long_history.synthetic.SyntheticConfig(num_users=5, mean_history=30))

    def posterior(labels, action_type, dwell):
        events = {"label": np.array(labels), "action_type": np.array(action_type), "dwell": np.array(dwell),
                  "quality": np.zeros(len(labels))}
        return long_history.posterior_click_probability(world, events, 0.0)

    nothing, disliked = posterior([], [], []), posterior([0] * 8, [0] * 8, [0] * 8)
    liked = posterior([1] * 8, [2] * 8, [4] * 8)
    assert disliked < nothing < liked
    # Eight deep clicks with long dwells leave no doubt the user has the interest.
    assert liked == pytest.approx(long_history.synthetic.click_probability(2.0), abs=0.03)
    # One click says more about the liking with a long dwell than with a short one.
    assert posterior([1], [1], [1]) < posterior([1], [1], [5])


def test_a_synthetic_block_reports_what_its_history_can_tell(smoke_results):
    analysis = json.loads(smoke_results.read_text())[0]["analysis"]
    for name in ("subcategory", "codebook_leaf", "category"):
        assert 0.5 < analysis[f"{name}_evidence_test_auc"] <= 1.0
    assert 0.0 <= analysis["user_click_rate_last_20_test_auc"] <= 1.0


def test_a_widened_grid_reuses_the_finished_runs_and_keeps_the_block(smoke_results, monkeypatch):
    smoke = long_history.BLOCKS["synthetic_smoke_L100"]
    same_runs = {"hisac": {"fanouts": ((16, 8), (32, 8)), "temperature_scale": (0.25,)}}
    monkeypatch.setitem(long_history.BLOCKS, "synthetic_smoke_L100",
                        long_history.dataclasses.replace(smoke, grids=same_runs, note="the same runs"))

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(long_history, "run_one", no_training)
    long_history.main(["--blocks", "synthetic_smoke_L100", "--encoders", "hisac", "--seeds", "0,1",
                       "--output-dir", str(smoke_results.parent), "--same-process"])
    (block,) = json.loads(smoke_results.read_text())
    assert block["settings"]["note"] == "the same runs" and len(block["encoders"]["hisac"]["runs"]) == 2


def test_the_user_click_rate_feature_reads_the_window_and_its_recent_part():
    # User 1 clicked early and not lately, user 2 the opposite; each target follows the user's recent clicks.
    labels = {1: [1, 1, 1, 1, 0, 0, 0], 2: [0, 0, 0, 0, 1, 1, 1]}
    log = {F.USER_ID: np.repeat([1, 2], 7), F.ITEM_ID: np.tile(np.arange(1, 8), 2),
           F.TIMESTAMP: np.tile(np.arange(100, 107), 2), F.LABEL: np.array(labels[1] + labels[2]),
           F.CATEGORY: np.ones(14, np.int64)}
    schema = F.DataSchema(num_users=3, num_items=8, num_categories=2, history_length=50)
    index = long_history.history.HistoryIndex(log, schema)
    targets = np.array([6, 13])   # each user's last event
    evidence = long_history.user_rate_evidence(index, targets, history_length=50, recent=(2,))
    assert evidence["user_click_rate_last_2_test_auc"] == 1.0   # the recent rate separates them
    assert evidence["user_click_rate_window_test_auc"] == 0.0   # the whole window points the other way
    assert np.isnan(evidence["user_click_rate_window_test_gauc"])   # one target per user: nothing within a user


def test_hisac_variants_run_at_the_temperature_hisac_chose():
    block = long_history.BLOCKS["ml-1m_L1000"]
    row = long_history.ROWS["hisac_short"]
    with pytest.raises(ValueError, match="run the hisac row of the block first"):
        long_history.settings_of(row, block, "hisac_short")
    settings = long_history.settings_of(row, block, "hisac_short", {"fanouts": [16, 8], "temperature_scale": 1.0})
    assert [setting["temperature_scale"] for setting in settings] == [1.0]


def test_a_block_grid_given_as_a_list_runs_each_grid_in_turn():
    row = long_history.ROWS["hisac"]
    block = long_history.dataclasses.replace(long_history.BLOCKS["synthetic_smoke_L100"], codebook=(32, 8), grids={
        "hisac": ({"fanouts": ((4, 2), (32, 8)), "temperature_scale": (0.25,)},
                  {"fanouts": ((32, 8),), "temperature_scale": (0.05, 1.0)})})
    settings = long_history.settings_of(row, block, "hisac")
    assert [(tuple(s["fanouts"]), s["temperature_scale"]) for s in settings] == [
        ((4, 2), 0.25), ((32, 8), 0.25), ((32, 8), 0.05), ((32, 8), 1.0)]


def test_a_summary_leaves_out_a_figure_that_older_recorded_runs_lack():
    summary = long_history.summarise([{"test_auc": 0.8, "rss_at_start_mb": 1200.0}, {"test_auc": 0.6}])
    assert summary == {"test_auc": {"mean": pytest.approx(0.7), "std": pytest.approx(0.1414, abs=1e-4)}}


def test_a_fresh_process_refuses_a_run_of_a_block_changed_since_the_parent_loaded_it():
    request = {"block": "synthetic_smoke_L100", "settings": {"epochs": 99}, "row": "hisac", "setting": {}, "seed": 0}
    with pytest.raises(ValueError, match="another block"):
        long_history.child_run(request)


def test_an_elbow_block_takes_its_codebook_levels_from_the_item_vectors():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(12, 8)) * 5.0
    vectors = np.concatenate([np.zeros((1, 8)), np.repeat(centres, 30, axis=0) + rng.normal(size=(360, 8)) * 0.3])
    block = long_history.dataclasses.replace(long_history.BLOCKS["synthetic_smoke_L100"], codebook=long_history.ELBOW)
    levels, analysis = long_history.codebook_levels(block, vectors.astype(np.float32))
    assert levels == (16, 16) and analysis["codebook_by_elbow"]["level_sizes"] == [16, 16]
    assert long_history.codebook_levels(long_history.BLOCKS["synthetic_smoke_L100"], vectors) == ((32, 8), {})
    # Fan-outs are checked against the resolved levels; None (every leaf) always fits.
    row = long_history.ROWS["hisac"]
    grid = long_history.dataclasses.replace(block, grids={"hisac": {"fanouts": ((32, 8), (8, 8), None)}})
    assert [s["fanouts"] for s in long_history.settings_of(row, grid, "hisac", levels=levels)] == [(8, 8), None]
