"""HiSAC's tables on their way from the CodebookFitter's artefact to the Trainer (no TFX import):
a broken, modified or foreign codebook is refused and nothing is copied."""
import dataclasses

import numpy as np
import pytest

from pipelines.components import semantic_io
from tfrs_seqcompress.hisac.codebook import CodebookError, fit_residual_kmeans


@pytest.fixture()
def artefact(tmp_path):
    vectors = np.random.default_rng(0).normal(size=(31, 4)).astype(np.float32)
    fitted = fit_residual_kmeans(vectors[1:], (4, 2), seed=0)
    source = tmp_path / "SemanticCodebook"
    fitted.save(str(source / semantic_io.CODEBOOK_DIR))
    semantic_io.save_item_vectors(str(source), vectors)
    return source, fitted.version, vectors


def test_checked_copy_copies_whole_tables(artefact, tmp_path):
    source, version, vectors = artefact
    target = tmp_path / "examples" / semantic_io.SEMANTIC_DIR
    assert semantic_io.checked_copy(str(source), version, len(vectors), str(target)) == version
    copied, copied_vectors = semantic_io.load_semantic_tables(str(target), expected_version=version)
    np.testing.assert_array_equal(copied_vectors, vectors)
    assert copied.level_sizes == (4, 2)


def _truncate(source):
    path = source / semantic_io.CODEBOOK_DIR / "codewords.npz"
    path.write_bytes(path.read_bytes()[:100])


def _overwrite_metadata_version(source):
    path = source / semantic_io.CODEBOOK_DIR / "metadata.json"
    path.write_text(path.read_text().replace('"version": "', '"version": "0'))


@pytest.mark.parametrize("damage,recorded,num_items,message", [
    (_truncate, None, 31, "is missing, truncated or lacks metadata"),
    (_overwrite_metadata_version, None, 31, "modified or partly written"),
    (None, "another-version", 31, "on disk but 'another-version' in ML Metadata"),
    (None, None, 40, "cover 31 item IDs; the examples have num_items 40"),
])
def test_bad_codebook_is_refused_and_nothing_is_copied(artefact, tmp_path, damage, recorded, num_items, message):
    source, version, _ = artefact
    if damage:
        damage(source)
    target = tmp_path / "examples" / semantic_io.SEMANTIC_DIR
    with pytest.raises(CodebookError, match=message):
        semantic_io.checked_copy(str(source), recorded or version, num_items, str(target))
    assert not target.exists()


def test_the_trainer_routes_at_the_configured_temperature_scale(tmp_path):
    from pipelines import configs, trainer_module
    from tests import helpers
    from tfrs_seqcompress import models

    vectors = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    vectors[0] = 0.0  # the padding item
    examples = tmp_path / "examples"
    fit_residual_kmeans(vectors[1:], (4, 2), seed=0).save(str(examples / semantic_io.SEMANTIC_DIR / semantic_io.CODEBOOK_DIR))
    semantic_io.save_item_vectors(str(examples / semantic_io.SEMANTIC_DIR), vectors)
    train_files = [str(examples / "Split-train" / "*")]
    config = configs.PipelineConfig(data_dir="", fanouts=(2, 2), temperature_scale=0.5).trainer_custom_config("hisac")
    arguments = trainer_module._semantic_arguments("hisac", train_files, config)
    assert arguments["fanouts"] == (2, 2) and arguments["temperature_scale"] == 0.5
    schema = dataclasses.replace(helpers.tiny_schema(), num_items=len(vectors))
    model = models.build_ranking_model(schema, "hisac", **arguments)
    level_1 = arguments["codebook"].statistics["quantisation_error"][0]
    assert model.encoder.temperature == pytest.approx(0.5 * level_1)


def test_the_trainer_adds_the_short_term_base_to_the_candidate_and_the_baseline():
    from pipelines import configs, trainer_module
    from tests import helpers
    from tfrs_seqcompress import layers, models

    config = configs.PipelineConfig(data_dir="", encoder="din_full", short_term_last_n=5)
    assert configs.PipelineConfig(data_dir="", encoder="hisac", short_term_last_n=5).writes_agents  # agents + events
    for encoder in ("din_full", "mean"):   # the candidate's and the baseline's Trainer settings
        arguments = trainer_module._short_term_arguments(config.trainer_custom_config(encoder))
        model = models.build_ranking_model(helpers.tiny_schema(), encoder, **arguments)
        assert isinstance(model.encoder, layers.WithShortTermBase) and model.encoder.last_n == 5
    without = configs.PipelineConfig(data_dir="").trainer_custom_config("hisac")
    assert trainer_module._short_term_arguments(without) == {}
