"""IAT inside your own TFRS model: instance tokens from a source model, a bounded history window.

Stage 1 trains a user-order IAT source model on the training period and stores every event's
instance token; stage 2 is your own ``tfrs.models.Model`` whose history encoder is
``layers.IATEncoder`` over a bounded window — the 16 most recent events plus the 16 latest earlier
events of the candidate's category (SIM-style search: the cost does not grow with the history)
— with their tokens fetched batch by batch. The script trains, exports, reloads the SavedModel
and checks that ``serving_default`` scores like the trained model.

    python examples/iat_in_your_model.py [--export-dir /tmp/iat_model]
"""
import argparse
import dataclasses
import tempfile

import numpy as np

import tfrs_seqcompress  # noqa: F401  (first: sets Keras 2 for TFRS before TensorFlow loads)
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrs_seqcompress import features as F
from tfrs_seqcompress import serving
from tfrs_seqcompress.data import history, synthetic, tf_data
from tfrs_seqcompress.iat import source_models
from tfrs_seqcompress.layers import IATEncoder

DIM, TOKEN_DIM, RECENT, RETRIEVED = 16, 8, 16, 16


class MyRanker(tfrs.models.Model):
    """Item + category embeddings, an IAT interest over the window's tokens, a two-layer head."""

    def __init__(self, schema):
        super().__init__()
        self.item = tf.keras.layers.Embedding(schema.num_items, DIM)
        self.category = tf.keras.layers.Embedding(schema.num_categories, DIM)
        self.feedback = tf.keras.layers.Embedding(2, 2 * DIM)
        self.encoder = IATEncoder(token_dim=TOKEN_DIM)
        self.head = tf.keras.Sequential([tf.keras.layers.Dense(32, activation="relu"), tf.keras.layers.Dense(1)])
        self.task = tfrs.tasks.Ranking(loss=tf.keras.losses.BinaryCrossentropy(from_logits=True))

    def embed(self, items, categories):
        return tf.concat([self.item(items), self.category(categories)], axis=-1)

    def call(self, features):
        candidate = self.embed(features["item_id"], features["category"])
        interest = self.encoder({
            "history_tokens": features["hist_token"], "history_mask": features["hist_mask"],
            "history_embeddings": self.embed(features["hist_item_id"], features["hist_category"])
            + self.feedback(features["hist_label"]),
            "history_time_gap": features["timestamp"][:, None] - features["hist_timestamp"],
            "candidate_embedding": candidate})
        return tf.squeeze(self.head(tf.concat([candidate, interest, candidate * interest], -1)), -1)

    def compute_loss(self, features, training=False):
        return self.task(labels=tf.cast(features["label"], tf.float32), predictions=self(features))


def main(export_dir: str) -> float:
    world = synthetic.generate(synthetic.SyntheticConfig(num_users=60, mean_history=300, history_length=1000, seed=1))
    log, schema = world.dataset.log, world.dataset.schema
    index = history.HistoryIndex(log, schema)
    cutoff = history.time_cutoff(log[F.TIMESTAMP], eval_fraction=0.2)
    train_log = {name: values[index.events[F.TIMESTAMP] < cutoff] for name, values in index.events.items()}
    source = source_models.train_source_model(train_log, schema, "user_order", token_dim=TOKEN_DIM, epochs=1)
    tokens = source_models.compute_tokens(source, index.events)       # every event, in the index's order
    window = dataclasses.replace(schema, history_length=RECENT + RETRIEVED, token_dim=TOKEN_DIM,
                                 token_version=source.fingerprint())

    def build(rows):  # the bounded window and its tokens, built per batch
        examples = index.search_examples(rows, RECENT, RETRIEVED, index.events[F.CATEGORY], {"token": tokens})
        return {**examples, F.TOKEN_VERSION: np.full(len(rows), F.token_version_id(window.token_version))}

    rows = np.flatnonzero(index.start > index.first)
    train_rows, test_rows = rows[index.events[F.TIMESTAMP][rows] < cutoff], rows[index.events[F.TIMESTAMP][rows] >= cutoff]
    tf.keras.utils.set_random_seed(0)
    model = MyRanker(window)
    model.compile(optimizer=tf.keras.optimizers.Adam(3e-3))
    model.fit(tf_data.dataset_from_history_index(index, train_rows, 256, shuffle_seed=0, build=build), epochs=2,
              verbose=0)

    serving.export_serving_model(model, export_dir, window)
    loaded = tf.saved_model.load(export_dir)
    request = {name: values for name, values in build(test_rows[:50]).items() if name != F.LABEL}
    served = loaded.signatures["serving_default"](examples=tf.constant(F.to_tf_examples(request)))["score"].numpy()
    direct = tf.sigmoid(model({name: tf.constant(values) for name, values in request.items()})).numpy()
    gap = float(np.max(np.abs(served - direct)))
    print(f"window of {RECENT} + {RETRIEVED} events of histories up to {schema.history_length}; served vs trained "
          f"model scores differ by at most {gap:.2e}")
    return gap


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", default=tempfile.mkdtemp(prefix="iat_model_"))
    main(parser.parse_args().export_dir)
