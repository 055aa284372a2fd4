"""Item semantic vectors: from content (synthetic, MovieLens) or a TFRS two-tower model; unknown rows are zero."""
import numpy as np
import pytest

from tests.data.test_movielens import _write_dir
from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import movielens, synthetic
from tfrs_seqcompress.hisac import semantic


def test_synthetic_content_is_the_planted_content_embedding():
    world = synthetic.generate(synthetic.SyntheticConfig(num_users=5, seed=1))
    vectors = semantic.content_vectors(world.dataset)
    np.testing.assert_array_equal(vectors, world.dataset.items["content_embedding"])
    assert semantic.known_rows(vectors)[0] == 1  # row 0 is padding


def test_movielens_content_from_genres_decade_and_title(tmp_path):
    dataset = movielens.load_movielens_100k(_write_dir(tmp_path / "ml"))
    vectors = semantic.content_vectors(dataset)
    assert vectors.shape[0] == dataset.schema.num_items and not vectors[0].any()
    kolya, confidential, heavyweights = (vectors[dataset.log[F.ITEM_ID][row]] for row in (0, 1, 3))
    # Two comedies of the 1990s are closer to each other than to a film noir thriller.
    assert np.linalg.norm(kolya - heavyweights) < np.linalg.norm(kolya - confidential)
    assert dataset.items["release_year"][dataset.log[F.ITEM_ID][0]] == 1996


def test_content_vectors_need_content():
    world = synthetic.generate(synthetic.SyntheticConfig(num_users=5, seed=1))
    bare = type(world.dataset)(log=world.dataset.log, schema=world.dataset.schema,
                               items={F.CATEGORY: world.dataset.items[F.CATEGORY]}, category_names=[])
    with pytest.raises(ValueError, match="no content to build semantic vectors from .* semantic.retrieval_vectors"):
        semantic.content_vectors(bare)


def test_retrieval_vectors_from_a_two_tower_model_are_seeded_and_zero_for_unclicked_items():
    world = synthetic.generate(synthetic.SyntheticConfig(num_users=30, mean_history=80, seed=2))
    log, schema = world.dataset.log, world.dataset.schema
    first = semantic.retrieval_vectors(log, schema, dim=8, epochs=1)
    again = semantic.retrieval_vectors(log, schema, dim=8, epochs=1)
    np.testing.assert_allclose(first, again)
    clicked = np.unique(log[F.ITEM_ID][log[F.LABEL] == 1])
    assert first.shape == (schema.num_items, 8)
    np.testing.assert_array_equal(semantic.known_rows(first), clicked)
    with pytest.raises(ValueError, match="needs clicks"):
        semantic.retrieval_vectors({**log, F.LABEL: np.zeros_like(log[F.LABEL])}, schema)


def test_item_vectors_round_trip_through_their_csv(tmp_path):
    world = synthetic.generate(synthetic.SyntheticConfig(num_users=5, mean_history=20))
    vectors = semantic.content_vectors(world.dataset)
    vectors[3] = 0.0  # an item nothing is known about has no row in the file
    path = semantic.write_item_vectors_csv(vectors, tmp_path / "vectors.csv")
    table, unused = semantic.read_item_vectors(path, len(vectors) + 2)  # two items of the log without vectors
    np.testing.assert_array_equal(table[: len(vectors)], vectors)
    assert not table[len(vectors):].any() and not table[0].any()
    assert unused == {"items_without_vector": 3, "rows_not_in_log": 0}
    smaller, unused = semantic.read_item_vectors(path, 10)  # rows of items the log never shows are not kept
    np.testing.assert_array_equal(smaller, vectors[:10])
    assert unused["rows_not_in_log"] == len(semantic.known_rows(vectors)) - 8


@pytest.mark.parametrize("text, message", [
    ("item,v0\n1,0.5\n", "expected a header 'item_id, v0, v1"),
    ("item_id\n1\n", "expected a header 'item_id, v0, v1"),
    ("item_id,v0,v1\n1,0.5\n", "line 2: expected 3 fields"),
    ("item_id,v0\nseven,0.5\n", "line 2: v0..v0 must be numbers and item_id an integer"),
    ("item_id,v0\n1,nan\n", "line 2: item 1's vector holds NaN"),
    ("item_id,v0,v1\n1,0,0\n", "line 2: item 1's vector is all zeros"),
    ("item_id,v0\n1,0.5\n1,0.7\n", "line 3: item_id 1 is listed twice"),
    ("item_id,v0\n", "no item vectors"),
])
def test_a_bad_item_vector_file_is_refused_with_its_line(tmp_path, text, message):
    path = tmp_path / "vectors.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        semantic.read_item_vectors(path, 5)
