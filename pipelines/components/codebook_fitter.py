"""``CodebookFitter``: HiSAC's semantic codebook in the pipeline.

The items' frozen semantic vectors are the user's own (``item_vectors_path``: a CSV of
``item_id, v0, v1, ...``, ``hisac.semantic.read_item_vectors``; item content, as the HiSAC paper's
semantic space) or, without such a file, made on the **training period only** (events before the
cutoff ``HistoryExampleGen`` uses): the item tower of a TFRS two-tower retrieval model trained on
the clicks (``hisac.semantic.retrieval_vectors``). It fits the residual k-means codebook over them with the Beam fitter (``codebook_beam.FitResidualKMeans``),
on the pipeline's Beam runner. The artefact holds both; its version (the codebook's digest),
level sizes, fitting statistics and the vectors' source are custom properties. Items without a
vector (not in the file; or, from the two-tower model, never clicked in the training period): the model leaves them out of voting and routing (``layers.SemanticIds``).

A re-run on newer data (a daily refresh) writes a new artefact with a new version; the model
trained on it is a new model version — a served model keeps the tables it was exported with.
"""
import json
import os

import apache_beam as beam
from absl import logging
from tfx import v1 as tfx

from pipelines.components import log_io, semantic_io
from pipelines.components.artifacts import SemanticCodebook
from tfrs_seqcompress import features as F
from tfrs_seqcompress.hisac import semantic
from tfrs_seqcompress.hisac.codebook import Codebook
from tfrs_seqcompress.hisac.codebook_beam import FitResidualKMeans


@tfx.dsl.components.component(use_beam=True)
def CodebookFitter(
    log_examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    codebook: tfx.dsl.components.OutputArtifact[SemanticCodebook],
    level_sizes: tfx.dsl.components.Parameter[str],
    eval_fraction: tfx.dsl.components.Parameter[float],
    semantic_dim: tfx.dsl.components.Parameter[int] = 16,
    event_features: tfx.dsl.components.Parameter[str] = "",
    iterations: tfx.dsl.components.Parameter[int] = 20,
    seed: tfx.dsl.components.Parameter[int] = 0,
    item_vectors_path: tfx.dsl.components.Parameter[str] = "",
    split_rule: tfx.dsl.components.Parameter[str] = "time",
    beam_pipeline: tfx.dsl.components.BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Fits the codebook (``level_sizes``: comma-separated codes per level) on the training period."""
    sizes = tuple(int(size) for size in level_sizes.split(","))
    columns = F.LOG_COLUMNS + tuple(name for name in event_features.split(",") if name)
    _, schema, cutoff, train_log = log_io.read_training_period(log_examples, columns, eval_fraction,
                                                               split_rule=split_rule)
    if item_vectors_path:
        vectors, unused = semantic.read_item_vectors(item_vectors_path, schema.num_items)
        logging.info("CodebookFitter: item vectors (dim %d) from %s (%s), then a %s codebook", vectors.shape[1],
                     item_vectors_path, unused, sizes)
    else:
        logging.info("CodebookFitter: two-tower semantic vectors (dim %d) from %d training events, then a %s codebook",
                     semantic_dim, len(train_log[F.USER_ID]), sizes)
        vectors = semantic.retrieval_vectors(train_log, schema, dim=semantic_dim, seed=seed)
    known = semantic.known_rows(vectors)
    codebook_dir = os.path.join(codebook.uri, semantic_io.CODEBOOK_DIR)
    with beam_pipeline as pipeline:
        _ = (pipeline
             | "ItemVectors" >> beam.Create(list(zip(known.tolist(), vectors[known])))
             | "FitResidualKMeans" >> FitResidualKMeans(sizes, seed=seed, iterations=iterations)
             | "Save" >> beam.Map(lambda fitted: fitted.save(codebook_dir)))
    semantic_io.save_item_vectors(codebook.uri, vectors)
    fitted = Codebook.load(codebook_dir, expected_level_sizes=sizes)
    logging.info("CodebookFitter: version %s, quantisation error per level %s, used codes %s", fitted.version,
                 fitted.statistics["quantisation_error"], fitted.statistics["used_codes"])
    codebook.set_string_custom_property("version", fitted.version)
    codebook.set_string_custom_property("level_sizes", level_sizes)
    codebook.set_string_custom_property("quantisation_error", json.dumps(fitted.statistics["quantisation_error"]))
    codebook.set_string_custom_property("used_codes", json.dumps(fitted.statistics["used_codes"]))
    codebook.set_int_custom_property("train_events", len(train_log[F.USER_ID]))
    codebook.set_string_custom_property("split_rule", split_rule)
    if cutoff is not None:
        codebook.set_int_custom_property("cutoff", cutoff)
    codebook.set_string_custom_property("semantic_vectors", "item_vectors_file" if item_vectors_path else "two_tower")
