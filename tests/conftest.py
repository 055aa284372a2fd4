"""Test-wide settings: Keras 2 for TFRS (before TensorFlow is imported), quiet TF logs, and the
``slow`` marker on every test that runs TFX pipelines, several training processes or the examples
(the tests ``bash scripts/test.sh --fast`` leaves out)."""
import os
import pathlib

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_TESTS = pathlib.Path(__file__).resolve().parent
# Paths (relative to tests/) whose tests run the TFX pipeline end to end, compile it, train in
# several processes, start Beam's multi-process and portable runners, export every encoder's model
# for a fresh serving process or run the examples: a minute or more each. Longest first: the run
# starts them first, so that the test processes (scripts/test.sh) finish at about the same time.
SLOW_TESTS = ("e2e/test_pipeline.py", "e2e/test_pipeline_composed.py", "e2e/test_pipeline_hisac.py",
              "e2e/test_pipeline_raw_ids.py",
              "faults/test_killed_pipeline.py", "test_examples.py", "test_long_history.py",
              "faults/test_determinism.py", "test_export_every_model.py", "pipelines/test_distributed_training.py",
              "pipelines/test_kubeflow_v2_spec.py", "test_beam_runners.py", "test_memory_profile.py", "e2e/")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: runs TFX pipelines, several training processes or the examples")


def _slow_rank(item) -> int:
    """The position of the item's path in ``SLOW_TESTS`` (len(SLOW_TESTS) for a fast test)."""
    relative = pathlib.Path(str(item.fspath)).resolve().relative_to(_TESTS).as_posix()
    return next((rank for rank, prefix in enumerate(SLOW_TESTS) if relative.startswith(prefix)), len(SLOW_TESTS))


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _slow_rank(item) < len(SLOW_TESTS):
            item.add_marker(pytest.mark.slow)
    items.sort(key=_slow_rank)  # stable: a file's tests stay together and in order


@pytest.fixture(scope="session")
def exported_hisac(tmp_path_factory):
    """(world, examples, model, export_dir): ``helpers.trained_hisac_model()`` exported once as
    version 1 of a served model, shared by the serving tests that only read it (copy it to change it)."""
    from tests import helpers
    from tfrs_seqcompress import serving

    world, examples, model = helpers.trained_hisac_model()
    export_dir = tmp_path_factory.mktemp("saved_models") / "ranker" / "1"
    serving.export_serving_model(model, str(export_dir))
    return world, examples, model, export_dir
