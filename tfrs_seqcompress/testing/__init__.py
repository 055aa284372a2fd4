"""Tools to verify a deployment without the production servers (in the manner of
``apache_beam.testing``): ``serving_harness``, a loopback gRPC ``PredictionService`` that speaks TF
Serving's wire API over exported SavedModels."""
