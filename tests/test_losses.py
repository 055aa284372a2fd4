"""The ranking loss: the plain mean on one device, the global-batch mean on each replica."""
import json

import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tfrs_seqcompress.losses import GlobalBatchBinaryCrossentropy

TWO_REPLICAS = """
import json
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tfrs_seqcompress.losses import GlobalBatchBinaryCrossentropy
rng = np.random.default_rng(0)
labels, logits = rng.integers(0, 2, 8).astype("float32"), rng.normal(size=8).astype("float32")
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
dataset = tf.data.Dataset.from_tensor_slices((labels, logits)).batch(8)
batch = next(iter(strategy.experimental_distribute_dataset(dataset)))
per_replica = strategy.run(lambda y, p: GlobalBatchBinaryCrossentropy()(y, p), args=batch)
print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                  "summed": float(strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)),
                  "mean": float(tf.keras.losses.BinaryCrossentropy(from_logits=True)(labels, logits))}))
"""


def test_without_a_strategy_it_is_keras_binary_crossentropy():
    rng = np.random.default_rng(0)
    labels, logits = tf.constant(rng.integers(0, 2, 8), tf.float32), tf.constant(rng.normal(size=8), tf.float32)
    expected = tf.keras.losses.BinaryCrossentropy(from_logits=True)(labels, logits)
    np.testing.assert_allclose(GlobalBatchBinaryCrossentropy()(labels, logits), expected, rtol=1e-6)
    assert GlobalBatchBinaryCrossentropy.from_config(GlobalBatchBinaryCrossentropy().get_config()).name == (
        "global_batch_binary_crossentropy")


def test_two_replicas_sum_to_the_single_device_mean():
    answer = json.loads(helpers.run_python(TWO_REPLICAS).stdout.strip().splitlines()[-1])
    assert answer["replicas"] == 2
    assert answer["summed"] == pytest.approx(answer["mean"], rel=1e-6)
