"""``BlessingGate``: the candidate is blessed only if every Evaluator blessed it.

The pipeline evaluates the candidate twice — against the last blessed model and against a model
with the baseline encoder — and TFX's Pusher reads one blessing. The gate writes that blessing,
in the Evaluator's own form (``blessed`` / ``current_model_id`` custom properties and a
``BLESSED`` or ``NOT_BLESSED`` file), so the Pusher and the ``LatestBlessedModelStrategy`` resolver
treat it as an Evaluator's. ``refused_by`` names the Evaluators that refused it (a floor or an allowed drop failed).
"""
import os

import tensorflow as tf
from tfx import v1 as tfx

ModelBlessing = tfx.types.standard_artifacts.ModelBlessing


@tfx.dsl.components.component
def BlessingGate(
    vs_blessed: tfx.dsl.components.InputArtifact[ModelBlessing],
    vs_baseline: tfx.dsl.components.InputArtifact[ModelBlessing],
    blessing: tfx.dsl.components.OutputArtifact[ModelBlessing],
) -> None:
    verdicts = {"Evaluator (vs the last blessed model)": vs_blessed,
                "EvaluatorVsBaseline (vs the baseline encoder)": vs_baseline}
    refused_by = [name for name, verdict in verdicts.items() if verdict.get_int_custom_property("blessed") != 1]
    blessed = not refused_by
    blessing.set_int_custom_property("blessed", int(blessed))
    blessing.set_string_custom_property("refused_by", ", ".join(refused_by))
    blessing.set_int_custom_property("current_model_id", vs_blessed.get_int_custom_property("current_model_id"))
    blessing.set_string_custom_property("current_model", vs_blessed.get_string_custom_property("current_model"))
    tf.io.gfile.makedirs(blessing.uri)
    with tf.io.gfile.GFile(os.path.join(blessing.uri, "BLESSED" if blessed else "NOT_BLESSED"), "w") as marker:
        marker.write(", ".join(refused_by))
