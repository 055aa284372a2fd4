"""HiSAC inside your own TFRS model, served through precomputed agents.

A minimal ``tfrs.models.Model`` of your own (its own embeddings and head) uses
``layers.HiSACEncoder`` for the user's history. Mixing in ``AgentModel`` and writing two methods
(``compute_agents``, ``score_with_agents``) gives its SavedModel HiSAC's O(K) serving path beside
``serving_default``. The script trains on a small synthetic log, exports, reloads the SavedModel
and checks that both serving paths give the same scores.

    python examples/hisac_in_your_model.py [--export-dir /tmp/hisac_model]
"""
import argparse
import tempfile

import numpy as np

import tfrs_seqcompress  # noqa: F401  (first: sets Keras 2 for TFRS before TensorFlow loads)
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrs_seqcompress import features as F
from tfrs_seqcompress import serving
from tfrs_seqcompress.agent_model import AgentModel
from tfrs_seqcompress.data import history, synthetic, tf_data
from tfrs_seqcompress.hisac import semantic
from tfrs_seqcompress.hisac.codebook import fit_residual_kmeans
from tfrs_seqcompress.layers import HiSACEncoder

DIM = 16


class MyRanker(tfrs.models.Model, AgentModel):
    """Item + category embeddings, a HiSAC interest, a two-layer head."""

    def __init__(self, schema, encoder):
        super().__init__()
        self.item = tf.keras.layers.Embedding(schema.num_items, DIM)
        self.category = tf.keras.layers.Embedding(schema.num_categories, DIM)
        self.feedback = tf.keras.layers.Embedding(2, 2 * DIM)
        self.agent_encoder, self.agent_ranking_dim = encoder, 2 * DIM
        self.head = tf.keras.Sequential([tf.keras.layers.Dense(32, activation="relu"), tf.keras.layers.Dense(1)])
        self.task = tfrs.tasks.Ranking(loss=tf.keras.losses.BinaryCrossentropy(from_logits=True))

    def embed(self, items, categories):
        return tf.concat([self.item(items), self.category(categories)], axis=-1)

    def history_inputs(self, features):
        return {"history_embeddings": self.embed(features["hist_item_id"], features["hist_category"])
                + self.feedback(features["hist_label"]),
                "history_mask": features["hist_mask"], "history_item_id": features["hist_item_id"],
                "candidate_embedding": self.embed(features["item_id"], features["category"]),
                "candidate_item_id": features["item_id"]}

    def call(self, features):
        inputs = self.history_inputs(features)
        return self.logits(inputs["candidate_embedding"], self.agent_encoder(inputs))

    def logits(self, candidate, interest):
        return tf.squeeze(self.head(tf.concat([candidate, interest, candidate * interest], -1)), -1)

    def compute_agents(self, features):
        agents = self.agent_encoder.compute_agents(self.history_inputs(features))
        return {"agent_vectors": agents["agent_vectors"], "agent_mask": tf.cast(agents["agent_mask"], tf.int64),
                "agent_weights": agents["agent_weights"]}

    def score_with_agents(self, features):
        candidate = self.embed(features["item_id"], features["category"])
        interest = self.agent_encoder.attend_agents(
            features["agent_vectors"], tf.cast(features["agent_mask"], tf.bool), features["agent_weights"],
            candidate, features["item_id"])
        return self.logits(candidate, interest)

    def compute_loss(self, features, training=False):
        return self.task(labels=tf.cast(features["label"], tf.float32), predictions=self(features))


def main(export_dir: str) -> float:
    world = synthetic.generate(synthetic.SyntheticConfig(num_users=60, mean_history=150, history_length=40, seed=1))
    schema = world.dataset.schema
    examples = history.build_history_examples(world.dataset.log, schema, min_history=1)
    vectors = semantic.content_vectors(world.dataset)          # row i = item i; row 0 padding (zeros)
    known = semantic.known_rows(vectors)
    codebook = fit_residual_kmeans(vectors[known], (16, 8), keys=known)
    tf.keras.utils.set_random_seed(0)
    model = MyRanker(schema, HiSACEncoder.from_codebook(codebook, vectors, fanouts=(8, 4)))
    model.compile(optimizer=tf.keras.optimizers.Adam(3e-3))
    model.fit(tf_data.dataset_from_columns(examples, 256, shuffle_seed=0), epochs=2, verbose=0)

    serving.export_serving_model(model, export_dir, schema)
    loaded = tf.saved_model.load(export_dir)
    print("signatures:", sorted(loaded.signatures))
    # One user's latest history against 20 candidate items.
    row = len(examples[F.USER_ID]) - 1
    items = np.arange(1, 21)
    candidates = {F.ITEM_ID: items, F.CATEGORY: world.dataset.items[F.CATEGORY][items],
                  F.TIMESTAMP: np.full(20, examples[F.TIMESTAMP][row]),
                  **{name: np.full(20, examples[name][row]) for name in schema.context_features},
                  F.USER_ID: np.full(20, examples[F.USER_ID][row])}
    request = {name: np.repeat(values[row:row + 1], 20, axis=0) for name, values in examples.items()
               if name != F.LABEL}
    request.update(candidates)
    in_graph = loaded.signatures["serving_default"](examples=tf.constant(F.to_tf_examples(request)))["score"]
    agents = loaded.signatures["compute_agents"](examples=tf.constant(F.to_tf_examples(
        {name: values[:1] for name, values in request.items()})))           # offline, once per user
    with_agents = dict(candidates, **{name: np.repeat(agents[name].numpy(), 20, axis=0) for name in agents})
    served = loaded.signatures["score_with_agents"](examples=tf.constant(F.to_tf_examples(with_agents)))["score"]
    gap = float(np.max(np.abs(served.numpy() - in_graph.numpy())))
    print(f"K = {model.agent_shape()[0]} agents; in-graph vs precomputed-agents scores differ by at most {gap:.2e}")
    return gap


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", default=tempfile.mkdtemp(prefix="hisac_model_"))
    main(parser.parse_args().export_dir)
