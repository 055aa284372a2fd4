"""A pipeline run killed mid-way (SIGKILL to the runner and its Beam workers while the Trainer
trains, on the bounded-window path of long histories) pushes nothing; re-running the same command
resumes from ML Metadata's cache (the example generation is not redone) and pushes the model
uninterrupted training on those examples gives."""
import json
import os
import pathlib
import signal
import subprocess
import time

import numpy as np

from pipelines import configs
from pipelines.components import data_schema_io
from tests import helpers
from tests.e2e import runs
from tfrs_seqcompress import model_push

KILL_AFTER_SECONDS = 5  # once the Trainer is running: mid-training on this log
# The long-history path: bounded windows (the latest events + those of the target's category).
WINDOW = ("--search-window", "4,4")

SCORES = """
import json, sys, tensorflow as tf
records = [r.numpy() for r in tf.data.TFRecordDataset(tf.io.gfile.glob(sys.argv[1]), compression_type="GZIP").take(200)]
scores = [tf.saved_model.load(path).signatures["serving_default"](examples=tf.constant(records))["score"].numpy()
          for path in sys.argv[2:]]
print(json.dumps([s.tolist() for s in scores]))
"""


def _kill_while_training(command: list[str]) -> str:
    """Starts the runner, SIGKILLs its process group a few seconds after the Trainer starts."""
    runner = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=helpers.subprocess_env(), cwd=str(helpers.REPO_ROOT), start_new_session=True)
    output = []
    for line in runner.stdout:
        output.append(line)
        if line.startswith("[pipeline] Trainer: running"):
            time.sleep(KILL_AFTER_SECONDS)
            os.killpg(runner.pid, signal.SIGKILL)
            break
    runner.wait(timeout=60)
    assert runner.returncode == -signal.SIGKILL, "".join(output)[-3000:]
    return "".join(output)


def test_a_killed_run_pushes_nothing_and_the_rerun_resumes_from_cache_to_the_same_model(tmp_path):
    data = runs.write_small_log(tmp_path)
    killed = _kill_while_training(runs.pipeline_command(tmp_path, data, *WINDOW))
    assert "[pipeline] HistoryExampleGen: COMPLETE" in killed
    serving_dir = tmp_path / "saved_models" / "ranker"
    assert model_push.model_versions(str(serving_dir)) == [] and not list(tmp_path.glob("saved_models/*/.incoming*"))
    states = runs.newest_execution_states(tmp_path)
    assert states["HistoryExampleGen"] == "COMPLETE" and states["Trainer"] == "RUNNING", states

    resumed = runs.run_pipeline(tmp_path, data, *WINDOW)  # the same command again
    assert resumed.returncode == 0, resumed.stderr[-5000:]
    states = runs.newest_execution_states(tmp_path)
    assert states["CsvExampleGen"] == states["HistoryExampleGen"] == "CACHED", states
    assert states["Trainer"] == "COMPLETE", states
    versions = model_push.model_versions(str(serving_dir))
    assert len(versions) == 1 and f"pushed model: {serving_dir / str(versions[0])}" in resumed.stdout

    # The same model as uninterrupted training on the cached examples (same run_fn and settings).
    examples = next((tmp_path / "root").glob("HistoryExampleGen/history_examples/*"))
    schema_dir = next((tmp_path / "root").glob("HistoryExampleGen/schema/*"))
    paths = {"train": str(examples / "Split-train" / "*"), "eval": str(examples / "Split-eval" / "*"),
             "schema": str(schema_dir / data_schema_io.SCHEMA_FILE), "serving": str(tmp_path / "reference"),
             "run": str(tmp_path / "reference_run"),
             "config": configs.PipelineConfig(data_dir="", epochs=runs.EPOCHS,
                                              batch_size=runs.BATCH_SIZE).trainer_custom_config("din_full")}
    helpers.run_python(helpers.RUN_FN, json.dumps(paths))
    scores = json.loads(helpers.run_python(SCORES, paths["eval"], str(serving_dir / str(versions[0])),
                                           paths["serving"]).stdout.strip().splitlines()[-1])
    assert len(scores[0]) > 0
    np.testing.assert_array_equal(np.array(scores[0]), np.array(scores[1]))
    assert pathlib.Path(paths["serving"], "saved_model.pb").exists()
