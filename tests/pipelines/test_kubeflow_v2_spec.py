"""The pipeline compiles for Kubeflow Pipelines v2 / Vertex AI: the runner writes its pipeline spec."""
import json

import pytest

from pipelines import configs, kubeflow_v2_runner


@pytest.mark.parametrize("encoder, own_steps", [
    ("din_full", []), ("iat", ["InstanceCompressor"]), ("hisac", ["CodebookFitter"])])
def test_the_kubeflow_v2_runner_writes_a_pipeline_spec(tmp_path, encoder, own_steps):
    output = tmp_path / "pipeline.json"
    beam_args = ("--runner=FlinkRunner", "--flink_master=flink:8081", "--environment_type=EXTERNAL")
    config = configs.PipelineConfig(
        pipeline_name=kubeflow_v2_runner.KUBEFLOW_PIPELINE_NAME, data_dir="gs://bucket/log", encoder=encoder,
        pipeline_root="gs://bucket/root", serving_model_dir="gs://bucket/saved_models/ranker",
        beam_pipeline_args=beam_args)
    kubeflow_v2_runner.compile_pipeline(config, "registry.example/tfrs-seqcompress:1", str(output))

    spec = json.loads(output.read_text())["pipelineSpec"]
    tasks = set(spec["root"]["dag"]["tasks"])
    assert {"CsvExampleGen", *own_steps, "HistoryExampleGen", "Trainer", "BaselineTrainer", "Evaluator",
            "EvaluatorVsBaseline", "BlessingGate", "Pusher"} <= tasks
    assert any(task.startswith("LatestBlessedModelResolver") for task in tasks)
    executors = spec["deploymentSpec"]["executors"]
    assert {executor["container"]["image"] for executor in executors.values() if "container" in executor} == {
        "registry.example/tfrs-seqcompress:1"}
    pusher = executors["Pusher_executor"]["container"]["args"]
    assert "pipelines.components.atomic_pusher.AtomicPushExecutor" in pusher
    beam_step = executors["HistoryExampleGen_executor"]["container"]["args"]
    assert all(argument in beam_step for argument in beam_args)      # Beam steps run where the flags say
    def parameter(task, name):
        return spec["root"]["dag"]["tasks"][task]["inputs"]["parameters"][name]["runtimeValue"]["constantValue"][
            "stringValue"]

    assert parameter("Trainer", "run_fn") == "pipelines.trainer_module.run_fn"
    assert json.loads(parameter("Trainer", "custom_config"))["encoder"] == encoder
    assert json.loads(parameter("BaselineTrainer", "custom_config"))["encoder"] == "mean"


def test_the_command_line_passes_the_example_settings_on(tmp_path):
    output = tmp_path / "spec.json"
    assert kubeflow_v2_runner.main(["--data-dir", "gs://b/log", "--pipeline-root", "gs://b/root",
                                    "--serving-model-dir", "gs://b/saved_models/ranker", "--image", "img:1",
                                    "--encoder", "iat", "--history-length", "1000", "--targets-per-user", "20",
                                    "--split", "user_time", "--search-window", "64,64", "--output", str(output)]) == 0
    tasks = json.loads(output.read_text())["pipelineSpec"]["root"]["dag"]["tasks"]
    given = {name: value["runtimeValue"]["constantValue"]
             for name, value in tasks["HistoryExampleGen"]["inputs"]["parameters"].items()}
    assert {name: str(next(iter(given[name].values()))) for name in
            ("history_length", "targets_per_user", "split_rule", "search_recent", "search_retrieved")} == {
        "history_length": "1000", "targets_per_user": "20", "split_rule": "user_time", "search_recent": "64",
        "search_retrieved": "64"}
    assert kubeflow_v2_runner.main(["--data-dir", "d", "--pipeline-root", "r", "--serving-model-dir", "s",
                                    "--image", "i", "--encoder", "hisac", "--search-window", "8,8"]) == 2


def test_the_command_line_compiles_too(tmp_path):
    output = tmp_path / "spec.json"
    assert kubeflow_v2_runner.main(["--data-dir", "gs://b/log", "--pipeline-root", "gs://b/root",
                                    "--serving-model-dir", "gs://b/saved_models/ranker", "--image", "img:1",
                                    "--beam-arg=--runner=DataflowRunner", "--output", str(output)]) == 0
    assert json.loads(output.read_text())["pipelineSpec"]["pipelineInfo"]["name"] == "tfrs-seqcompress"
