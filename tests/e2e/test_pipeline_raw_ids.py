"""End to end on a real log's shape: string user, item and category IDs, string event features
(``device``, ``action_type``), item vectors keyed by the string item IDs and a target column.

The runner maps every string column through a vocabulary it stages beside the log; the codebook is
fitted on the user's vectors, re-keyed to the integer IDs; the pushed model carries the
vocabularies (as assets; not the users') and, loaded in a fresh process, answers a TF Serving
request that carries the raw strings exactly as its ``serving_ids`` answers the pipeline's own
(integer-ID) examples; the Evaluator blessed it over ``serving_ids``; the AgentWriter wrote every
user's agents."""
import json

import numpy as np
import pytest
import tensorflow as tf

from pipelines.components import data_schema_io, semantic_io
from tests import helpers
from tests.e2e import runs
from tfrs_seqcompress import features as F
from tfrs_seqcompress import serving
from tfrs_seqcompress.data import raw_ids
from tfrs_seqcompress.hisac import semantic
from tfrs_seqcompress.raw_id_lookup import to_raw_id_examples


@pytest.fixture(scope="module")
def raw_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("raw_id_pipeline")
    log_path, vectors_path = runs.write_raw_id_log(tmp_path)
    result = runs.run_pipeline(tmp_path, log_path, "--encoder", "hisac", "--codebook-levels", "4,3",
                               "--fanouts", "2,2", "--item-vectors", str(vectors_path),
                               "--target-column", runs.TARGET_COLUMN, "--raw-ids", ",".join(runs.RAW_COLUMNS),
                               "--baseline-encoder", "none")
    assert result.returncode == 0, result.stderr[-5000:]
    version_dir = next((tmp_path / "saved_models" / "ranker").iterdir())
    return tmp_path, result, version_dir


def test_the_pushed_model_carries_the_logs_vocabularies(raw_run):
    tmp_path, result, version_dir = raw_run
    assert f"pushed model: {version_dir}" in result.stdout
    staged = list((tmp_path / "root" / "data" / "log.vocabularies").glob("vocabularies-*.json"))
    assert len(staged) == 1
    vocabularies = raw_ids.read_vocabularies(staged[0])
    assert sorted(vocabularies) == sorted(runs.RAW_COLUMNS)
    log = runs.small_log()
    for name in runs.RAW_COLUMNS:   # every raw value the log holds, sorted
        assert vocabularies[name] == sorted(set(runs.raw_id(name, log[name]).tolist()))
    assert vocabularies[F.ITEM_ID] != runs.raw_id(F.ITEM_ID, np.unique(log[F.ITEM_ID])).tolist()  # really remapped
    # The model ships every vocabulary but the users' (no model reads user_id; it is parsed raw).
    shipped = json.loads((version_dir / serving.VOCABULARIES_FILE).read_text())
    assert shipped == {**vocabularies, F.USER_ID: []}
    assert (version_dir / "assets" / "item_id.vocabulary.txt").read_text().split() == vocabularies[F.ITEM_ID]
    schema = data_schema_io.read_schema(runs.single_artifact(tmp_path, "Schema").uri)
    assert schema.num_items == len(vocabularies[F.ITEM_ID]) + 1
    assert runs.newest_execution_states(tmp_path)["AgentWriter"] == "COMPLETE"


def test_the_codebook_is_fitted_on_the_vectors_of_the_raw_item_ids(raw_run):
    tmp_path, _, version_dir = raw_run
    codebook = runs.single_artifact(tmp_path, "tfrs_seqcompress.SemanticCodebook")
    assert codebook.custom_properties["semantic_vectors"].string_value == "item_vectors_file"
    _, vectors = semantic_io.load_semantic_tables(codebook.uri)
    content = semantic.content_vectors(runs.small_world().dataset)
    items = json.loads((version_dir / serving.VOCABULARIES_FILE).read_text())[F.ITEM_ID]
    assert items != sorted(items, key=lambda raw: int(raw.removeprefix("sku-")))   # not the IDs' order
    for index, raw in enumerate(items, start=1):   # row i is the vector of the i-th raw item ID
        np.testing.assert_allclose(vectors[index], content[int(raw.removeprefix("sku-"))], rtol=1e-6)


def test_a_request_of_raw_ids_is_served_in_a_fresh_process_as_the_pipelines_examples(raw_run, tmp_path):
    run_path, _, version_dir = raw_run
    int_records = runs.eval_records(run_path, 16)
    vocabularies = raw_ids.read_vocabularies(next((run_path / "root" / "data" / "log.vocabularies").glob(
        "vocabularies-*.json")))   # the staged ones, with the users (which the model does not ship)
    raw_records = to_raw_id_examples(int_records, vocabularies)
    user = tf.train.Example.FromString(raw_records[0]).features.feature[F.USER_ID].bytes_list.value[0].decode()
    assert user in set(runs.raw_id(F.USER_ID, runs.small_log()[F.USER_ID]).tolist())   # the log's own string
    requests = {"raw": serving.predict_request(raw_records), "ids": serving.predict_request(
        int_records, signature_name=serving.ID_SIGNATURE_NAME)}
    answer = helpers.fresh_process_scores(version_dir, requests, tmp_path)
    assert len(answer["raw"]) == len(int_records)
    np.testing.assert_allclose(answer["raw"], answer["ids"], rtol=1e-6, atol=1e-7)
    assert np.std(answer["raw"]) > 0
