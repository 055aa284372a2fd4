"""tfrs_seqcompress: long user-history compression for TensorFlow Recommenders ranking models.

TFRS 0.7 needs ``tf.keras`` to be Keras 2 (the ``tf-keras`` package): ``TF_USE_LEGACY_KERAS=1``
must be set before TensorFlow is first imported. Importing this package sets it when the caller
has not, so ``import tfrs_seqcompress`` before ``import tensorflow`` is enough.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"
