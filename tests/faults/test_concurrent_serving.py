"""1,000 concurrent requests to the loopback serving harness: zero errors, every answer right."""
import concurrent.futures

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tfrs_seqcompress import features as F
from tfrs_seqcompress import models, serving, serving_client
from tfrs_seqcompress.data import history, synthetic
from tfrs_seqcompress.testing import serving_harness

REQUESTS = 1_000
CLIENTS = 64


def test_a_thousand_concurrent_requests_are_all_answered_correctly(tmp_path):
    world = synthetic.generate(synthetic.SyntheticConfig(num_users=20, mean_history=40, history_length=10, seed=8))
    examples = history.build_history_examples(world.dataset.log, world.dataset.schema)
    tf.keras.utils.set_random_seed(0)
    model = models.build_ranking_model(world.dataset.schema, "din_full")
    serving.export_serving_model(model, str(tmp_path / "ranker" / "1"))
    # 50 different requests of 5 candidates each, every one with its own expected scores.
    batches = [{name: values[start:start + 5] for name, values in examples.items() if name != F.LABEL}
               for start in range(0, 250, 5)]
    expected = [tf.sigmoid(model({name: tf.constant(values) for name, values in batch.items()})).numpy()
                for batch in batches]
    requests = [serving_client.grpc_request(F.to_tf_examples(batch)) for batch in batches]

    server, port = serving_harness.start_server("ranker", str(tmp_path / "ranker"), workers=16)
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))

        def call(index: int) -> float:
            scores = serving_client.response_scores(stub.Predict(requests[index % 50], timeout=60))
            return float(np.max(np.abs(scores - expected[index % 50])))

        with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
            futures = [pool.submit(call, index) for index in range(REQUESTS)]
            errors = [future.exception() for future in futures if future.exception() is not None]
            deviations = [future.result() for future in futures if future.exception() is None]
    finally:
        server.stop(None)
    assert errors == [] and len(deviations) == REQUESTS
    assert max(deviations) < 1e-5
