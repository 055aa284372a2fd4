"""``create_pipeline``: wires the components; it does no work and holds no settings of its own.

ExampleGen (the interaction log) -> [InstanceCompressor (IAT stage 1: source model + Beam token
writer), when the encoder reads instance tokens] -> [CodebookFitter (HiSAC: semantic vectors +
Beam codebook fit), when it reads semantic IDs] -> HistoryExampleGen (Beam; leakage-safe
histories, time split, schema, tokens) -> Trainer (``trainer_module.run_fn``) -> validation ->
Pusher (``AtomicPusher``: to ``saved_models/<model_name>/<version>/`` when blessed) -> [AgentWriter
(every user's precomputed agents for the pushed version), when the encoder has agents].

Validation: the Evaluator compares the candidate's AUC and GAUC with the last blessed model's
(``LatestBlessedModelResolver``); ``EvaluatorVsBaseline`` with a model of the baseline encoder
(``BaselineTrainer``); ``BlessingGate`` blesses only when both did. Floors and allowed drops come
from ``PipelineConfig``.
"""
from __future__ import annotations

import functools

import tensorflow_model_analysis as tfma
from google.protobuf import wrappers_pb2
from tfx import v1 as tfx

from pipelines import gauc_metric
from pipelines.components.agent_writer import AgentWriter
from pipelines.components.atomic_pusher import AtomicPusher
from pipelines.components.blessing_gate import BlessingGate
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


def _thresholds(lower_bound: float, max_drop: float) -> tfma.MetricThreshold:
    """At least ``lower_bound``, and at most ``max_drop`` below the baseline model (when there is one)."""
    return tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": lower_bound}),
        change_threshold=tfma.GenericChangeThreshold(direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                                                     absolute={"value": -max_drop}))


def eval_config(config: PipelineConfig, max_drop: float) -> tfma.EvalConfig:
    """AUC and GAUC of the candidate (``serving_default``, or a raw-ID model's ``serving_ids``, over
    the eval split), each above its floor and at most ``max_drop`` below the baseline model's.
    Without a baseline (the first run) TFX ignores the change thresholds."""
    # A raw-ID model's serving_default takes strings; the examples here carry the integer IDs.
    signature = serving.ID_SIGNATURE_NAME if config.vocabularies_path else serving.SIGNATURE_NAME
    spec = dict(signature_name=signature, label_key=F.LABEL, prediction_key=serving.SCORE_KEY,
                preprocessing_function_names=[])
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(name="candidate", **spec),
                     tfma.ModelSpec(name="baseline", is_baseline=True, **spec)],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(metrics=[
                tfma.MetricConfig(class_name="AUC", threshold=_thresholds(config.min_eval_auc, max_drop)),
                tfma.MetricConfig(class_name="BinaryCrossentropy"),
                tfma.MetricConfig(class_name="ExampleCount")]),
            tfma.MetricsSpec(query_key=F.USER_ID, metrics=[
                tfma.MetricConfig(class_name="GroupAUC", module=gauc_metric.__name__,
                                  threshold=_thresholds(config.min_eval_gauc, max_drop))]),
        ],
        # The model's own compiled metrics (the TFRS task's) are training-time only.
        options=tfma.Options(include_default_metrics=wrappers_pb2.BoolValue(value=False)))


def _search(config: PipelineConfig) -> dict:
    """HistoryExampleGen's bounded-window parameters (none: examples hold the last L events)."""
    if not config.search_window:
        return {}
    recent, retrieved = config.search_window
    return {"search_recent": recent, "search_retrieved": retrieved}


def _trainer(config: PipelineConfig, history_gen, encoder: str):
    return tfx.components.Trainer(
        run_fn="pipelines.trainer_module.run_fn",
        examples=history_gen.outputs["history_examples"], schema=history_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=["train"]), eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config=config.trainer_custom_config(encoder))


