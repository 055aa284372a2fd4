"""The examples/ scripts run as a user would run them, each in a fresh process, and check what they claim."""
import re
import subprocess
import sys
import warnings

import pytest
import tensorflow as tf

from tests import helpers


@pytest.mark.parametrize("script, claim", [
    ("hisac_in_your_model.py", r"in-graph vs precomputed-agents scores differ by at most (\S+)"),
    ("iat_in_your_model.py", r"served vs trained model scores differ by at most (\S+)")])
def test_an_example_runs_and_its_served_model_scores_as_it_says(tmp_path, script, claim):
    # As a user runs it: nothing set beforehand (the script itself must select Keras 2 for TFRS).
    env = {name: value for name, value in helpers.subprocess_env().items() if name != "TF_USE_LEGACY_KERAS"}
    result = subprocess.run([sys.executable, str(helpers.REPO_ROOT / "examples" / script), "--export-dir",
                             str(tmp_path / "model")], capture_output=True, text=True, timeout=900,
                            env=env, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    gap = float(re.search(claim, result.stdout).group(1))
    assert gap < 1e-5
    assert (tmp_path / "model" / "saved_model.pb").exists()


def test_the_exporter_warns_when_a_model_could_serve_agents_but_does_not_say_how(tmp_path):
    from tfrs_seqcompress import layers, serving
    from tfrs_seqcompress.hisac.codebook import fit_residual_kmeans
    import numpy as np

    vectors = np.concatenate([np.zeros((1, 4)), np.random.default_rng(0).normal(size=(30, 4))]).astype(np.float32)
    encoder = layers.HiSACEncoder.from_codebook(fit_residual_kmeans(vectors[1:], (4, 2), seed=0), vectors,
                                                fanouts=(2, 2))

    class Plain(tf.keras.Model):  # holds an agent-capable encoder, is no AgentModel
        def __init__(self):
            super().__init__()
            self.encoder = encoder

    with pytest.warns(UserWarning, match=r"holds \['HiSACEncoder'\], which can precompute agents, but is not an "
                                         r"agent_model.AgentModel"):
        with pytest.raises(Exception):  # the plain model cannot be exported for this schema: only the warning matters
            serving.export_serving_model(Plain(), str(tmp_path / "m"), helpers.tiny_schema())
    warnings.resetwarnings()
