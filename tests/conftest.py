"""Test-wide settings: Keras 2 for TFRS (before TensorFlow is imported), quiet TF logs."""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
