"""Helpers of the end-to-end tests: run the local runner as users do, fingerprint a directory."""
import hashlib
import pathlib
import subprocess
import sys

import numpy as np

from tests import helpers
from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import interaction_log, synthetic
from tfrs_seqcompress.hisac import semantic

CONTEXT = "hour,device,price"


def small_world(seed: int = 5) -> synthetic.SyntheticWorld:
    return synthetic.generate(synthetic.SyntheticConfig(
        num_users=80, num_categories=4, subcategories_per_category=4, items_per_subcategory=5, major_interests=2,
        rare_interests=2, mean_history=80, history_length=10, seed=seed))


def small_log(seed: int = 5) -> dict:
    return small_world(seed).dataset.log


def write_small_item_vectors(directory: pathlib.Path, seed: int = 5) -> pathlib.Path:
    """The small world's item content embeddings as a user's item-vector file (``--item-vectors``)."""
    return semantic.write_item_vectors_csv(semantic.content_vectors(small_world(seed).dataset),
                                           directory / "input" / "item_vectors.csv")


def write_small_log(directory: pathlib.Path, seed: int = 5, target_share: float | None = None) -> pathlib.Path:
    """The small log as a user's CSV; with ``target_share`` a seeded 0/1 column ``is_target`` marks
    that share of the events as ranking targets (``--target-column is_target``)."""
    log = small_log(seed)
    if target_share is not None:
        marked = np.random.default_rng(seed).random(len(log[F.LABEL])) < target_share
        log = {**log, TARGET_COLUMN: marked.astype(np.int64)}
    return interaction_log.write_log_csv(log, directory / "input" / "log.csv")


TARGET_COLUMN = "is_target"
# The raw values a log of string IDs gives the small world's integer event features.
RAW_VALUES = {"device": np.array(["phone", "tablet", "web", "tv"]),
              "action_type": np.array(["view", "click", "cart", "buy"])}


def raw_id(name: str, ids: np.ndarray) -> np.ndarray:
    """The small world's integer IDs of a column as a real log's strings ("sku-42", "phone"); their
    sorted order is not the IDs' ("sku-10" < "sku-9"), so a vocabulary really remaps them."""
    if name in RAW_VALUES:
        return RAW_VALUES[name][ids].astype(object)
    prefix = {F.USER_ID: "user-", F.ITEM_ID: "sku-", F.CATEGORY: "genre-"}[name]
    return np.array([f"{prefix}{int(value)}" for value in ids], dtype=object)


RAW_COLUMNS = (F.USER_ID, F.ITEM_ID, F.CATEGORY, *RAW_VALUES)


def write_raw_id_log(directory: pathlib.Path, seed: int = 5) -> tuple[pathlib.Path, pathlib.Path]:
    """The small log as a user's log of string IDs and string event features, with a target column,
    and its item vectors keyed by the same string item IDs: ``(log path, item-vector path)``."""
    log = small_log(seed)
    marked = (np.random.default_rng(seed).random(len(log[F.LABEL])) < 0.5).astype(np.int64)
    raw = {**log, **{name: raw_id(name, log[name]) for name in RAW_COLUMNS}, TARGET_COLUMN: marked}
    vectors = semantic.content_vectors(small_world(seed).dataset)
    path = semantic.write_item_vectors_csv(vectors, directory / "input_raw" / "item_vectors.csv",
                                           item_ids=raw_id(F.ITEM_ID, np.arange(len(vectors))))
    return interaction_log.write_log_csv(raw, directory / "input_raw" / "log.csv"), path


