"""Shared test helpers: tiny datasets, a save/reload round trip, and a fresh Python process."""
from __future__ import annotations

import functools
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import tensorflow as tf

from tfrs_seqcompress import features as F

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# A SavedModel reloaded once per path for the whole run: for tests that only call its signatures.
load_saved_model = functools.cache(tf.saved_model.load)


def tiny_schema(history_length: int = 6) -> F.DataSchema:
    return F.DataSchema(num_users=5, num_items=20, num_categories=4, history_length=history_length,
                        event_features={"hour": 24}, context_features=("hour",))


def tiny_log() -> dict[str, np.ndarray]:
    """Three users; user 1 has two events sharing a timestamp (ties must not leak)."""
    return {
        F.USER_ID: np.array([1, 1, 1, 1, 2, 2, 3, 1]),
        F.ITEM_ID: np.array([5, 6, 7, 8, 9, 10, 11, 12]),
        F.TIMESTAMP: np.array([100, 200, 200, 300, 150, 160, 50, 400]),
        F.LABEL: np.array([1, 0, 1, 1, 0, 1, 1, 0]),
        F.CATEGORY: np.array([1, 2, 2, 3, 1, 1, 2, 3]),
        "hour": np.array([1, 2, 3, 4, 5, 6, 7, 8]),
    }


def log_events(log: dict[str, np.ndarray]) -> list[dict[str, int]]:
    """A log's rows as event dicts (what a Beam pipeline reads from ExampleGen)."""
    return [{name: int(values[row]) for name, values in log.items()} for row in range(len(log[F.USER_ID]))]


def decoded_example(serialized: bytes, float_decimals: int | None = None) -> tuple:
    """A tf.Example's content as a sorted tuple, independent of the (unordered) map serialization;
    floats rounded to ``float_decimals`` when given."""
    def values(feature) -> tuple:
        if not feature.float_list.value:
            return tuple(feature.int64_list.value)
        if float_decimals is None:
            return tuple(feature.float_list.value)
        return tuple(np.round(feature.float_list.value, float_decimals))

    features = tf.train.Example.FromString(serialized).features.feature
    return tuple(sorted((name, values(feature)) for name, feature in features.items()))


def file_bytes(root: pathlib.Path) -> dict[pathlib.Path, bytes]:
    """Every file under ``root`` (or ``root`` itself) with its bytes: compare before and after a
    refused input to show nothing already written was touched."""
    root = pathlib.Path(root)
    files = [root] if root.is_file() else sorted(path for path in root.rglob("*") if path.is_file())
    return {path: path.read_bytes() for path in files}


def assert_layer_roundtrip(layer: tf.keras.layers.Layer, inputs, tmp_path: pathlib.Path) -> None:
    """The layer survives ``get_config``/``from_config`` and a SavedModel round trip with equal outputs."""
    expected = layer(inputs)
    clone = type(layer).from_config(layer.get_config())
    clone(inputs)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(inputs).numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)

    module = tf.Module()
    module.layer = layer
    module.call = tf.function(lambda x: layer(x))
    module.call(inputs)
    tf.saved_model.save(module, str(tmp_path / "layer"))
    reloaded = tf.saved_model.load(str(tmp_path / "layer"))
    np.testing.assert_allclose(reloaded.call(inputs).numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)


# The pipeline Trainer's run_fn in a fresh process; argv[1]: JSON with train / eval file patterns,
# schema path, serving and run dirs, and the Trainer's custom config.
RUN_FN = """
import json, sys, types
from absl import logging
from pipelines import trainer_module
logging.set_verbosity(logging.INFO)
paths = json.loads(sys.argv[1])
trainer_module.run_fn(types.SimpleNamespace(
    train_files=[paths["train"]], eval_files=[paths["eval"]], schema_path=paths["schema"],
    serving_model_dir=paths["serving"], model_run_dir=paths["run"], custom_config=paths["config"]))
"""


def subprocess_env(**extra: str) -> dict[str, str]:
    """This process's environment with Keras 2 set and TF's C++ logging quiet (plus ``extra``)."""
    return {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def run_python(code: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh interpreter of this environment (Keras 2 set), failing loudly."""
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                            timeout=timeout, env=subprocess_env(), cwd=str(REPO_ROOT))
    assert result.returncode == 0, f"fresh process failed:\n{result.stderr[-4000:]}"
    return result


_SCORE_REQUESTS = (
    "import json, pathlib, sys, tensorflow as tf\n"
    "from tensorflow_serving.apis import predict_pb2\n"
    "from tfrs_seqcompress import serving\n"
    "loaded = tf.saved_model.load(sys.argv[1])\n"
    "answer = {path.stem: serving.run_predict_request(loaded, predict_pb2.PredictRequest.FromString(\n"
    "    path.read_bytes()))['score'].numpy().tolist() for path in pathlib.Path(sys.argv[2]).glob('*.pb')}\n"
    "print(json.dumps(answer))\n")


def fresh_process_scores(export_dir, requests: dict, directory: pathlib.Path) -> dict[str, list[float]]:
    """Each TF Serving ``PredictRequest`` of ``requests`` (name -> request) answered by the SavedModel
    in a fresh process, as the model server would: name -> scores. The requests are written to
    ``directory`` as ``<name>.pb``."""
    for name, request in requests.items():
        (directory / f"{name}.pb").write_bytes(request.SerializeToString())
    result = run_python(_SCORE_REQUESTS, str(export_dir), str(directory))
    return json.loads(result.stdout.strip().splitlines()[-1])


def trained_hisac_model(short_term_last_n: int | None = None):
    """(world, examples, model): a small synthetic world and a HiSAC ranking model (2 x 2 agents
    over a 4 x 4 codebook of the content vectors; beside a DIN over the last ``short_term_last_n``
    events if given) trained one epoch on it, seeded."""
    from tfrs_seqcompress import models
    from tfrs_seqcompress.data import history, synthetic, tf_data
    from tfrs_seqcompress.hisac import semantic
    from tfrs_seqcompress.hisac.codebook import fit_residual_kmeans

    world = synthetic.generate(synthetic.SyntheticConfig(num_users=20, mean_history=60, history_length=12, seed=2))
    schema = world.dataset.schema
    examples = history.build_history_examples(world.dataset.log, schema)
    vectors = semantic.content_vectors(world.dataset)
    known = semantic.known_rows(vectors)
    tf.keras.utils.set_random_seed(0)
    model = models.build_ranking_model(schema, "hisac", codebook=fit_residual_kmeans(vectors[known], (4, 4), keys=known),
                                       item_vectors=vectors, fanouts=(2, 2), short_term_last_n=short_term_last_n)
    model.fit(tf_data.dataset_from_columns(examples, 128), epochs=1, verbose=0)
    return world, examples, model
