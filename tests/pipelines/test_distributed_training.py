"""The Trainer's run_fn under MultiWorkerMirroredStrategy on two real worker processes (TF_CONFIG,
collective ops over loopback gRPC): both train in sync, only the chief's export is the model."""
import json
import re
import socket
import subprocess
import sys

import numpy as np
import tensorflow as tf

from pipelines.components import data_schema_io
from tests import helpers
from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import history, synthetic

CONFIG = {"encoder": "din_full", "epochs": 2, "batch_size": 64, "strategy": "multi_worker_mirrored"}


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for handle in sockets:
        handle.bind(("localhost", 0))
    ports = [handle.getsockname()[1] for handle in sockets]
    for handle in sockets:
        handle.close()
    return ports


def _write_split(path, examples) -> None:
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for record in F.to_tf_examples(examples):
            writer.write(record)


def _history_examples(tmp_path) -> dict:
    world = synthetic.generate(synthetic.SyntheticConfig(num_users=40, mean_history=40, history_length=8, seed=3))
    examples = history.build_history_examples(world.dataset.log, world.dataset.schema)
    train, evaluation = history.split_by_time(examples, history.time_cutoff(examples[F.TIMESTAMP], 0.2))
    _write_split(tmp_path / "train.gz", train)
    _write_split(tmp_path / "eval.gz", evaluation)
    return {"train": str(tmp_path / "train.gz"), "eval": str(tmp_path / "eval.gz"),
            "schema": data_schema_io.write_schema(world.dataset.schema, str(tmp_path / "schema")),
            "serving": str(tmp_path / "serving_model")}


def test_two_workers_train_one_model_and_only_the_chief_exports_it(tmp_path):
    paths = _history_examples(tmp_path)
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    workers = []
    for index in range(2):
        env = helpers.subprocess_env(
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        arguments = json.dumps({**paths, "run": str(tmp_path / f"run_{index}"), "config": CONFIG})
        workers.append(subprocess.Popen([sys.executable, "-c", helpers.RUN_FN, arguments], env=env,
                                        cwd=str(helpers.REPO_ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True))
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    for index, (worker, output) in enumerate(zip(workers, outputs)):
        assert worker.returncode == 0, f"worker {index} failed:\n{output[-4000:]}"
        assert "with CollectiveAllReduceStrategy (2 replicas)" in output, output[-2000:]   # MultiWorkerMirrored
        validation_auc = [float(value) for value in re.findall(r"val_auc: ([0-9.]+)", output)]
        assert len(validation_auc) == 2 and all(0.0 <= value <= 1.0 for value in validation_auc), validation_auc
    # Only the chief (worker 0) wrote the model; the other worker's export went to a temporary directory.
    assert f"Exported the serving model to {paths['serving']}" in outputs[0]
    assert f"Exported the serving model to {paths['serving']}" not in outputs[1]

    model = tf.saved_model.load(paths["serving"])
    records = [record.numpy() for record in tf.data.TFRecordDataset(paths["eval"], compression_type="GZIP").take(50)]
    scores = model.signatures["serving_default"](examples=tf.constant(records))["score"].numpy()
    assert scores.shape == (50,) and np.all((scores > 0) & (scores < 1)) and scores.std() > 0
