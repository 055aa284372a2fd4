"""Compiles the pipeline for Kubeflow Pipelines v2 / Vertex AI Pipelines (a pipeline-spec JSON).

The same ``create_pipeline`` as the local runner; only where things run changes. The cluster
needs an image with this package installed (``pip install .`` on top of
``gcr.io/tfx-oss-public/tfx:1.16.0``): the trainer's ``run_fn``, the custom components, the
atomic pusher and the GAUC metric are imported by their dotted paths inside it. Paths must be
ones every worker reads (``gs://``): the interaction log (CSV files already in the data
contract's form — check one first with
``tfrs_seqcompress.data.interaction_log.load_interaction_log``), the pipeline root, the serving
directory.
Beam steps run where ``--beam-arg`` says (e.g. ``--runner=DataflowRunner --project=...
--region=... --temp_location=gs://...``).

    python -m pipelines.kubeflow_v2_runner --data-dir gs://bucket/log --pipeline-root gs://bucket/root \\
        --serving-model-dir gs://bucket/saved_models/ranker --image gcr.io/me/tfrs-seqcompress:0.1 \\
        --beam-arg=--runner=DataflowRunner --beam-arg=--project=me --output pipeline.json
    # then submit pipeline.json (Vertex: aiplatform.PipelineJob(template_path="pipeline.json", ...).submit())
"""
from __future__ import annotations

import argparse
import os
import sys

from pipelines import configs
from tfrs_seqcompress.data import history

# Kubeflow pipeline names match [a-z0-9][a-z0-9-]{0,127}.
KUBEFLOW_PIPELINE_NAME = configs.PIPELINE_NAME.replace("_", "-")


def compile_pipeline(config: configs.PipelineConfig, image: str, output_path: str) -> str:
    """Writes the Kubeflow V2 pipeline spec of ``config`` to ``output_path``; returns that path."""
    from tfx import v1 as tfx
    from pipelines.pipeline import create_pipeline

    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=os.path.dirname(os.path.abspath(output_path)), output_filename=os.path.basename(output_path))
    runner.run(create_pipeline(config), write_out=True)
    return output_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compile the pipeline for Kubeflow Pipelines v2 / Vertex AI.")
    parser.add_argument("--data-dir", required=True, help="directory of the interaction-log CSV files")
    parser.add_argument("--pipeline-root", required=True)
    parser.add_argument("--serving-model-dir", required=True)
    parser.add_argument("--image", required=True, help="container image with tfrs_seqcompress installed")
    parser.add_argument("--encoder", default="din_full")
    parser.add_argument("--context-features", default="")
    parser.add_argument("--event-features", default="")
    defaults = configs.PipelineConfig(data_dir="")
    parser.add_argument("--history-length", type=int, default=defaults.history_length)
    parser.add_argument("--targets-per-user", type=int, default=defaults.targets_per_user)
    parser.add_argument("--target-column", default="", help="a 0/1 column of the log marking the ranking targets")
    parser.add_argument("--split", default=defaults.split_rule, choices=history.SPLIT_RULES)
    parser.add_argument("--search-window", metavar="RECENT,RETRIEVED", help="bounded histories (see the local runner)")
    parser.add_argument("--item-vectors", default="", help="item vectors CSV every worker reads (e.g. gs://...)")
    parser.add_argument("--short-term-last-n", type=int, default=defaults.short_term_last_n,
                        help="a DIN over the last N events beside the encoder (see the local runner; 0: none)")
    parser.add_argument("--beam-arg", action="append", default=[], help="a Beam pipeline option (repeatable)")
    parser.add_argument("--output", default="pipeline.json")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    from pipelines import local_runner   # the local run's checks of the window and the short-term base

    error = local_runner.check_search_window(args) or local_runner.check_short_term(args)
    if error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 2
    config = configs.PipelineConfig(
        pipeline_name=KUBEFLOW_PIPELINE_NAME, data_dir=args.data_dir, pipeline_root=args.pipeline_root,
        serving_model_dir=args.serving_model_dir,
        encoder=args.encoder, context_features=tuple(filter(None, args.context_features.split(","))),
        event_features=tuple(filter(None, args.event_features.split(","))),
        history_length=args.history_length, targets_per_user=args.targets_per_user, target_column=args.target_column,
        split_rule=args.split, search_window=local_runner._ints(args.search_window) if args.search_window else (),
        item_vectors_path=args.item_vectors, short_term_last_n=args.short_term_last_n,
        beam_pipeline_args=tuple(args.beam_arg) or configs.PipelineConfig.beam_pipeline_args)
    print(f"[kubeflow_v2] wrote {compile_pipeline(config, args.image, args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
