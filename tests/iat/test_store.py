"""The token store: fetch == brute force, strictly before the request, fallbacks, versions, damage."""
import dataclasses

import numpy as np
import pytest

from tests import helpers
from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import history
from tfrs_seqcompress.iat.store import TokenStore, TokenVersionError


def _store(version="v1"):
    log = helpers.tiny_log()
    tokens = np.arange(len(log[F.USER_ID]) * 2, dtype=np.float32).reshape(-1, 2)  # row i = event i
    return log, tokens, TokenStore.build(log, tokens, version=version, scheme="user_order")


def brute_force_fetch(log, tokens, user, time, length):
    rows = [i for i in range(len(log[F.USER_ID])) if log[F.USER_ID][i] == user and log[F.TIMESTAMP][i] < time]
    rows.sort(key=lambda i: (log[F.TIMESTAMP][i], log[F.ITEM_ID][i]))
    rows = rows[-length:]
    expected = np.zeros((length, tokens.shape[1]), np.float32)
    if rows:
        expected[length - len(rows):] = tokens[rows]
    return expected, len(rows)


@pytest.mark.parametrize("user, time", [(1, 50), (1, 100), (1, 101), (1, 200), (1, 201), (1, 10**6), (2, 160), (3, 51)])
def test_fetch_matches_brute_force_strictly_before(user, time):
    log, tokens, store = _store()
    fetched, mask = store.fetch(np.array([user]), np.array([time]), history_length=3)
    expected, count = brute_force_fetch(log, tokens, user, time, 3)
    np.testing.assert_array_equal(fetched[0], expected)
    np.testing.assert_array_equal(mask[0], [0] * (3 - count) + [1] * count)


def test_unknown_user_and_early_request_get_an_empty_masked_history():
    _, _, store = _store()
    fetched, mask = store.fetch(np.array([99, 1, 0]), np.array([500, 100, 500]), history_length=4)
    assert mask.sum() == 0 and np.all(fetched == 0)


def test_an_empty_store_returns_empty_histories():
    log = {name: values[:0] for name, values in helpers.tiny_log().items()}
    store = TokenStore.build(log, np.zeros((0, 3), np.float32), version="v", scheme="user_order")
    tokens, mask = store.fetch(np.array([1, 2]), np.array([100, 200]), history_length=4)
    assert tokens.shape == (2, 4, 3) and mask.shape == (2, 4) and mask.sum() == 0


def test_attach_lines_up_with_the_history_builder():
    log, tokens, store = _store()
    schema = helpers.tiny_schema(history_length=3)
    examples = store.attach(history.build_history_examples(log, schema), expected_version="v1")
    row = int(np.flatnonzero((examples[F.USER_ID] == 1) & (examples[F.TIMESTAMP] == 400))[0])
    # The tokens of the events in hist_item_id, position by position.
    event_of_item = {item: i for i, item in enumerate(log[F.ITEM_ID])}
    np.testing.assert_array_equal(examples[F.HISTORY_TOKEN][row],
                                  tokens[[event_of_item[item] for item in examples["hist_item_id"][row]]])
    F.validate_examples(examples, dataclasses.replace(schema, token_dim=2, token_version="v1"))
    with pytest.raises(ValueError, match="'token_version': the examples' tokens are not of version 'v2'"):
        F.validate_examples(examples, dataclasses.replace(schema, token_dim=2, token_version="v2"))


def test_attach_refuses_another_version_and_another_log():
    log, _, store = _store(version="v1")
    examples = history.build_history_examples(log, helpers.tiny_schema())
    with pytest.raises(TokenVersionError, match="version 'v1' differs from the expected 'v2'"):
        store.attach(examples, expected_version="v2")
    other_log = {**log, F.USER_ID: np.array([1, 1, 1, 1, 2, 2, 2, 1])}
    other = TokenStore.build(other_log, np.zeros((8, 2), np.float32), version="v1", scheme="user_order")
    with pytest.raises(ValueError, match="does not line up"):
        other.attach(examples)


def test_nan_tokens_and_wrong_count_are_refused():
    log = helpers.tiny_log()
    with pytest.raises(ValueError, match="NaN"):
        TokenStore.build(log, np.full((8, 2), np.nan), version="v", scheme="user_order")
    with pytest.raises(ValueError, match="tokens must have shape \\[8, token_dim\\]"):
        TokenStore.build(log, np.zeros((7, 2)), version="v", scheme="user_order")


def test_save_load_round_trip_and_refusals(tmp_path):
    _, _, store = _store(version="abc")
    store.save(tmp_path / "store")
    loaded = TokenStore.load(tmp_path / "store", expected_version="abc", expected_token_dim=2)
    np.testing.assert_array_equal(loaded.tokens, store.tokens)
    assert loaded.scheme == "user_order"
    with pytest.raises(TokenVersionError, match="differs from the expected 'xyz'"):
        TokenStore.load(tmp_path / "store", expected_version="xyz")
    with pytest.raises(TokenVersionError, match="token_dim 2; the model expects 16"):
        TokenStore.load(tmp_path / "store", expected_token_dim=16)


def test_truncated_store_is_refused(tmp_path):
    _, _, store = _store()
    path = store.save(tmp_path / "store") / "tokens.npz"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match="missing or damaged"):
        TokenStore.load(tmp_path / "store")


def test_user_ids_beyond_2_40_never_see_another_users_tokens():
    """Keys are users' dense ranks, not their raw IDs: a raw-ID key ``(user << 34) + time`` made
    user 2^40 + 1's tokens another user's once the shift overflowed int64."""
    log = {name: values.copy() for name, values in helpers.tiny_log().items()}
    log[F.USER_ID] = np.where(log[F.USER_ID] == 1, (1 << 40) + 1, np.where(log[F.USER_ID] == 2, 1 << 62, 5))
    tokens = np.arange(len(log[F.USER_ID]) * 2, dtype=np.float32).reshape(-1, 2)
    store = TokenStore.build(log, tokens, version="v1", scheme="user_order")
    for user in ((1 << 40) + 1, 1 << 62, 5):
        for time in (100, 201, 10**6):
            fetched, mask = store.fetch(np.array([user]), np.array([time]), history_length=3)
            expected, count = brute_force_fetch(log, tokens, user, time, 3)
            np.testing.assert_array_equal(fetched[0], expected)
            assert mask[0].sum() == count
    fetched, mask = store.fetch(np.array([(1 << 29) + 1]), np.array([10**6]), 3)  # unknown, not a neighbour
    assert mask.sum() == 0 and not fetched.any()


@pytest.mark.parametrize("damage, message", [
    (lambda arrays, meta: arrays.update(tokens=np.where(arrays["tokens"] > 3, np.nan, arrays["tokens"])),
     "holds NaN or infinite tokens"),
    (lambda arrays, meta: arrays.update({name: values[::-1].copy() for name, values in arrays.items()}),
     r"is not sorted by \(user_id, timestamp, item_id\)"),
    (lambda arrays, meta: meta.pop("scheme"), r"metadata.json lacks \['scheme'\]"),
])
def test_a_damaged_store_is_refused_on_load(tmp_path, damage, message):
    _, _, store = _store()
    directory = store.save(tmp_path / "store")
    import json
    with np.load(directory / "tokens.npz") as saved:
        arrays = {name: saved[name] for name in saved.files}
    meta = json.loads((directory / "metadata.json").read_text())
    damage(arrays, meta)
    np.savez_compressed(directory / "tokens.npz", **arrays)
    (directory / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=message):
        TokenStore.load(directory)
