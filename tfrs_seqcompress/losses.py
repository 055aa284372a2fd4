"""The ranking loss, correct with and without ``tf.distribute``.

Keras' ``BinaryCrossentropy`` averages over the batch it sees; under a distribution strategy each
replica sees a slice and the replicas' gradients are summed, so TF-Keras refuses its default
reduction inside a strategy (TFRS's ``Ranking`` task calls the loss itself). Here each replica
returns its summed loss divided by the *global* batch size (``tf.nn.compute_average_loss``): the
summed gradients equal the single-device mean's, and with no strategy it is the plain mean.

Example::

    task = tfrs.tasks.Ranking(loss=GlobalBatchBinaryCrossentropy())
"""
from __future__ import annotations

import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="tfrs_seqcompress")
class GlobalBatchBinaryCrossentropy(tf.keras.losses.Loss):
    """Binary cross-entropy from logits, averaged over the global batch.

    Call: ``labels`` ``[B]`` (0/1), ``logits`` ``[B]``, optional ``sample_weight`` ``[B]`` -> scalar.
    """

    def __init__(self, name: str = "global_batch_binary_crossentropy"):
        super().__init__(reduction=tf.keras.losses.Reduction.NONE, name=name)

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        labels = tf.cast(tf.reshape(y_true, [-1]), y_pred.dtype)
        return tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=tf.reshape(y_pred, [-1]))

    def __call__(self, y_true, y_pred, sample_weight=None) -> tf.Tensor:
        return tf.nn.compute_average_loss(super().__call__(y_true, y_pred, sample_weight))

    def get_config(self) -> dict:
        return {"name": self.name}
