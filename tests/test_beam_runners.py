"""The pipeline's Beam steps on the runners users scale out with.

* DirectRunner in multi-process mode (the pipeline's local default: ``direct_running_mode=
  multi_processing``): elements cross process boundaries, so everything must pickle.
* The portable runner (``--runner=PortableRunner``): the Job API + Fn API path that Flink, Spark
  and Dataflow Runner v2 use; ``--job_endpoint=embed`` starts Beam's own job service in-process
  where a cluster would give ``--job_endpoint=<flink/spark job server>``.

Both must give exactly the in-memory results.
"""
import apache_beam as beam
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from tests import helpers
from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import history, history_beam, synthetic
from tfrs_seqcompress.hisac.codebook import Codebook, fit_residual_kmeans
from tfrs_seqcompress.hisac.codebook_beam import FitResidualKMeans

RUNNERS = {
    "direct_multi_process": ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                             "--direct_num_workers=2"],
    "portable": ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"],
}


@pytest.fixture(scope="module")
def world():
    return synthetic.generate(synthetic.SyntheticConfig(num_users=12, num_categories=4, subcategories_per_category=3,
                                                        items_per_subcategory=8, mean_history=30, history_length=6,
                                                        seed=4))


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_history_examples_match_the_in_memory_build(world, runner):
    log, schema = world.dataset.log, world.dataset.schema
    expected = history.build_history_examples(log, schema)
    train, evaluation = history.split_by_time(expected, history.time_cutoff(log[F.TIMESTAMP], 0.2))
    with beam.Pipeline(options=PipelineOptions(RUNNERS[runner])) as pipeline:
        outputs = pipeline | beam.Create(helpers.log_events(log)) | history_beam.BuildHistoryExamples(schema, 0.2)
        for split, columns in (("train", train), ("eval", evaluation)):
            assert_that(outputs[split] | f"Decode{split}" >> beam.Map(helpers.decoded_example),
                        equal_to([helpers.decoded_example(record) for record in F.to_tf_examples(columns)]), label=split)


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_codebook_fit_matches_the_in_memory_fit(world, runner, tmp_path):
    vectors = world.dataset.items["content_embedding"][1:]
    keys = np.arange(1, len(vectors) + 1)
    settings = {"level_sizes": (4, 3), "seed": 1, "iterations": 4}
    directory = str(tmp_path / "codebook")
    with beam.Pipeline(options=PipelineOptions(RUNNERS[runner])) as pipeline:
        _ = (pipeline | beam.Create(list(zip(keys.tolist(), vectors))) | FitResidualKMeans(**settings)
             | beam.Map(lambda fitted: fitted.save(directory)))
    expected = fit_residual_kmeans(vectors, keys=keys, **settings)
    fitted = Codebook.load(directory)
    np.testing.assert_array_equal(fitted.assign(vectors), expected.assign(vectors))
    for ours, theirs in zip(fitted.codewords, expected.codewords):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
