"""Runs the pipeline on this machine: LocalDagRunner, SQLite ML Metadata, Beam's DirectRunner.

Default data: MovieLens-100K from the fetched RecBole wheel. Bring your own log with ``--data``
(CSV or TFRecord following the data contract, ``--items`` for an optional item table)::

    python -m pipelines.local_runner                                   # MovieLens-100K
    python -m pipelines.local_runner --data my_log.csv --items items.csv --context-features hour

Either way the log is validated first (clear errors, nothing run), written as a normalised CSV
under the pipeline root, and the pushed model lands in ``saved_models/<model_name>/<version>/``.

The terminal gets one line per component as it starts and ends (read from ML Metadata:
``pipelines.progress``), a line per training epoch and the verdict; TFX's, Beam's and
TensorFlow's own logs go to ``<pipeline root>/logs/<time>.log``, whose path is printed
(``--verbose`` keeps them on the terminal instead).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import os
import pathlib
import re
import sys
import time

from absl import logging

from pipelines import configs
from tfrs_seqcompress import features as F
from tfrs_seqcompress import registry
from tfrs_seqcompress.data import history, interaction_log, movielens, raw_ids
from tfrs_seqcompress.hisac import semantic


# The pipeline materialises one example per event carrying its last L events: beyond this, the
# examples alone outgrow a single machine (sample targets in the library's benchmarks instead).
MAX_HISTORY_LENGTH = 10_000


def _write_if_changed(log, path: pathlib.Path) -> None:
    """Writes the CSV only when its content changes, so ExampleGen's cache stays valid across runs."""
    staging = path.with_suffix(".tmp")
    interaction_log.write_log_csv(log, staging)
    if path.exists() and path.read_bytes() == staging.read_bytes():
        staging.unlink()
    else:
        os.replace(staging, path)


def vocabulary_dir(pipeline_root: str, name: str) -> pathlib.Path:
    """Where a log's raw-ID vocabularies are staged, beside (not in) the directory ExampleGen reads."""
    return pathlib.Path(pipeline_root) / "data" / f"{name}.vocabularies"


def load_log(args: argparse.Namespace):
    """The chosen log, validated (nothing written): ``(dataset, name)``. Raw IDs keep the IDs the
    pipeline's previous run gave them (its vocabularies are extended, never reordered), so the last
    blessed model, which the new candidate is compared with, reads the same IDs."""
    if args.data:
        name = pathlib.Path(args.data).name.split(".")[0]
        latest = vocabulary_dir(args.pipeline_root, name) / raw_ids.LATEST_FILE
        dataset = interaction_log.load_interaction_log(
            args.data, args.items, args.history_length, tuple(filter(None, args.context_features.split(","))),
            target_column=args.target_column, raw_id_columns=tuple(filter(None, args.raw_ids.split(","))),
            previous_vocabularies=raw_ids.read_vocabularies(latest) if latest.exists() else None)
        return dataset, name
    if args.dataset == movielens.ML_1M:
        return movielens.load_movielens_1m(history_length=args.history_length), movielens.ML_1M
    return movielens.load_movielens_100k(history_length=args.history_length), movielens.ML_100K


def check_item_vectors(args: argparse.Namespace, num_items: int, first_level: int,
                       item_vocabulary: list[str] | None = None) -> str | None:
    """The error of an ``--item-vectors`` file that cannot give the codebook its vectors, else None
    (``item_vocabulary``: the log's raw item IDs, which the file then uses too)."""
    if not registry.ENCODERS[args.encoder].needs_codebook:
        return (f"--item-vectors feeds the codebook of the encoders that read semantic IDs "
                f"({', '.join(name for name, spec in registry.ENCODERS.items() if spec.needs_codebook)}); "
                f"--encoder {args.encoder} does not")
    vectors, unused = semantic.read_item_vectors(args.item_vectors, num_items, item_vocabulary)
    known = len(semantic.known_rows(vectors))
    if known < first_level:
        return (f"--item-vectors {args.item_vectors}: {known} of the log's items have a vector, fewer than the "
                f"codebook's first level ({first_level} codes); {unused['rows_not_in_log']} rows are of items "
                "the log does not show")
    return None


