"""Helpers of the end-to-end tests: run the local runner as users do, fingerprint a directory."""
import hashlib
import os
import pathlib
import subprocess
import sys

from tests import helpers
from tfrs_seqcompress.data import interaction_log, synthetic

CONTEXT = "hour,device,price"


def write_small_log(directory: pathlib.Path, seed: int = 5) -> pathlib.Path:
    world = synthetic.generate(synthetic.SyntheticConfig(
        num_users=80, num_categories=4, subcategories_per_category=4, items_per_subcategory=5, major_interests=2,
        rare_interests=2, mean_history=80, history_length=10, seed=seed))
    return interaction_log.write_log_csv(world.dataset.log, directory / "input" / "log.csv")


def run_pipeline(tmp_path: pathlib.Path, data_path, *extra: str, min_eval_auc: str = "0.55"):
    command = [sys.executable, "-m", "pipelines.local_runner", "--data", str(data_path), "--context-features", CONTEXT,
               "--history-length", "10", "--epochs", "3", "--batch-size", "64", "--min-eval-auc", min_eval_auc,
               "--pipeline-root", str(tmp_path / "root"), "--metadata-path", str(tmp_path / "mlmd" / "metadata.db"),
               "--serving-model-dir", str(tmp_path / "saved_models" / "ranker"), *extra]
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=str(helpers.REPO_ROOT), timeout=1200)


def tree_digest(directory: pathlib.Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        digest.update(str(path.relative_to(directory)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()
