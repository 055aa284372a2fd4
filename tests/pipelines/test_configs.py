"""The pipeline's settings stay TF-free (the runner's --help and flag checks are instant), so they
keep their own copies of the encoder lists; the copies must name the same encoders as the layers."""
import subprocess
import sys

from pipelines import configs
from tests import helpers
from tfrs_seqcompress import layers


def test_the_pipeline_needs_tokens_and_codebooks_for_exactly_the_encoders_that_read_them():
    assert set(configs.TOKEN_ENCODERS) == set(layers.TOKEN_ENCODERS)
    assert set(configs.SEMANTIC_ENCODERS) == set(layers.SEMANTIC_ENCODERS)
    for encoder in layers.ENCODERS:
        config = configs.PipelineConfig(data_dir="", encoder=encoder)
        assert config.uses_instance_tokens == (encoder in layers.TOKEN_ENCODERS), encoder
        assert config.uses_codebook == (encoder in layers.SEMANTIC_ENCODERS), encoder


def test_the_settings_module_does_not_load_tensorflow():
    code = "import sys; from pipelines import configs; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=helpers.subprocess_env(),
                            cwd=str(helpers.REPO_ROOT), timeout=120, check=True)
    assert result.stdout.strip() == "False"