def history_records(tmp_path: pathlib.Path, split: str) -> list[bytes]:
    """Every serialized example of a split HistoryExampleGen wrote."""
    import tensorflow as tf

    from tfrs_seqcompress.data import tf_data

    examples_dir = next((tmp_path / "root").glob("HistoryExampleGen/history_examples/*"))
    files = tf.io.gfile.glob(tf_data.split_file_pattern(str(examples_dir), split))
    return [record.numpy() for record in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def write_newer_log(directory: pathlib.Path, seed: int = 5) -> pathlib.Path:
    """The small log plus a newer period (a refresh's input): a random half of the same users'
    events replayed after the log's last day, so items keep their categories."""
    log = small_log(seed)
    replay = np.random.default_rng(seed).random(len(log[F.LABEL])) < 0.5
    shift = int(log[F.TIMESTAMP].max() - log[F.TIMESTAMP].min()) + 86_400
    newer = {name: values[replay] + (shift if name == F.TIMESTAMP else 0) for name, values in log.items()}
    combined = {name: np.concatenate([log[name], newer[name]]) for name in log}
    return interaction_log.write_log_csv(combined, directory / "input_newer" / "log.csv")


EPOCHS, BATCH_SIZE = 3, 64


def pipeline_command(tmp_path: pathlib.Path, data_path, *extra: str, min_eval_auc: str = "0.55") -> list[str]:
    """The local runner's command line, as users type it, on the small log with ``tmp_path``'s dirs."""
    return [sys.executable, "-m", "pipelines.local_runner", "--data", str(data_path), "--context-features", CONTEXT,
            "--history-length", "10", "--epochs", str(EPOCHS), "--batch-size", str(BATCH_SIZE),
            "--min-eval-auc", min_eval_auc, "--encoder", "din_full",  # the tests of one encoder set theirs after
            "--pipeline-root", str(tmp_path / "root"), "--metadata-path", str(tmp_path / "mlmd" / "metadata.db"),
            "--serving-model-dir", str(tmp_path / "saved_models" / "ranker"),
            # Small logs give noisy metrics: the tests that are about validation set their own drops.
            "--max-drop-vs-blessed", "0.5", "--max-drop-vs-baseline", "0.5", *extra]


def run_pipeline(tmp_path: pathlib.Path, data_path, *extra: str, min_eval_auc: str = "0.55"):
    command = pipeline_command(tmp_path, data_path, *extra, min_eval_auc=min_eval_auc)
    return subprocess.run(command, capture_output=True, text=True, env=helpers.subprocess_env(),
                          cwd=str(helpers.REPO_ROOT), timeout=1200)


def metadata_store(tmp_path: pathlib.Path):
    """The run's ML Metadata store (the SQLite file the runner was given)."""
    from ml_metadata import metadata_store as mlmd
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(tmp_path / "mlmd" / "metadata.db")
    return mlmd.MetadataStore(config)


def artifacts(tmp_path: pathlib.Path, type_name: str) -> list:
    """Every artefact of a type in the run's ML Metadata store."""
    return metadata_store(tmp_path).get_artifacts_by_type(type_name)


def single_artifact(tmp_path: pathlib.Path, type_name: str):
    """The run's one artefact of a type (the test fails if there are several or none)."""
    found = artifacts(tmp_path, type_name)
    assert len(found) == 1, found
    return found[0]


def eval_records(tmp_path: pathlib.Path, count: int = 1) -> list[bytes]:
    """The first ``count`` serialized evaluation examples HistoryExampleGen wrote."""
    import tensorflow as tf

    from tfrs_seqcompress.data import tf_data

    examples_dir = next((tmp_path / "root").glob("HistoryExampleGen/history_examples/*"))
    files = tf.io.gfile.glob(tf_data.split_file_pattern(str(examples_dir), "eval"))
    return [record.numpy() for record in tf.data.TFRecordDataset(files, compression_type="GZIP").take(count)]


def tree_digest(directory: pathlib.Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        digest.update(str(path.relative_to(directory)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def newest_execution_states(tmp_path: pathlib.Path) -> dict[str, str]:
    """Component id -> state of its newest execution (COMPLETE, CACHED, ...), from ML Metadata."""
    from pipelines import progress

    return {node: execution.state for node, execution in progress.node_executions(metadata_store(tmp_path)).items()}
