"""End to end: the real TFX pipeline (LocalDagRunner, SQLite MLMD, Beam) on a small synthetic log.

Runs the local runner in a subprocess exactly as users do, then checks a model was pushed to
``<serving dir>/<integer version>/`` and scores in a fresh process; then feeds a broken log and
checks the error is clear and the pushed model is untouched. Validation: the first model is
blessed on AUC and GAUC by both Evaluators and the gate; re-runs that demand a gain over the last
blessed model or the baseline encoder push nothing. The examples are search windows
(``--search-window``: the 4 latest events plus 4 of the target's category within the last 10);
the HiSAC runs cover the last-L examples.
"""
import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tests.e2e import runs
from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import history, interaction_log, tf_data

WINDOW = ("--search-window", "4,4")   # within the runs' --history-length 10


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("pipeline")
    result = runs.run_pipeline(tmp_path, runs.write_small_log(tmp_path), *WINDOW)
    assert result.returncode == 0, result.stderr[-5000:]
    return tmp_path, result


def test_pipeline_pushes_a_versioned_model(pipeline_run):
    tmp_path, result = pipeline_run
    versions = [path for path in (tmp_path / "saved_models" / "ranker").iterdir()]
    assert len(versions) == 1 and versions[0].name.isdigit(), versions
    assert (versions[0] / "saved_model.pb").exists()
    assert (versions[0] / "assets.extra" / "tf_serving_warmup_requests").exists()
    assert f"pushed model: {versions[0]}" in result.stdout
    states = runs.newest_execution_states(tmp_path)
    for component in ("CsvExampleGen", "HistoryExampleGen", "Trainer", "Evaluator", "Pusher"):
        assert states[component] == "COMPLETE", states
        assert f"[pipeline] {component}: COMPLETE in " in result.stdout  # the one line the terminal gets
    log_path = result.stdout.split("[pipeline] full log: ")[1].split()[0]
    assert "Component Trainer is finished" in pathlib.Path(log_path).read_text()  # TFX's logs: in the file
    assert len(result.stdout.splitlines()) <= 60 and "training din_full: epoch 3/3" in result.stdout


def test_pushed_model_scores_eval_examples_in_a_fresh_process(pipeline_run):
    tmp_path, _ = pipeline_run
    version = next((tmp_path / "saved_models" / "ranker").iterdir())
    examples_dir = next((tmp_path / "root").glob("HistoryExampleGen/history_examples/*"))
    eval_files = sorted(tf.io.gfile.glob(tf_data.split_file_pattern(str(examples_dir), "eval")))
    assert eval_files, "HistoryExampleGen wrote no eval split"
    with pytest.raises(ValueError, match="Unknown split 'test'.*expected one of \\['eval', 'train'\\]"):
        tf_data.split_file_pattern(str(examples_dir), "test")
    code = (
        "import sys, json, tensorflow as tf\n"
        "model = tf.saved_model.load(sys.argv[1])\n"
        "records = [r.numpy() for r in tf.data.TFRecordDataset(sys.argv[2], compression_type='GZIP').take(64)]\n"
        "parsed = tf.io.parse_example(records, {'label': tf.io.FixedLenFeature([], tf.int64)})\n"
        "scores = model.signatures['serving_default'](examples=tf.constant(records))['score'].numpy()\n"
        "print(json.dumps({'n': len(records), 'min': float(scores.min()), 'max': float(scores.max())}))\n")
    answer = json.loads(helpers.run_python(code, str(version), str(eval_files[0])).stdout.strip().splitlines()[-1])
    assert answer["n"] > 0 and 0.0 < answer["min"] <= answer["max"] < 1.0


def test_the_examples_are_the_search_windows_the_library_builds(pipeline_run):
    tmp_path, _ = pipeline_run
    dataset = interaction_log.load_interaction_log(tmp_path / "input" / "log.csv", history_length=10,
                                                   context_features=tuple(runs.CONTEXT.split(",")))
    index = history.HistoryIndex(dataset.log, dataset.schema)
    expected = index.search_examples(np.arange(len(index)), 4, 4, index.events[F.CATEGORY])
    written = runs.history_records(tmp_path, "train") + runs.history_records(tmp_path, "eval")
    assert sorted(map(helpers.decoded_example, written)) == sorted(map(helpers.decoded_example,
                                                                       F.to_tf_examples(expected)))
    schema = runs.artifacts(tmp_path, "Schema")[-1]
    assert json.loads(schema.custom_properties["search_window"].string_value) == {
        "recent": 4, "retrieved": 4, "within_last": 10, "key": "category"}
    assert F.DataSchema.from_json(schema.custom_properties["data_schema"].string_value).history_length == 8


def _newest_blessing(tmp_path, producer: str):
    blessings = [artifact for artifact in runs.artifacts(tmp_path, "ModelBlessing") if f"/{producer}/" in artifact.uri]
    return max(blessings, key=lambda artifact: artifact.id)


