"""Residual k-means codebook: deterministic, hierarchical, versioned; bad files and vectors refused."""
import numpy as np
import pytest

from tfrs_seqcompress.data import synthetic
from tfrs_seqcompress.hisac.codebook import Codebook, CodebookError, elbow_level_sizes, fit_residual_kmeans


@pytest.fixture(scope="module")
def content():
    world = synthetic.generate(synthetic.SyntheticConfig(num_users=5, num_categories=4, subcategories_per_category=3,
                                                         items_per_subcategory=10, seed=2))
    return world.dataset.items["content_embedding"][1:], world.dataset.items


def test_same_seed_same_codebook_other_seed_other_version(content):
    vectors, _ = content
    first = fit_residual_kmeans(vectors, (4, 3), seed=0)
    again = fit_residual_kmeans(vectors, (4, 3), seed=0)
    other = fit_residual_kmeans(vectors, (4, 3), seed=1)
    assert first.version == again.version and all(np.array_equal(a, b) for a, b in zip(first.codewords, again.codewords))
    assert other.version != first.version


def test_each_level_explains_more_and_the_top_level_finds_the_categories(content):
    vectors, items = content
    codebook = fit_residual_kmeans(vectors, (4, 3, 2), seed=0)
    errors = codebook.statistics["quantisation_error"]
    assert codebook.statistics["total_variance"] > errors[0] > errors[1] > errors[2]
    codes = codebook.assign(vectors)
    assert codes.shape == (len(vectors), 3) and codes.dtype == np.int64
    # Planted categories are far apart: level 1 puts each category's items under one code.
    categories = items["category"][1:]
    for category in np.unique(categories):
        assert len(np.unique(codes[categories == category, 0])) == 1
    assert len(np.unique(codes[:, 0])) == 4 and codebook.statistics["used_codes"][0] == 4
    reconstruction_error = ((vectors - codebook.reconstruct(codes)) ** 2).sum(axis=1).mean()
    assert reconstruction_error == pytest.approx(errors[2], rel=1e-4)


def test_save_load_round_trip_and_refusals(content, tmp_path):
    vectors, _ = content
    codebook = fit_residual_kmeans(vectors, (4, 3), seed=0)
    codebook.save(tmp_path / "cb")
    loaded = Codebook.load(tmp_path / "cb", expected_version=codebook.version, expected_level_sizes=(4, 3),
                           expected_dim=vectors.shape[1])
    np.testing.assert_array_equal(loaded.assign(vectors), codebook.assign(vectors))
    assert loaded.statistics == codebook.statistics
    with pytest.raises(CodebookError, match="differs from the expected 'abc'"):
        Codebook.load(tmp_path / "cb", expected_version="abc")
    with pytest.raises(CodebookError, match="level sizes \\(4, 3\\); expected \\(8, 3\\)"):
        Codebook.load(tmp_path / "cb", expected_level_sizes=(8, 3))
    data = (tmp_path / "cb" / "codewords.npz").read_bytes()
    (tmp_path / "cb" / "codewords.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CodebookError, match="is missing, truncated or lacks metadata"):
        Codebook.load(tmp_path / "cb")


def test_save_and_load_work_on_any_gfile_filesystem(content):
    vectors, _ = content  # ram:// stands for gs:// or hdfs://: no local path is assumed
    codebook = fit_residual_kmeans(vectors, (4, 3), seed=0)
    codebook.save("ram://codebooks/cb")
    assert Codebook.load("ram://codebooks/cb", expected_version=codebook.version).level_sizes == (4, 3)
    with pytest.raises(CodebookError, match="is missing, truncated or lacks metadata"):
        Codebook.load("ram://codebooks/absent")


def test_modified_codewords_are_detected(content, tmp_path):
    vectors, _ = content
    codebook = fit_residual_kmeans(vectors, (4,), seed=0)
    codebook.save(tmp_path / "cb")
    tampered = Codebook((codebook.codewords[0] + 1.0,))
    np.savez(tmp_path / "cb" / "codewords.npz", level_0=tampered.codewords[0])
    with pytest.raises(CodebookError, match="modified or partly written"):
        Codebook.load(tmp_path / "cb")


def test_bad_vectors_and_settings_are_named(content):
    vectors, _ = content
    with pytest.raises(ValueError, match="level 1 has 500 codes but only 120 vectors"):
        fit_residual_kmeans(vectors, (500,))
    with pytest.raises(ValueError, match="1 to 4 positive code counts"):
        fit_residual_kmeans(vectors, (2, 2, 2, 2, 2))
    broken = vectors.copy()
    broken[7, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity in 1 row\\(s\\), first rows \\[7\\]"):
        fit_residual_kmeans(broken, (4,))
    codebook = fit_residual_kmeans(vectors, (4,))
    with pytest.raises(ValueError, match="dim 3; the codebook expects dim 16"):
        codebook.assign(np.zeros((2, 3)))


def clustered(clusters: int, per_cluster: int = 30, dim: int = 8, seed: int = 0) -> np.ndarray:
    """Points around ``clusters`` far-apart centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)) * 5.0
    return (np.repeat(centres, per_cluster, axis=0) + rng.normal(size=(clusters * per_cluster, dim)) * 0.3)


@pytest.mark.parametrize("clusters, level_1", [(12, 16), (40, 64)])
def test_the_elbow_puts_level_1_where_the_clusters_are_separated(clusters, level_1):
    levels, errors = elbow_level_sizes(clustered(clusters, per_cluster=60), leaves=256, sizes=(8, 16, 32, 64, 128))
    assert levels == (level_1, 256 // level_1)
    # The step to the elbow at least halves the error; no step after it does.
    assert errors[level_1] <= 0.5 * errors[level_1 // 2]
    assert all(errors[2 * size] > 0.5 * errors[size] for size in (8, 16, 32, 64) if size >= level_1)


def test_without_clusters_the_elbow_is_the_smallest_size_and_sizes_near_n_are_skipped():
    blob = np.random.default_rng(0).normal(size=(300, 8))
    levels, errors = elbow_level_sizes(blob, leaves=64, sizes=(8, 16, 32, 64, 128))
    assert levels == (8, 8) and sorted(errors) == [8, 16, 32, 64]   # 128 codes for 300 vectors: skipped


def test_the_elbow_refuses_bad_settings_by_name():
    points = clustered(4, per_cluster=100)
    with pytest.raises(ValueError, match="min_gain must be a fraction"):
        elbow_level_sizes(points, min_gain=1.5)
    with pytest.raises(ValueError, match="leaves must be a positive"):
        elbow_level_sizes(points, leaves=0)
    with pytest.raises(ValueError, match="sizes must be ascending"):
        elbow_level_sizes(points, sizes=(32, 16))
    with pytest.raises(ValueError, match="at most a quarter of the 400 vectors"):
        elbow_level_sizes(points, sizes=(128, 256))
