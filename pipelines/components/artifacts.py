"""Artefact types of this pipeline beyond TFX's standard ones."""
from tfx import v1 as tfx


class InstanceTokens(tfx.dsl.Artifact):
    """IAT instance tokens of every logged event, with the source model that made them.

    Layout: ``tfrs_seqcompress.iat.token_beam``. Custom properties: ``version`` (the source
    model's fingerprint), ``scheme``, ``token_dim``, ``train_events``, ``cutoff``.
    """

    TYPE_NAME = "InstanceTokens"
