"""IAT at scale: source-model save/restore, the Beam token writer, the token-aware Beam history builder."""
import dataclasses
import shutil

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing.util import assert_that, equal_to

from tests import helpers
from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import history, history_beam
from tfrs_seqcompress.iat import source_models as S
from tfrs_seqcompress.iat import token_beam
from tfrs_seqcompress.iat.store import TokenVersionError


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    log, schema = helpers.tiny_log(), helpers.tiny_schema(history_length=3)
    model = S.train_source_model(log, schema, "user_order", token_dim=4, epochs=1, window=4, batch_size=8)
    directory = str(tmp_path_factory.mktemp("source") / "source_model")
    version = token_beam.save_source_model(model, directory)
    return log, schema, model, directory, version


def test_restored_source_model_has_the_same_version_and_tokens(trained):
    log, _, model, directory, version = trained
    restored = token_beam.load_source_model(directory, expected_version=version)
    assert restored.fingerprint() == version == model.fingerprint()
    np.testing.assert_allclose(S.compute_tokens(restored, log), S.compute_tokens(model, log), atol=1e-6)


def test_weights_of_another_model_are_refused(trained, tmp_path):
    log, schema, _, directory, _ = trained
    other = S.train_source_model(log, schema, "user_order", token_dim=4, epochs=1, window=4, batch_size=8, seed=7)
    tampered = tmp_path / "tampered"
    shutil.copytree(directory, tampered)
    other.save_weights(str(tampered / token_beam.WEIGHTS_PREFIX))
    with pytest.raises(TokenVersionError, match="weights and recorded version disagree"):
        token_beam.load_source_model(str(tampered))


def test_beam_writer_matches_in_memory_tokens(trained, tmp_path):
    log, _, model, directory, version = trained
    with beam.Pipeline() as pipeline:
        _ = (pipeline | beam.Create(helpers.log_events(log))
             | token_beam.WriteInstanceTokens(directory, str(tmp_path / "tokens")))
    written = token_beam.read_token_store(str(tmp_path / "tokens"), expected_version=version)
    expected = S.build_token_store(model, log)
    np.testing.assert_array_equal(written.timestamp, expected.timestamp)
    np.testing.assert_allclose(written.tokens, expected.tokens, atol=1e-6)
    assert written.scheme == "user_order" and written.version == version


def _decoded(serialized):
    return helpers.decoded_example(serialized, float_decimals=5)


def test_beam_history_builder_attaches_the_same_tokens_as_the_store(trained):
    log, schema, model, _, version = trained
    store = S.build_token_store(model, log)
    token_schema = dataclasses.replace(schema, token_dim=4, token_version=version)
    expected = store.attach(history.build_history_examples(log, schema))
    train, evaluation = history.split_by_time(expected, history.time_cutoff(log[F.TIMESTAMP], 0.25))
    records = [token_beam.token_record(u, t, i, token) for u, t, i, token in
               zip(store.user_id, store.timestamp, store.item_id, store.tokens)]
    with beam.Pipeline() as pipeline:
        events = pipeline | "Events" >> beam.Create(helpers.log_events(log))
        tokens = pipeline | "Tokens" >> beam.Create(records) | beam.Map(token_beam.parse_token_record)
        outputs = ({"events": events, "tokens": tokens}
                   | history_beam.BuildHistoryExamples(token_schema, 0.25, token_beam.user_token_rows))
        for split, columns in (("train", train), ("eval", evaluation)):
            assert_that(outputs[split] | f"Decode{split}" >> beam.Map(_decoded),
                        equal_to([_decoded(r) for r in F.to_tf_examples(columns)]), label=split)


def test_search_windows_carry_the_tokens_of_the_events_they_hold(trained):
    log, schema, model, _, version = trained
    store = S.build_token_store(model, log)   # sorted like the index: its tokens are the index's rows'
    index = history.HistoryIndex(log, dataclasses.replace(schema, history_length=4))
    expected = index.search_examples(np.arange(len(index)), 1, 1, index.events[F.CATEGORY], {"token": store.tokens})
    expected[F.TOKEN_VERSION] = np.full(len(index), F.token_version_id(version), np.int64)
    train, evaluation = history.split_by_time(expected, history.time_cutoff(log[F.TIMESTAMP], 0.25))
    spec = dataclasses.replace(schema.example_spec, history_length=2, token_dim=4, token_version=version)
    records = [token_beam.token_record(u, t, i, token) for u, t, i, token in
               zip(store.user_id, store.timestamp, store.item_id, store.tokens)]
    with beam.Pipeline() as pipeline:
        events = pipeline | "Events" >> beam.Create(helpers.log_events(log))
        tokens = pipeline | "Tokens" >> beam.Create(records) | beam.Map(token_beam.parse_token_record)
        outputs = ({"events": events, "tokens": tokens} | history_beam.BuildHistoryExamples(
            spec, 0.25, token_beam.user_token_rows, search_window=(1, 1), search_depth=4))
        for split, columns in (("train", train), ("eval", evaluation)):
            assert_that(outputs[split] | f"Decode{split}" >> beam.Map(_decoded),
                        equal_to([_decoded(r) for r in F.to_tf_examples(columns)]), label=split)


def test_missing_tokens_for_a_user_are_an_error_not_a_silent_gap(trained):
    log, schema, model, _, _ = trained
    store = S.build_token_store(model, log)
    records = [token_beam.token_record(u, t, i, token) for u, t, i, token in
               zip(store.user_id, store.timestamp, store.item_id, store.tokens) if u != 1]
    with pytest.raises(Exception, match="does not line up"):
        with beam.Pipeline() as pipeline:
            events = pipeline | "Events" >> beam.Create(helpers.log_events(log))
            tokens = pipeline | "Tokens" >> beam.Create(records) | beam.Map(token_beam.parse_token_record)
            _ = {"events": events, "tokens": tokens} | history_beam.BuildHistoryExamples(
                dataclasses.replace(schema, token_dim=4), 0.25, token_beam.user_token_rows)


def test_token_schema_without_tokens_is_refused():
    with pytest.raises(ValueError, match="schema.token_dim is 4: pass"):
        with beam.Pipeline() as pipeline:
            _ = pipeline | beam.Create([]) | history_beam.BuildHistoryExamples(
                dataclasses.replace(helpers.tiny_schema(), token_dim=4), 0.25, token_beam.user_token_rows)
    with pytest.raises(ValueError, match="pass token_rows"):
        history_beam.BuildHistoryExamples(dataclasses.replace(helpers.tiny_schema(), token_dim=4), 0.25)
