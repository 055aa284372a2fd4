"""Artefact types of this pipeline beyond TFX's standard ones (names "<namespace>.<Title>", as Kubeflow V2 requires)."""
from tfx import v1 as tfx


class InstanceTokens(tfx.dsl.Artifact):
    """IAT instance tokens of every logged event, with the source model that made them.

    Layout: ``tfrs_seqcompress.iat.token_beam``. Custom properties: ``version`` (the source
    model's fingerprint), ``scheme``, ``token_dim``, ``train_events``, ``cutoff``.
    """

    TYPE_NAME = "tfrs_seqcompress.InstanceTokens"


class SemanticCodebook(tfx.dsl.Artifact):
    """HiSAC's semantic codebook and the frozen item semantic vectors it quantises.

    Layout: ``codebook/`` (``tfrs_seqcompress.hisac.codebook.Codebook.save``) and ``item_vectors.npy``
    (``[num_items, dim]``, row i for item ID i, zeros where unknown). Custom properties:
    ``version`` (the codebook's digest), ``level_sizes``, ``quantisation_error`` (JSON, per level),
    ``used_codes`` (JSON), ``train_events``, ``cutoff``.
    """

    TYPE_NAME = "tfrs_seqcompress.SemanticCodebook"


class AgentTable(tfx.dsl.Artifact):
    """Every user's precomputed HiSAC agents for one pushed model version (a feature store's input).

    Layout: ``agents.tfrecord`` (``tfrs_seqcompress.agent_table``). Custom properties:
    ``model_version`` (the pushed version the agents were computed with), ``users``, ``written``
    (0 when the model was not pushed and nothing was computed).
    """

    TYPE_NAME = "tfrs_seqcompress.AgentTable"
