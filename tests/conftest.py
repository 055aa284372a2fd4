"""Test-wide settings: Keras 2 for TFRS (before TensorFlow is imported), quiet TF logs, and the
``pipeline`` marker on every test that runs TFX pipelines or many training processes (the tests
``bash scripts/test.sh --fast`` leaves out)."""
import os
import pathlib

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_TESTS = pathlib.Path(__file__).resolve().parent
# Paths (relative to tests/) whose tests run the TFX pipeline end to end, compile it, or train in
# several processes: minutes each.
PIPELINE_TESTS = ("e2e/", "faults/test_killed_pipeline.py", "pipelines/test_kubeflow_v2_spec.py",
                  "pipelines/test_distributed_training.py")


def pytest_configure(config):
    config.addinivalue_line("markers", "pipeline: runs TFX pipelines or several training processes (slow tier)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        relative = pathlib.Path(str(item.fspath)).resolve().relative_to(_TESTS).as_posix()
        if relative.startswith(PIPELINE_TESTS):
            item.add_marker(pytest.mark.pipeline)
