"""The Beam codebook fitter gives the in-memory codebook on the same vectors, keys and seed."""
import apache_beam as beam
import numpy as np
import pytest

from tfrs_seqcompress.data import synthetic
from tfrs_seqcompress.hisac.codebook import Codebook, fit_residual_kmeans
from tfrs_seqcompress.hisac.codebook_beam import FitResidualKMeans


@pytest.fixture(scope="module")
def items():
    world = synthetic.generate(synthetic.SyntheticConfig(num_users=5, num_categories=6, subcategories_per_category=4,
                                                         items_per_subcategory=30, seed=5))
    vectors = world.dataset.items["content_embedding"][1:]
    return np.arange(1, len(vectors) + 1), vectors  # 720 items: several Beam batches


def _fit_with_beam(keys, vectors, directory, **settings):
    with beam.Pipeline() as pipeline:
        _ = (pipeline | beam.Create(list(zip(keys.tolist(), vectors))) | FitResidualKMeans(**settings)
             | beam.Map(lambda fitted: fitted.save(directory)))
    return Codebook.load(directory)


def test_beam_and_in_memory_fits_agree(items, tmp_path):
    keys, vectors = items
    settings = {"level_sizes": (6, 4), "seed": 3, "iterations": 5}
    in_memory = fit_residual_kmeans(vectors, keys=keys, **settings)
    with_beam = _fit_with_beam(keys, vectors, str(tmp_path / "codebook"), **settings)
    for ours, theirs in zip(with_beam.codewords, in_memory.codewords):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(with_beam.assign(vectors), in_memory.assign(vectors))
    for name in ("quantisation_error", "total_variance"):
        np.testing.assert_allclose(with_beam.statistics[name], in_memory.statistics[name], rtol=1e-6)
    assert with_beam.statistics["used_codes"] == in_memory.statistics["used_codes"]
    assert with_beam.statistics["num_vectors"] == len(vectors)


def test_beam_fit_refuses_nan_vectors(items, tmp_path):
    keys, vectors = items
    broken = vectors.copy()
    broken[3, 2] = np.inf
    with pytest.raises(Exception, match="NaN or infinity"):
        _fit_with_beam(keys, broken, str(tmp_path / "codebook"), level_sizes=(4,), iterations=1)
