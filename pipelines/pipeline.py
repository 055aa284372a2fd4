"""``create_pipeline``: wires the components; it does no work and holds no settings of its own.

ExampleGen (the interaction log) -> [InstanceCompressor (IAT stage 1: source model + Beam token
writer), when the encoder reads instance tokens] -> [CodebookFitter (HiSAC: semantic vectors +
Beam codebook fit), when it reads semantic IDs] -> HistoryExampleGen (Beam; leakage-safe
histories, time split, schema, tokens) -> Trainer (``trainer_module.run_fn``) -> Evaluator (AUC threshold) -> Pusher (to
``saved_models/<model_name>/<version>/`` when blessed).
"""
from __future__ import annotations

import tensorflow_model_analysis as tfma
from google.protobuf import wrappers_pb2
from tfx import v1 as tfx

from pipelines.components.codebook_fitter import CodebookFitter
from pipelines.components.history_example_gen import HistoryExampleGen
from pipelines.components.instance_compressor import InstanceCompressor
from pipelines.configs import PipelineConfig
from tfrs_seqcompress import features as F
from tfrs_seqcompress import serving


def _example_gen(config: PipelineConfig):
    # One split: HistoryExampleGen splits by time, which a hash split would break.
    output_config = tfx.proto.Output(split_config=tfx.proto.SplitConfig(
        splits=[tfx.proto.SplitConfig.Split(name="log", hash_buckets=1)]))
    if config.data_format == "csv":
        return tfx.components.CsvExampleGen(input_base=config.data_dir, output_config=output_config)
    if config.data_format == "tfrecord":
        return tfx.components.ImportExampleGen(input_base=config.data_dir, output_config=output_config)
    raise ValueError(f"data_format must be 'csv' or 'tfrecord', got {config.data_format!r}.")


def _eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    auc_threshold = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
        lower_bound={"value": config.min_eval_auc}))
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name=serving.SIGNATURE_NAME, label_key=F.LABEL,
                                    prediction_key=serving.SCORE_KEY, preprocessing_function_names=[])],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="AUC", threshold=auc_threshold),
            tfma.MetricConfig(class_name="BinaryCrossentropy"),
            tfma.MetricConfig(class_name="ExampleCount"),
        ])],
        # The model's own compiled metrics (the TFRS task's) are training-time only.
        options=tfma.Options(include_default_metrics=wrappers_pb2.BoolValue(value=False)))


def create_pipeline(config: PipelineConfig) -> tfx.dsl.Pipeline:
    example_gen = _example_gen(config)
    components = [example_gen]
    features = {"event_features": ",".join(config.event_features), "context_features": ",".join(config.context_features)}
    tokens = {}
    if config.uses_instance_tokens:
        compressor = InstanceCompressor(
            log_examples=example_gen.outputs["examples"], scheme=config.iat_scheme, token_dim=config.token_dim,
            eval_fraction=config.eval_fraction, epochs=config.source_epochs, seed=config.seed, **features)
        components.append(compressor)
        tokens = {"instance_tokens": compressor.outputs["instance_tokens"]}
    if config.uses_codebook:
        fitter = CodebookFitter(
            log_examples=example_gen.outputs["examples"], level_sizes=",".join(map(str, config.codebook_levels)),
            eval_fraction=config.eval_fraction, semantic_dim=config.semantic_dim,
            event_features=features["event_features"], iterations=config.codebook_iterations, seed=config.seed)
        components.append(fitter)
        tokens["codebook"] = fitter.outputs["codebook"]
    history_gen = HistoryExampleGen(
        log_examples=example_gen.outputs["examples"], history_length=config.history_length,
        eval_fraction=config.eval_fraction, **features, **tokens)
    trainer = tfx.components.Trainer(
        run_fn="pipelines.trainer_module.run_fn",
        examples=history_gen.outputs["history_examples"], schema=history_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=["train"]), eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config=config.trainer_custom_config())
    evaluator = tfx.components.Evaluator(
        examples=history_gen.outputs["history_examples"], model=trainer.outputs["model"],
        eval_config=_eval_config(config), example_splits=["eval"])
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.serving_model_dir)))
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name, pipeline_root=config.pipeline_root,
        components=components + [history_gen, trainer, evaluator, pusher], enable_cache=True,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_path),
        beam_pipeline_args=list(config.beam_pipeline_args))
