"""The same seed gives identical metrics and identical exported scores, each run in a fresh process."""
import json

from tests import helpers

TRAIN_EXPORT_SCORE = """
import json, sys
import numpy as np, tensorflow as tf
from tfrs_seqcompress import features as F
from tfrs_seqcompress import metrics, models, serving
from tfrs_seqcompress.data import history, synthetic, tf_data

world = synthetic.generate(synthetic.SyntheticConfig(num_users=30, mean_history=50, history_length=10, seed=4))
schema = world.dataset.schema
examples = history.build_history_examples(world.dataset.log, schema)
train, test = history.split_by_time(examples, history.time_cutoff(examples[F.TIMESTAMP], 0.2))
tf.keras.utils.set_random_seed(7)
model = models.build_ranking_model(schema, sys.argv[2])
model.fit(tf_data.dataset_from_columns(train, 64, shuffle_seed=7), epochs=2, verbose=0)
serving.export_serving_model(model, sys.argv[1])
records = F.to_tf_examples({name: values for name, values in test.items() if name != F.LABEL})
scores = tf.saved_model.load(sys.argv[1]).signatures["serving_default"](examples=tf.constant(records))["score"]
scores = scores.numpy().astype(float)
print(json.dumps({"metrics": metrics.ranking_metrics(test[F.USER_ID], test[F.LABEL], scores),
                  "scores": scores.tolist()}))
"""


def _run(tmp_path, name: str, encoder: str) -> dict:
    result = helpers.run_python(TRAIN_EXPORT_SCORE, str(tmp_path / name), encoder)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_two_runs_with_one_seed_give_identical_metrics_and_exported_scores(tmp_path):
    first, second = _run(tmp_path, "a", "din_full"), _run(tmp_path, "b", "din_full")
    assert first["metrics"] == second["metrics"]
    assert first["scores"] == second["scores"]
    assert 0.5 < first["metrics"]["auc"] < 1.0