def stage_item_vectors(path: str, data_dir: str, item_vocabulary: list[str] | None = None) -> str:
    """A copy of the item-vector file named by its content's digest beside the staged log: the
    CodebookFitter's parameter changes exactly when the vectors do (a cached codebook is never stale).
    Keyed by raw item IDs (``item_vocabulary``), the copy is keyed by the log's integer IDs."""
    if item_vocabulary is None:
        content = pathlib.Path(path).read_bytes()
    else:
        vectors, _ = semantic.read_item_vectors(path, len(item_vocabulary) + 1, item_vocabulary)
        rekeyed = pathlib.Path(data_dir).parent / "item_vectors.rekeyed.tmp"
        content = semantic.write_item_vectors_csv(vectors, rekeyed).read_bytes()
        rekeyed.unlink()
    staged = pathlib.Path(data_dir).parent / f"item_vectors-{hashlib.sha256(content).hexdigest()[:16]}.csv"
    if not staged.exists():
        staged.write_bytes(content)
    return str(staged)


def prepare_log(args: argparse.Namespace, pipeline_root: str, loaded=None) -> tuple[str, F.DataSchema, str]:
    """Validates the chosen log (unless ``loaded`` already is) and stages it as CSV, and its raw-ID
    vocabularies if any; returns (data dir, schema, vocabularies path or "")."""
    dataset, name = loaded or load_log(args)
    data_dir = pathlib.Path(pipeline_root) / "data" / name
    data_dir.mkdir(parents=True, exist_ok=True)
    _write_if_changed(dataset.log, data_dir / "log.csv")
    vocabularies = (str(raw_ids.write_vocabularies(dataset.vocabularies, vocabulary_dir(pipeline_root, name)))
                    if dataset.vocabularies else "")
    return str(data_dir), dataset.schema, vocabularies