def test_both_evaluators_and_the_gate_blessed_the_first_model_on_auc_and_gauc(pipeline_run):
    import tensorflow_model_analysis as tfma

    tmp_path, result = pipeline_run
    for producer in ("Evaluator", "EvaluatorVsBaseline", "BlessingGate"):
        blessing = _newest_blessing(tmp_path, producer)
        assert blessing.custom_properties["blessed"].int_value == 1, producer
        assert (pathlib.Path(blessing.uri) / "BLESSED").exists()
    # The first run has no blessed model yet; the baseline-encoder comparison does have a baseline.
    assert "baseline_model_id" not in _newest_blessing(tmp_path, "Evaluator").custom_properties
    assert runs.newest_execution_states(tmp_path)["BaselineTrainer"] == "COMPLETE"
    evaluation = next((tmp_path / "root").glob("EvaluatorVsBaseline/evaluation/*"))
    metrics = {(pair.key.model_name, pair.key.is_diff, pair.key.name): pair.value.double_value.value
               for sliced in tfma.load_metrics(str(evaluation)) for pair in sliced.metric_keys_and_values}
    for model in ("candidate", "baseline"):
        assert 0.5 < metrics[(model, False, "auc")] < 1.0 and 0.5 < metrics[(model, False, "group_auc")] < 1.0
    gauc = {model: metrics[(model, False, "group_auc")] for model in ("candidate", "baseline")}
    assert metrics[("candidate", True, "group_auc")] == pytest.approx(gauc["candidate"] - gauc["baseline"])


@pytest.mark.parametrize("flag, refused_by", [("--max-drop-vs-blessed", "Evaluator (vs the last blessed model)"),
                                               ("--max-drop-vs-baseline", "EvaluatorVsBaseline")])
def test_a_candidate_that_does_not_improve_enough_is_not_pushed(pipeline_run, flag, refused_by):
    tmp_path, _ = pipeline_run
    serving_dir = tmp_path / "saved_models" / "ranker"
    before = runs.tree_digest(serving_dir)
    first_model = _newest_blessing(tmp_path, "BlessingGate").custom_properties["current_model_id"].int_value
    # A negative allowed drop is a required gain: 0.2 AUC and GAUC over the reference.
    result = runs.run_pipeline(tmp_path, tmp_path / "input" / "log.csv", flag, "-0.2", *WINDOW)
    assert result.returncode == 0, result.stderr[-3000:]
    gate = _newest_blessing(tmp_path, "BlessingGate")
    assert gate.custom_properties["blessed"].int_value == 0
    assert gate.custom_properties["refused_by"].string_value.startswith(refused_by)
    assert f"not blessed: refused by {refused_by}" in result.stdout
    # The comparison was with the model the first run blessed and pushed.
    vs_blessed = _newest_blessing(tmp_path, "Evaluator")
    assert vs_blessed.custom_properties["baseline_model_id"].int_value == first_model
    assert runs.tree_digest(serving_dir) == before
    # Same log, same training settings: a re-run (a scheduled refresh with no new data) reuses the
    # cached steps and only re-evaluates.
    states = runs.newest_execution_states(tmp_path)
    assert states["CsvExampleGen"] == states["HistoryExampleGen"] == states["Trainer"] == "CACHED", states


def test_a_rerun_that_blesses_the_same_model_pushes_no_duplicate(pipeline_run):
    tmp_path, _ = pipeline_run
    serving_dir = tmp_path / "saved_models" / "ranker"
    before = runs.tree_digest(serving_dir)
    result = runs.run_pipeline(tmp_path, tmp_path / "input" / "log.csv", *WINDOW)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _newest_blessing(tmp_path, "BlessingGate").custom_properties["blessed"].int_value == 1
    assert "blessed, and already served" in result.stdout
    assert runs.tree_digest(serving_dir) == before


def test_model_below_the_auc_threshold_is_not_pushed(pipeline_run):
    tmp_path, _ = pipeline_run
    serving_dir = tmp_path / "saved_models" / "ranker"
    before = runs.tree_digest(serving_dir)
    result = runs.run_pipeline(tmp_path, tmp_path / "input" / "log.csv", *WINDOW, min_eval_auc="0.99")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no model pushed this run (not blessed" in result.stdout
    assert runs.tree_digest(serving_dir) == before


def test_bad_hisac_settings_are_refused_before_anything_runs(pipeline_run):
    tmp_path, _ = pipeline_run
    before = runs.tree_digest(tmp_path / "saved_models" / "ranker")
    result = runs.run_pipeline(tmp_path, tmp_path / "input" / "log.csv", "--encoder", "hisac",
                               "--codebook-levels", "8,4", "--fanouts", "2,5")
    assert result.returncode == 2
    assert "--fanouts 2,5 must give one fan-out per codebook level (8,4)" in result.stderr
    assert runs.tree_digest(tmp_path / "saved_models" / "ranker") == before


def test_broken_log_fails_clearly_and_damages_nothing(pipeline_run):
    tmp_path, _ = pipeline_run
    serving_dir = tmp_path / "saved_models" / "ranker"
    before = runs.tree_digest(serving_dir)
    broken = tmp_path / "input" / "broken.csv"
    broken.write_text("user_id,item_id,timestamp,label\n1,2,3,1\n")
    result = runs.run_pipeline(tmp_path, broken)
    assert result.returncode == 2
    assert "missing column(s) ['category']" in result.stderr
    assert runs.tree_digest(serving_dir) == before
