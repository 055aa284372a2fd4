"""Every model the library trains exports for TF Serving: in a fresh process that imports only
TensorFlow (no tfrs_seqcompress, no TFRS), each SavedModel loads, uses only ops registered in stock
TensorFlow, replays its warmup file and scores like the in-memory model — nothing is read from the
training machine."""
import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tfrs_seqcompress import features as F
from tfrs_seqcompress import layers, models, serving
from tfrs_seqcompress.data import history, synthetic
from tfrs_seqcompress.hisac import semantic
from tfrs_seqcompress.hisac.codebook import fit_residual_kmeans

FRESH_PROCESS = """
import json, sys
import tensorflow as tf
from tensorflow.python.framework import op_def_registry
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow.core.protobuf import saved_model_pb2

results = {}
for name, path, records in json.loads(sys.argv[1]):
    proto = saved_model_pb2.SavedModel.FromString(open(path + "/saved_model.pb", "rb").read())
    graph = proto.meta_graphs[0].graph_def
    ops = {node.op for node in graph.node} | {node.op for function in graph.library.function
                                               for node in function.node_def}
    unknown = sorted(op for op in ops if op_def_registry.get(op) is None)
    loaded = tf.saved_model.load(path)
    replayed = 0
    for record in tf.data.TFRecordDataset(path + "/assets.extra/tf_serving_warmup_requests").as_numpy_iterator():
        request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        signature = loaded.signatures[request.model_spec.signature_name]
        replayed += len(signature(examples=tf.constant(tf.make_ndarray(request.inputs["examples"])))["score"])
    scores = loaded.signatures["serving_default"](examples=tf.constant(
        [bytes.fromhex(record) for record in records]))["score"].numpy().tolist()
    results[name] = {"unknown_ops": unknown, "replayed": replayed, "scores": scores,
                     "signatures": sorted(loaded.signatures)}
results["library_imported"] = [m for m in ("tfrs_seqcompress", "tensorflow_recommenders") if m in sys.modules]
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    world = synthetic.generate(synthetic.SyntheticConfig(num_users=15, mean_history=40, history_length=8, seed=6))
    schema = world.dataset.schema
    examples = history.build_history_examples(world.dataset.log, schema)
    rng = np.random.default_rng(0)
    token_schema = dataclasses.replace(schema, token_dim=4, token_version="v1")
    token_examples = {**examples, F.HISTORY_TOKEN: rng.random((len(examples[F.LABEL]), 8, 4), np.float32),
                      F.TOKEN_VERSION: np.full(len(examples[F.LABEL]), F.token_version_id("v1"), np.int64)}
    vectors = semantic.content_vectors(world.dataset)
    known = semantic.known_rows(vectors)
    semantic_tables = {"codebook": fit_residual_kmeans(vectors[known], (4, 3), keys=known), "item_vectors": vectors}
    directory = tmp_path_factory.mktemp("exports")
    exported = []
    for encoder in sorted(layers.ENCODERS):
        uses_tokens = encoder in layers.TOKEN_ENCODERS
        model_schema, columns = (token_schema, token_examples) if uses_tokens else (schema, examples)
        tf.keras.utils.set_random_seed(0)
        model = models.build_ranking_model(model_schema, encoder,
                                           **(semantic_tables if encoder in layers.SEMANTIC_ENCODERS else {}))
        batch = {name: values[-6:] for name, values in columns.items() if name != F.LABEL}
        expected = tf.sigmoid(model({name: tf.constant(values) for name, values in batch.items()})).numpy()
        serialized = F.to_tf_examples(batch)
        path = str(directory / encoder / "1")
        serving.export_serving_model(model, path, model_schema, warmup_examples=serialized)
        exported.append((encoder, path, [record.hex() for record in serialized], expected))
    return exported


def test_every_encoder_serves_from_the_saved_model_alone(exports):
    arguments = json.dumps([(name, path, records) for name, path, records, _ in exports])
    results = json.loads(helpers.run_python(FRESH_PROCESS, arguments).stdout.strip().splitlines()[-1])
    assert results.pop("library_imported") == []
    assert sorted(results) == sorted(layers.ENCODERS)
    for name, path, records, expected in exports:
        assert results[name]["unknown_ops"] == [], name
        assert results[name]["replayed"] == len(records), name
        np.testing.assert_allclose(results[name]["scores"], expected, rtol=1e-5, atol=1e-6, err_msg=name)
        agents = {serving.COMPUTE_AGENTS_SIGNATURE, serving.SCORE_WITH_AGENTS_SIGNATURE}
        assert (agents <= set(results[name]["signatures"])) == (name in layers.SEMANTIC_ENCODERS), name