def _validation(config: PipelineConfig, history_gen, trainer) -> tuple[list, tfx.dsl.Channel]:
    """The candidate against the last blessed model and, if configured, a baseline-encoder model.

    Returns the components and the blessing the Pusher reads."""
    artifacts = tfx.types.standard_artifacts
    # Only the gate's verdict (or, without a baseline encoder, the Evaluator's) counts as blessed.
    blessed_by = "BlessingGate" if config.baseline_encoder else "Evaluator"
    latest_blessed = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=artifacts.Model, producer_component_id="Trainer", output_key="model"),
        model_blessing=tfx.dsl.Channel(type=artifacts.ModelBlessing, producer_component_id=blessed_by,
                                       output_key="blessing")).with_id("LatestBlessedModelResolver")
    evaluate = functools.partial(tfx.components.Evaluator, examples=history_gen.outputs["history_examples"],
                                 model=trainer.outputs["model"], example_splits=["eval"])
    evaluator = evaluate(baseline_model=latest_blessed.outputs["model"],
                         eval_config=eval_config(config, config.max_drop_vs_blessed)).with_id("Evaluator")
    if not config.baseline_encoder:
        return [latest_blessed, evaluator], evaluator.outputs["blessing"]
    baseline_trainer = _trainer(config, history_gen, config.baseline_encoder).with_id("BaselineTrainer")
    vs_baseline = evaluate(baseline_model=baseline_trainer.outputs["model"],
                           eval_config=eval_config(config, config.max_drop_vs_baseline)).with_id("EvaluatorVsBaseline")
    gate = BlessingGate(vs_blessed=evaluator.outputs["blessing"], vs_baseline=vs_baseline.outputs["blessing"])
    return [latest_blessed, evaluator, baseline_trainer, vs_baseline, gate], gate.outputs["blessing"]


def create_pipeline(config: PipelineConfig) -> tfx.dsl.Pipeline:
    example_gen = _example_gen(config)
    components = [example_gen]
    features = {"event_features": ",".join(config.event_features), "context_features": ",".join(config.context_features)}
    tokens = {}
    if config.uses_instance_tokens:
        compressor = InstanceCompressor(
            log_examples=example_gen.outputs["examples"], scheme=config.iat_scheme, token_dim=config.token_dim,
            eval_fraction=config.eval_fraction, epochs=config.source_epochs, seed=config.seed,
            split_rule=config.split_rule, **features)
        components.append(compressor)
        tokens = {"instance_tokens": compressor.outputs["instance_tokens"]}
    if config.uses_codebook:
        fitter = CodebookFitter(
            log_examples=example_gen.outputs["examples"], level_sizes=",".join(map(str, config.codebook_levels)),
            eval_fraction=config.eval_fraction, split_rule=config.split_rule, semantic_dim=config.semantic_dim,
            event_features=features["event_features"], iterations=config.codebook_iterations, seed=config.seed,
            item_vectors_path=config.item_vectors_path)
        components.append(fitter)
        tokens["codebook"] = fitter.outputs["codebook"]
    history_gen = HistoryExampleGen(
        log_examples=example_gen.outputs["examples"], history_length=config.history_length,
        eval_fraction=config.eval_fraction, split_rule=config.split_rule, targets_per_user=config.targets_per_user,
        target_column=config.target_column, **_search(config), **features, **tokens)
    trainer = _trainer(config, history_gen, config.encoder)
    validation, blessing = _validation(config, history_gen, trainer)
    pusher = AtomicPusher(
        model=trainer.outputs["model"], model_blessing=blessing,
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.serving_model_dir)))
    after_push = []
    if config.writes_agents:
        after_push.append(AgentWriter(pushed_model=pusher.outputs["pushed_model"],
                                      log_examples=example_gen.outputs["examples"],
                                      schema=history_gen.outputs["schema"],
                                      instance_tokens=tokens.get("instance_tokens")))
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name, pipeline_root=config.pipeline_root,
        components=components + [history_gen, trainer, *validation, pusher, *after_push], enable_cache=True,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_path),
        beam_pipeline_args=list(config.beam_pipeline_args))
