"""A long history, a chunk of events at a time: the loop of the layers whose memory must not grow with L.

``SoftRoutingAttention`` (HiSAC) and ``TargetAttention`` (DIN, SIM-hard) run their ``[B, L, ...]``
work over ``size`` events at a time in a ``tf.while_loop``, forward and again (recomputing) in
their custom gradients, so nothing of size L x K or L x 4D is ever kept.

Example::

    count = chunks.count(tf.shape(history)[1], 512)
    sums, = chunks.loop(count, lambda i, total: (i + 1, total + tf.reduce_sum(chunks.take(history, i, 512), 1)),
                        (tf.zeros_like(history[:, 0]),))
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import tensorflow as tf


def checked_size(size) -> int:
    """``size`` as an int, refused unless it is a whole number of events >= 1 (a layer's ``chunk_size``)."""
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise ValueError(f"chunk_size must be a whole number of events >= 1, got {size!r}.")
    return int(size)


def count(length: tf.Tensor, size: int) -> tf.Tensor:
    """How many chunks of ``size`` events a history of ``length`` has; an empty history has one (empty) chunk."""
    return tf.maximum((length + size - 1) // size, 1)


def take(tensor: tf.Tensor, i: tf.Tensor, size: int) -> tf.Tensor:
    """Chunk ``i`` of a ``[B, L, ...]`` tensor along the events axis (the last chunk may be shorter)."""
    return tensor[:, i * size:(i + 1) * size]


def loop(chunk_count: tf.Tensor, body: Callable, start: Sequence) -> list:
    """Runs ``body(i, *state) -> (i + 1, *state)`` for every chunk, one after another (so one chunk's
    work is alive at a time), and returns the final state."""
    return tf.while_loop(lambda i, *_: i < chunk_count, body, (tf.constant(0), *start), parallel_iterations=1)[1:]


def pieces(dtype: tf.DType, chunk_count: tf.Tensor) -> tf.TensorArray:
    """One slot per chunk, for per-chunk results written events-first (``[chunk, B, ...]``)."""
    return tf.TensorArray(dtype, size=chunk_count, infer_shape=False)


def joined(written: tf.TensorArray, shape: tf.TensorShape) -> tf.Tensor:
    """The per-chunk results of ``pieces`` as one ``[B, L, ...]`` tensor of static ``shape``."""
    events_first = written.concat()
    batch_first = tf.transpose(events_first, tf.concat([[1, 0], tf.range(2, tf.rank(events_first))], axis=0))
    return tf.ensure_shape(batch_first, shape)
