"""HiSAC served two ways: in-graph over the history, or over agents precomputed offline per user.
Both signatures of the exported SavedModel, reloaded in a fresh process, give the same scores."""
import json

import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tfrs_seqcompress import features as F
from tfrs_seqcompress import models, serving

CANDIDATES = 12


@pytest.fixture(scope="module")
def exported(exported_hisac):
    world, examples, model, export_dir = exported_hisac
    # One user's request: the last history, scored against CANDIDATES candidate items.
    row = len(examples[F.USER_ID]) - 1
    request = {name: np.repeat(values[row:row + 1], CANDIDATES, axis=0) for name, values in examples.items()}
    request[F.ITEM_ID] = np.arange(1, CANDIDATES + 1)
    request[F.CATEGORY] = world.dataset.items[F.CATEGORY][request[F.ITEM_ID]]
    request.pop(F.LABEL)
    return export_dir, model, request


def test_precomputed_agents_score_like_the_in_graph_path_in_a_fresh_process(exported, tmp_path):
    export_dir, model, request = exported
    history_example = F.to_tf_examples({name: values[:1] for name, values in request.items()})[0]
    (tmp_path / "history.bin").write_bytes(history_example)
    with tf.io.TFRecordWriter(str(tmp_path / "request.tfrecord")) as writer:
        for record in F.to_tf_examples(request):
            writer.write(record)
    code = (
        "import sys, json, numpy as np, tensorflow as tf\n"
        "from tfrs_seqcompress import features as F\n"
        "model = tf.saved_model.load(sys.argv[1])\n"
        "history = open(sys.argv[2], 'rb').read()\n"
        "records = [r.numpy() for r in tf.data.TFRecordDataset(sys.argv[3])]\n"
        "in_graph = model.signatures['serving_default'](examples=tf.constant(records))['score'].numpy()\n"
        "agents = model.signatures['compute_agents'](examples=tf.constant([history]))  # offline, once per user\n"
        "candidates = []\n"
        "for record in records:\n"
        "    example = tf.train.Example.FromString(record)\n"
        "    target = {name: example.features.feature[name] for name in "
        "('user_id', 'item_id', 'category', 'timestamp', 'hour', 'device', 'price')}\n"
        "    target['agent_vectors'] = tf.train.Feature(float_list=tf.train.FloatList("
        "value=agents['agent_vectors'].numpy().ravel()))\n"
        "    target['agent_mask'] = tf.train.Feature(int64_list=tf.train.Int64List(value=agents['agent_mask'].numpy().ravel()))\n"
        "    target['agent_weights'] = tf.train.Feature(float_list=tf.train.FloatList("
        "value=agents['agent_weights'].numpy().ravel()))\n"
        "    candidates.append(tf.train.Example(features=tf.train.Features(feature=target)).SerializeToString())\n"
        "served = model.signatures['score_with_agents'](examples=tf.constant(candidates))['score'].numpy()\n"
        "print(json.dumps({'in_graph': in_graph.tolist(), 'agents': served.tolist(), "
        "'shape': list(agents['agent_vectors'].shape)}))\n")
    result = helpers.run_python(code, str(export_dir), str(tmp_path / "history.bin"), str(tmp_path / "request.tfrecord"))
    out = json.loads(result.stdout.strip().splitlines()[-1])
    expected = tf.sigmoid(model({name: tf.constant(values) for name, values in request.items()})).numpy()
    np.testing.assert_allclose(out["in_graph"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["agents"], out["in_graph"], rtol=1e-5, atol=1e-6)
    assert out["shape"] == [1, 4, model.encoder.agent_dim(2 * model.embedding_dim)]  # ranking vector + prototype
    assert len(set(np.round(out["agents"], 6))) > 1  # candidates really differ


def test_agent_requests_without_agents_are_refused(exported):
    export_dir, _, request = exported
    signature = helpers.load_saved_model(str(export_dir)).signatures[serving.SCORE_WITH_AGENTS_SIGNATURE]
    target_only = F.to_tf_examples({name: request[name][:2] for name in F.TARGET_FIELDS + ("hour", "device", "price")})
    with pytest.raises(tf.errors.InvalidArgumentError, match="Feature: agent_(mask|vectors|weights) .* is required"):
        signature(examples=tf.constant(target_only))


def test_models_without_agents_say_so():
    schema = helpers.tiny_schema()
    with pytest.raises(ValueError, match="DINEncoder has no agents to precompute"):
        models.build_ranking_model(schema, "din_full").compute_agents({})


def _agent_request(export_dir, request, edit):
    """A ``score_with_agents`` request of two candidates with agents from ``compute_agents``, edited."""
    loaded = helpers.load_saved_model(str(export_dir))
    history = F.to_tf_examples({name: values[:1] for name, values in request.items()})
    agents = loaded.signatures[serving.COMPUTE_AGENTS_SIGNATURE](examples=tf.constant(history))
    columns = {name: request[name][:2] for name in F.TARGET_FIELDS + ("hour", "device", "price")}
    for name in (F.AGENT_VECTORS, F.AGENT_MASK, F.AGENT_WEIGHTS):
        columns[name] = np.repeat(agents[name].numpy(), 2, axis=0)
    edit(columns)
    return loaded.signatures[serving.SCORE_WITH_AGENTS_SIGNATURE], tf.constant(F.to_tf_examples(columns))


def _set_first(name, value):
    def edit(columns):
        columns[name] = columns[name].copy()
        columns[name].reshape(len(columns[name]), -1)[0, 0] = value
    return edit


@pytest.mark.parametrize("edit, named", [
    (_set_first(F.AGENT_VECTORS, np.nan), r"agent_vectors\W+ contains NaN or infinity"),
    (_set_first(F.AGENT_VECTORS, np.inf), r"agent_vectors\W+ contains NaN or infinity"),
    (_set_first(F.AGENT_MASK, 7), r"agent_mask\W+ must hold only 0"),
    (_set_first(F.AGENT_MASK, -1), r"agent_mask\W+ must hold only 0"),
    (_set_first(F.AGENT_WEIGHTS, np.nan), r"agent_weights\W+ must be finite and >= 0"),
    (_set_first(F.AGENT_WEIGHTS, -0.5), r"agent_weights\W+ must be finite and >= 0"),
    (_set_first(F.ITEM_ID, -4), r"item_id\W+ must hold IDs >= 0"),
], ids=["nan_vector", "inf_vector", "mask_7", "mask_minus_1", "nan_weight", "negative_weight", "negative_item"])
def test_malformed_agents_are_refused_not_scored(exported, edit, named):
    export_dir, _, request = exported
    signature, examples = _agent_request(export_dir, request, edit)
    with pytest.raises(tf.errors.InvalidArgumentError, match=named):
        signature(examples=examples)


@pytest.mark.parametrize("name, value, message", [
    (F.AGENT_VECTORS, np.nan, "contains NaN or infinity"), (F.AGENT_MASK, 7, "must hold only 0 and 1"),
    (F.AGENT_WEIGHTS, -1.0, "must be finite and >= 0")])
def test_the_client_refuses_to_build_requests_from_malformed_agents(exported, name, value, message):
    from tfrs_seqcompress import serving_client
    _, model, request = exported
    agents = {agent_name: np.asarray(values[0]).copy() for agent_name, values in model.compute_agents(
        {key: tf.constant(values[:1]) for key, values in request.items()}).items()}
    agents[name].reshape(-1)[0] = value
    candidates = {key: request[key][:2] for key in (F.ITEM_ID, F.CATEGORY, F.TIMESTAMP, "hour", "device", "price")}
    with pytest.raises(ValueError, match=message):
        serving_client.agent_examples(agents, 1, candidates, model.schema)
