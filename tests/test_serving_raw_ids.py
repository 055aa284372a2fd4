"""A log of raw (string) IDs: the exported model maps a request's raw values in its graph.

The model trains on the integer IDs the loader's vocabularies give; its ``serving_default`` takes
examples carrying the raw strings and, reloaded in a fresh process, scores them exactly as
``serving_ids`` scores the integer-ID examples; a value the log never showed is the unknown ID 0."""
import json

import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tfrs_seqcompress import features as F
from tfrs_seqcompress import models, serving
from tfrs_seqcompress.data import history, interaction_log, synthetic, tf_data
from tfrs_seqcompress.raw_id_lookup import to_raw_id_examples

RAW_COLUMNS = (F.USER_ID, F.ITEM_ID, F.CATEGORY, "device")
DEVICES = np.array(["unset", "phone", "tablet", "web", "tv", "car", "watch", "console", "kiosk", "speaker", "other"])


def write_raw_log(tmp_path):
    """The small synthetic world's log with string users, items, categories and devices."""
    log = synthetic.generate(synthetic.SyntheticConfig(num_users=20, mean_history=60, history_length=12,
                                                       seed=2)).dataset.log
    raw = {**log, F.USER_ID: np.array([f"user-{u}" for u in log[F.USER_ID]], object),
           F.ITEM_ID: np.array([f"sku-{i}" for i in log[F.ITEM_ID]], object),   # "sku-10" sorts before "sku-9"
           F.CATEGORY: np.array([f"genre {c}" for c in log[F.CATEGORY]], object),
           "device": DEVICES[np.minimum(log["device"], len(DEVICES) - 1)]}
    return interaction_log.write_log_csv(raw, tmp_path / "raw_log.csv")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("raw_ids")
    dataset = interaction_log.load_interaction_log(write_raw_log(tmp_path), history_length=12,
                                                   context_features=("hour", "device"), raw_id_columns=RAW_COLUMNS)
    examples = history.build_history_examples(dataset.log, dataset.schema)
    tf.keras.utils.set_random_seed(0)
    model = models.build_ranking_model(dataset.schema, "din_full")
    model.fit(tf_data.dataset_from_columns(examples, 128), epochs=1, verbose=0)
    unlabeled = {name: values[:40] for name, values in examples.items() if name != F.LABEL}
    export_dir = tmp_path / "ranker" / "1"
    serving.export_serving_model(model, str(export_dir), dataset.schema, warmup_examples=F.to_tf_examples(unlabeled)[:8],
                                 vocabularies=dataset.vocabularies)
    return export_dir, dataset, F.to_tf_examples(unlabeled)


def test_the_loader_maps_each_raw_column_by_a_sorted_vocabulary(exported):
    _, dataset, _ = exported
    assert set(dataset.vocabularies) == {F.USER_ID, F.ITEM_ID, F.CATEGORY, "device"}
    assert "hour" not in dataset.vocabularies   # an integer column stays as it was
    for vocabulary in dataset.vocabularies.values():
        assert vocabulary == sorted(set(vocabulary))
    assert dataset.schema.num_items == len(dataset.vocabularies[F.ITEM_ID]) + 1
    assert dataset.category_names[1:] == dataset.vocabularies[F.CATEGORY]


def test_raw_requests_score_in_a_fresh_process_as_the_integer_examples_do(exported, tmp_path):
    export_dir, dataset, int_examples = exported
    raw_examples = to_raw_id_examples(int_examples, dataset.vocabularies)
    item = tf.train.Example.FromString(raw_examples[0]).features.feature[F.ITEM_ID].bytes_list.value[0]
    assert item.decode().startswith("sku-")   # the request carries the log's own strings
    answer = helpers.fresh_process_scores(export_dir, {
        "raw": serving.predict_request(raw_examples),
        "ids": serving.predict_request(int_examples, signature_name=serving.ID_SIGNATURE_NAME)}, tmp_path)
    assert len(answer["raw"]) == len(int_examples)
    np.testing.assert_allclose(answer["raw"], answer["ids"], rtol=1e-6, atol=1e-7)
    assert np.std(answer["raw"]) > 0   # the candidates are told apart, not all mapped to unknown


def test_an_unseen_raw_value_is_the_unknown_id(exported):
    export_dir, _, int_examples = exported
    loaded = helpers.load_saved_model(str(export_dir))
    vocabularies = json.loads((export_dir / serving.VOCABULARIES_FILE).read_text())
    raw = tf.train.Example.FromString(to_raw_id_examples(int_examples[:1], vocabularies)[0])
    raw.features.feature[F.ITEM_ID].bytes_list.value[:] = [b"sku-never-logged"]
    as_unknown = tf.train.Example.FromString(int_examples[0])
    as_unknown.features.feature[F.ITEM_ID].int64_list.value[:] = [0]
    served = loaded.signatures[serving.SIGNATURE_NAME](examples=tf.constant([raw.SerializeToString()]))["score"]
    expected = loaded.signatures[serving.ID_SIGNATURE_NAME](examples=tf.constant([as_unknown.SerializeToString()]))
    np.testing.assert_allclose(served.numpy(), expected["score"].numpy(), rtol=1e-6)


def test_an_integer_id_in_a_raw_request_is_refused_with_the_feature_named(exported):
    export_dir, _, int_examples = exported
    loaded = helpers.load_saved_model(str(export_dir))
    with pytest.raises(tf.errors.InvalidArgumentError, match=(
            r"Key: (hist_)?(user_id|item_id|category|device),.*expected type: string")):
        loaded.signatures[serving.SIGNATURE_NAME](examples=tf.constant(int_examples[:1]))


def test_the_warmup_requests_carry_raw_ids(exported):
    export_dir, _, _ = exported
    assert serving.replay_warmup(str(export_dir)) > 0   # through serving_default, which takes raw IDs only
