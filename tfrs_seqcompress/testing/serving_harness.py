"""A loopback gRPC ``PredictionService`` speaking TF Serving's wire API (``tensorflow_serving.apis``).

The ``tensorflow_model_server`` binary cannot be installed on the development machines, so tests
(and anyone checking a pushed model locally) call this instead, with the very ``PredictRequest``
a production client sends to the model server: it serves ``<base_path>/<integer version>/``
SavedModels (the newest by default, or ``model_spec.version``), runs the requested signature on
the ``examples`` input and answers errors with TF Serving's status codes — NOT_FOUND for an
unknown model or version, INVALID_ARGUMENT for a bad signature name, input or example — and keeps
serving. It is a verification harness, not a production server: in production run
``tensorflow_model_server --port=8500 --model_name=<name> --model_base_path=<base_path>``.

Example::

    server, port = start_server("ranker", "saved_models/ranker")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    response = stub.Predict(serving_client.grpc_request(serialized), timeout=10)
    server.stop(grace=None)
"""
from __future__ import annotations

import concurrent.futures
import os
import threading

import grpc
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tfrs_seqcompress import model_push, serving


MAX_MESSAGE_BYTES = 2**31 - 1   # tensorflow_model_server's gRPC limit (INT_MAX)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``Predict`` over the versioned SavedModels of one model (loaded once, on first use)."""

    def __init__(self, model_name: str, base_path: str):
        self.model_name, self.base_path = model_name, base_path
        self._loaded: dict[int, object] = {}
        self._lock = threading.Lock()

    def versions(self) -> list[int]:
        """The integer version directories under ``base_path``, ascending."""
        return model_push.model_versions(self.base_path)

    def _model(self, version: int, context):
        available = self.versions()
        version = version or (available[-1] if available else 0)
        if version not in available:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: model {self.model_name!r} "
                                                     f"version {version}; available versions {available}.")
        with self._lock:
            if version not in self._loaded:
                self._loaded[version] = tf.saved_model.load(os.path.join(self.base_path, str(version)))
        return version, self._loaded[version]

    def Predict(self, request: predict_pb2.PredictRequest, context) -> predict_pb2.PredictResponse:
        if request.model_spec.name != self.model_name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: model "
                                                     f"{request.model_spec.name!r} (serving {self.model_name!r}).")
        version, model = self._model(request.model_spec.version.value, context)
        try:
            outputs = serving.run_predict_request(model, request)
        except (tf.errors.InvalidArgumentError, TypeError, ValueError) as error:  # RequestError is a ValueError
            details = serving.error_summary(error) if isinstance(error, tf.errors.OpError) else str(error)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, details)
        signature_name = request.model_spec.signature_name or serving.SIGNATURE_NAME
        response = predict_pb2.PredictResponse()
        response.model_spec.name, response.model_spec.signature_name = self.model_name, signature_name
        response.model_spec.version.value = version
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
        return response


def start_server(model_name: str, base_path: str, port: int = 0, workers: int = 8) -> tuple[grpc.Server, int]:
    """Starts the service on ``127.0.0.1:port`` (0: any free port); returns the server and its port.

    Like ``tensorflow_model_server``, it accepts messages up to 2 GB (a request of 100 candidates
    with L = 10,000 histories is about 20 MB; gRPC's default limit is 4 MB)."""
    limits = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
              ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=workers), options=limits)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(model_name, base_path),
                                                                         server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server, bound