def _latest_verdict(metadata_path: str, gate: bool) -> str:
    """The newest candidate's verdict from ML Metadata ("blessed", or who refused it), as the gate
    (or, without a baseline encoder, the Evaluator) recorded it."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = metadata_path
    producer = "/BlessingGate/" if gate else "/Evaluator/"
    blessings = [artifact for artifact in metadata_store.MetadataStore(connection).get_artifacts_by_type(
        "ModelBlessing") if producer in artifact.uri]
    if not blessings:
        return "no verdict recorded"
    newest = max(blessings, key=lambda artifact: artifact.id).custom_properties
    if gate:
        return f"refused by {newest['refused_by'].string_value}" if newest["refused_by"].string_value else "blessed"
    return "refused by the Evaluator" if newest["blessed"].int_value != 1 else "blessed"


# A model name is one path component TF Serving can serve: no separators, never "." or "..".
_SAFE_MODEL_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def check_model_name(name: str) -> str | None:
    """The error for a ``--model-name`` that is not one safe path component, else None."""
    if not _SAFE_MODEL_NAME.fullmatch(name) or name in (".", ".."):
        return (f"--model-name {name!r} must be one name of letters, digits, '_', '.' or '-' (not '.' or '..'): "
                "it becomes the directory saved_models/<model-name>/")
    return None


def serving_directory(args: argparse.Namespace) -> str:
    """Where the Pusher writes: ``--serving-model-dir`` as given, else ``saved_models/<model-name>``,
    which must resolve to a directory strictly inside ``saved_models/``."""
    if args.serving_model_dir:
        return args.serving_model_dir
    base = pathlib.Path(os.path.normpath(configs.REPO_ROOT / "saved_models"))
    target = pathlib.Path(os.path.normpath(base / args.model_name))  # not resolved: a symlinked volume is fine
    if target.parent != base:
        raise ValueError(f"--model-name {args.model_name!r} resolves to {target}, outside {base}")
    return str(target)


def check_training_flags(args: argparse.Namespace) -> str | None:
    """The first error among the numeric flags (checked before any work), else None."""
    if args.targets_per_user < 0:
        return f"--targets-per-user must be >= 0 (0: every event), got {args.targets_per_user}"
    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size),
                        ("--token-dim", args.token_dim), ("--history-length", args.history_length)):
        if value < 1:
            return f"{flag} must be a positive integer, got {value}"
    if args.history_length > MAX_HISTORY_LENGTH:
        return (f"--history-length {args.history_length} is above {MAX_HISTORY_LENGTH:,}: every example would "
                "carry that many events per history feature")
    for flag, value in (("--min-eval-auc", args.min_eval_auc), ("--min-eval-gauc", args.min_eval_gauc),
                        ("--max-drop-vs-blessed", args.max_drop_vs_blessed),
                        ("--max-drop-vs-baseline", args.max_drop_vs_baseline)):
        if not math.isfinite(value):
            return f"{flag} must be a finite number, got {value}"
    if not (math.isfinite(args.temperature_scale) and args.temperature_scale > 0):
        return f"--temperature-scale must be a positive number, got {args.temperature_scale}"
    for flag, value in (("--min-eval-auc", args.min_eval_auc), ("--min-eval-gauc", args.min_eval_gauc)):
        if not 0.0 <= value <= 1.0:
            return f"{flag} must be between 0 and 1, got {value}"
    return None


def check_short_term(args: argparse.Namespace) -> str | None:
    """The error in ``--short-term-last-n`` (checked before any work), else None."""
    last_n = args.short_term_last_n
    if last_n < 0 or last_n > args.history_length:
        return (f"--short-term-last-n must be between 0 (no short-term base) and --history-length "
                f"({args.history_length}), got {last_n}")
    window = _ints(args.search_window) if args.search_window else ()
    recent = window[0] if len(window) == 2 else None
    if last_n and recent is not None and last_n > recent:
        return (f"--short-term-last-n {last_n} reads the last {last_n} events of each history, but --search-window "
                f"{args.search_window} keeps only the {recent} latest ones there (the rest are retrieved by category)")
    return None


def check_search_window(args: argparse.Namespace) -> str | None:
    """The error in ``--search-window`` (checked before any work), else None."""
    if not args.search_window:
        return None
    window = _ints(args.search_window)
    if len(window) != 2 or min(window) < 0 or sum(window) < 1 or sum(window) > args.history_length:
        return (f"--search-window {args.search_window!r} must be RECENT,RETRIEVED: two integers >= 0, not both 0, "
                f"adding up to at most --history-length ({args.history_length})")
    if args.encoder in registry.SEMANTIC_ENCODERS:
        return (f"--search-window is for encoders that read a bounded window (e.g. iat, din_full); {args.encoder} "
                "compresses the whole last --history-length events into agents and reads no window")
    return None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(value) for value in text.split(","))
    except ValueError:
        return ()


def parse_args(argv: list[str]) -> argparse.Namespace:
    defaults = configs.PipelineConfig(data_dir="")
    parser = argparse.ArgumentParser(description="Run the tfrs_seqcompress TFX pipeline locally.")
    parser.add_argument("--data", help="your interaction log (.csv, .tfrecord, .tfrecord.gz); default MovieLens-100K")
    parser.add_argument("--items", help="optional item table CSV (item_id, category) joined into the log")
    parser.add_argument("--context-features", default="",
                        help="comma-separated event features known at request time (with --data)")
    parser.add_argument("--raw-ids", default="",
                        help="with --data: comma-separated columns of raw IDs (strings or 64-bit hashes; of user_id, "
                             "item_id, category and event features), each mapped by a vocabulary the exported model "
                             "applies, so its serving_default takes the raw values")
    parser.add_argument("--dataset", default=movielens.ML_100K, choices=[movielens.ML_100K, movielens.ML_1M],
                        help="the built-in dataset when no --data is given (MovieLens-100K or -1M)")
    parser.add_argument("--history-length", type=int, default=defaults.history_length)
    parser.add_argument("--targets-per-user", type=int, default=defaults.targets_per_user,
                        help="rank at most this many of each user's events (a seeded draw; 0: every event)")
    parser.add_argument("--target-column",
                        help="with --data: a 0/1 column of your log marking the events to rank (the others are "
                             "history only); default: every event is a ranking target")
    parser.add_argument("--split", default=defaults.split_rule, choices=history.SPLIT_RULES,
                        help="eval = the last 20%% of the log's time range (time), or of each user's own (user_time)")
    parser.add_argument("--search-window", metavar="RECENT,RETRIEVED",
                        help="bounded histories: the RECENT latest events plus the RETRIEVED latest earlier ones of "
                             "the target's category within the last --history-length (e.g. 64,64 for IAT at L = 1,000)")
    parser.add_argument("--encoder", default=defaults.encoder)
    parser.add_argument("--iat-scheme", default=defaults.iat_scheme, choices=["temporal_order", "user_order"],
                        help="IAT source-model scheme (with --encoder iat or hisac_iat)")
    parser.add_argument("--token-dim", type=int, default=defaults.token_dim,
                        help="IAT token size d (with --encoder iat or hisac_iat)")
    parser.add_argument("--codebook-levels", default=",".join(map(str, defaults.codebook_levels)),
                        help="HiSAC codebook sizes per level (with --encoder hisac or hisac_iat; "
                             "global_clusters uses the first)")
    parser.add_argument("--item-vectors",
                        help="your item vectors, a CSV 'item_id, v0, v1, ...' (content or semantic embeddings) the "
                             "codebook is fitted on (with --encoder hisac, hisac_iat or global_clusters); default: "
                             "a two-tower model's item embeddings from the training period")
    parser.add_argument("--fanouts", default=",".join(map(str, defaults.fanouts or ())),
                        help="HiSAC voting fan-out per level: K = their product interest-agents (default: every "
                             "leaf of the codebook, K = the product of --codebook-levels)")
    parser.add_argument("--temperature-scale", type=float, default=defaults.temperature_scale,
                        help="HiSAC's soft-routing temperature, x the codebook's level-1 quantisation error "
                             "(lower: agents follow the codebook's leaves more sharply)")
    parser.add_argument("--short-term-last-n", type=int, default=defaults.short_term_last_n,
                        help="add a DIN over the last N events beside the encoder and the baseline encoder, as "
                             "the papers deploy their module (0: none; HiSAC's score_with_agents requests then "
                             "carry the user's latest N events beside the agents)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--strategy", default=defaults.strategy,
                        choices=configs.STRATEGIES,
                        help="the Trainer's tf.distribute strategy (multi_worker_mirrored reads TF_CONFIG)")
    parser.add_argument("--min-eval-auc", type=float, default=defaults.min_eval_auc)
    parser.add_argument("--min-eval-gauc", type=float, default=defaults.min_eval_gauc)
    parser.add_argument("--baseline-encoder", default=defaults.baseline_encoder,
                        choices=[*configs.BASELINE_ENCODERS, "none"],
                        help="the encoder a candidate must not fall behind (AUC and GAUC); 'none' skips it")
    parser.add_argument("--max-drop-vs-blessed", type=float, default=defaults.max_drop_vs_blessed,
                        help="allowed AUC/GAUC drop against the last blessed model (negative: required gain)")
    parser.add_argument("--max-drop-vs-baseline", type=float, default=defaults.max_drop_vs_baseline,
                        help="allowed AUC/GAUC drop against the baseline encoder (negative: required gain)")
    parser.add_argument("--model-name", default=defaults.model_name)
    parser.add_argument("--pipeline-root", default=defaults.pipeline_root)
    parser.add_argument("--metadata-path", default=defaults.metadata_path)
    parser.add_argument("--serving-model-dir", help="default saved_models/<model-name>")
    parser.add_argument("--verbose", action="store_true",
                        help="TFX, Beam and TensorFlow logs on the terminal (default: in a file under the pipeline root)")
    return parser.parse_args(argv)


# The Trainer's epoch lines go to this file descriptor when set (the terminal, while logs go to a file).
PROGRESS_FD = "TFRS_SEQCOMPRESS_PROGRESS_FD"


def logs_to_file(pipeline_root: str):
    """Sends file descriptors 1 and 2 (Python, absl, Beam workers, TensorFlow's C++ logs) to a new
    log file under the pipeline root; returns ``(terminal, log_path)``, the terminal a text stream
    on the original standard output."""
    log_dir = pathlib.Path(pipeline_root) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / time.strftime("%Y%m%d-%H%M%S.log")
    sys.stdout.flush()
    sys.stderr.flush()
    terminal = os.fdopen(os.dup(1), "w", buffering=1)
    with open(log_path, "a") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
    os.environ[PROGRESS_FD] = str(terminal.fileno())
    return terminal, log_path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.items and not args.data:
        print("ERROR: --items needs --data (MovieLens carries its own item table).", file=sys.stderr)
        return 2
    for flag, value in (("--target-column", args.target_column), ("--raw-ids", args.raw_ids)):
        if value and not args.data:
            print(f"ERROR: {flag} needs --data (columns of your log).", file=sys.stderr)
            return 2
    flag_error = (check_model_name(args.model_name) or check_training_flags(args) or check_search_window(args)
                  or check_short_term(args))
    if flag_error:
        print(f"ERROR: {flag_error}", file=sys.stderr)
        return 2
    if args.encoder not in registry.ENCODERS:
        print(f"ERROR: unknown --encoder {args.encoder!r}; expected one of {sorted(registry.ENCODERS)}.", file=sys.stderr)
        return 2
    levels, fanouts = _ints(args.codebook_levels), _ints(args.fanouts) if args.fanouts else None
    if args.encoder == "global_clusters":
        levels, fanouts = levels[:1], fanouts and fanouts[:1]
    if not levels or fanouts is not None and (
            len(fanouts) != len(levels) or any(not 1 <= f <= s for f, s in zip(fanouts, levels))):
        print(f"ERROR: --fanouts {args.fanouts} must give one fan-out per codebook level ({args.codebook_levels}), "
              "each between 1 and its level's size.", file=sys.stderr)
        return 2
    try:
        serving_dir = serving_directory(args)
        loaded = load_log(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 2
    items = len(set(loaded[0].log[F.ITEM_ID].tolist()))
    if registry.ENCODERS[args.encoder].needs_codebook and levels[0] > items:
        print(f"ERROR: --codebook-levels {args.codebook_levels}: the first level has more codes ({levels[0]}) than the "
              f"log has items ({items}).", file=sys.stderr)
        return 2
    item_vocabulary = loaded[0].vocabularies.get(F.ITEM_ID)
    try:
        vectors_error = args.item_vectors and check_item_vectors(args, loaded[0].schema.num_items, levels[0],
                                                                 item_vocabulary)
    except (ValueError, FileNotFoundError) as error:
        vectors_error = str(error)
    if vectors_error:
        print(f"ERROR: {vectors_error}", file=sys.stderr)
        return 2
    data_dir, schema, vocabularies_path = prepare_log(args, args.pipeline_root, loaded)
    config = configs.PipelineConfig(
        data_dir=data_dir, event_features=tuple(schema.event_features), context_features=schema.context_features,
        history_length=args.history_length, targets_per_user=args.targets_per_user,
        target_column=args.target_column or "", split_rule=args.split,
        search_window=_ints(args.search_window) if args.search_window else (),
        encoder=args.encoder, epochs=args.epochs, batch_size=args.batch_size,
        strategy=args.strategy, iat_scheme=args.iat_scheme, token_dim=args.token_dim, codebook_levels=levels,
        fanouts=fanouts, temperature_scale=args.temperature_scale, short_term_last_n=args.short_term_last_n,
        item_vectors_path=stage_item_vectors(args.item_vectors, data_dir, item_vocabulary) if args.item_vectors else "",
        vocabularies_path=vocabularies_path,
        min_eval_auc=args.min_eval_auc, min_eval_gauc=args.min_eval_gauc,
        baseline_encoder=None if args.baseline_encoder in ("none", args.encoder) else args.baseline_encoder,
        max_drop_vs_blessed=args.max_drop_vs_blessed, max_drop_vs_baseline=args.max_drop_vs_baseline,
        model_name=args.model_name, pipeline_root=args.pipeline_root, metadata_path=args.metadata_path,
        serving_model_dir=serving_dir)
    terminal, log_path = (sys.stdout, None) if args.verbose else logs_to_file(args.pipeline_root)
    say = lambda line: print(line, file=terminal, flush=True)  # noqa: E731
    say(f"[pipeline] data {data_dir}; schema {schema}")
    window = (f" (a window of the {config.search_window[0]} latest + {config.search_window[1]} same-category events)"
              if config.search_window else "")
    base = f" beside a DIN over the last {config.short_term_last_n} events" if config.short_term_last_n else ""
    say(f"[pipeline] encoder {config.encoder}{base}, L = {config.history_length}{window}, {config.epochs} epochs; "
        f"settings in {log_path or 'the log above'}")
    print(f"[pipeline] settings {dataclasses.asdict(config)}", flush=True)
    logging.set_verbosity(logging.INFO)
    from tfx import v1 as tfx  # Imported here: it costs ~10 s and the checks above should be instant.
    from pipelines import progress
    from pipelines.pipeline import create_pipeline
    from tfrs_seqcompress import model_push

    before = set(model_push.model_versions(serving_dir))
    started = time.time()
    since = progress.last_execution_id(args.metadata_path)
    try:
        with progress.ProgressReporter(args.metadata_path, say, since_id=since):
            tfx.orchestration.LocalDagRunner().run(create_pipeline(config))
    except Exception as error:
        say(f"[pipeline] FAILED: {progress.failure_reason(error)}"
            + (f"; the full log: {log_path}" if log_path else ""))
        raise
    versions = model_push.model_versions(serving_dir)
    new_versions = sorted(set(versions) - before)
    say(f"[pipeline] finished in {time.time() - started:.0f} s")
    verdict = "" if new_versions else _latest_verdict(args.metadata_path, gate=config.baseline_encoder is not None)
    if new_versions:
        say(f"[pipeline] pushed model: {os.path.join(serving_dir, str(new_versions[-1]))}")
    elif verdict == "blessed":
        newest = os.path.join(serving_dir, str(versions[-1])) if versions else serving_dir
        say(f"[pipeline] blessed, and already served: {newest} holds this same model (nothing pushed)")
    else:
        say(f"[pipeline] no model pushed this run (not blessed: {verdict}; floors AUC {config.min_eval_auc}, "
            f"GAUC {config.min_eval_gauc}; allowed drop vs the last blessed model {config.max_drop_vs_blessed}, "
            f"vs the baseline encoder {config.max_drop_vs_baseline}); {serving_dir} is unchanged")
    if log_path:
        say(f"[pipeline] full log: {log_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
