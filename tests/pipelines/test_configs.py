"""The encoder registry is one TF-free table that the pipeline's settings, its command line and
``layers.make_encoder`` all read: the runner's --help and flag checks never load TensorFlow."""
import subprocess
import sys

import pytest

from pipelines import configs
from tests import helpers
from tfrs_seqcompress import layers, registry


def test_every_registered_encoder_builds_from_its_layer_class_and_defaults():
    for name, spec in registry.ENCODERS.items():
        cls, defaults = layers.ENCODERS[name]
        assert cls.__name__ == spec.layer and defaults == dict(spec.defaults)
        config = configs.PipelineConfig(data_dir="", encoder=name)
        assert config.uses_instance_tokens == spec.needs_tokens and config.uses_codebook == spec.needs_codebook
    defaults = configs.PipelineConfig(data_dir="")  # HiSAC's defaults are written once, in the registry
    assert defaults.fanouts == registry.HISAC_FANOUTS and defaults.temperature_scale == registry.HISAC_TEMPERATURE_SCALE
    with pytest.raises(ValueError, match="Unknown history encoder 'nope'"):
        layers.make_encoder("nope")


@pytest.mark.parametrize("module", ["pipelines.configs", "tfrs_seqcompress.registry"])
def test_the_settings_and_the_registry_do_not_load_tensorflow(module):
    code = f"import sys, {module}; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=helpers.subprocess_env(),
                            cwd=str(helpers.REPO_ROOT), timeout=120, check=True)
    assert result.stdout.strip() == "False"
