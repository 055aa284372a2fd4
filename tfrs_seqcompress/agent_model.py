"""The protocol that gives any Keras / TFRS model HiSAC's precomputed-agents serving path.

An encoder such as ``layers.HiSACEncoder`` compresses a history into K agents that depend on the
history only (``compute_agents``) and scores a candidate against them at O(K)
(``attend_agents``). To serve that way, the exporter (``serving.export_serving_model``) needs
these from the *model* around the encoder, which ``AgentModel`` names:

* ``compute_agents(features) -> {agent_vectors [B, K, A], agent_mask [B, K], agent_weights [B, K]}``
  from parsed history examples (run offline, once per user);
* ``score_with_agents(features) -> logits [B]`` from the target and context features plus the
  three agent features (one row per candidate);
* ``agent_shape() -> (K, A)``: the shape of one user's ``agent_vectors``;
* ``agent_recent_events() -> N``: how many of the user's latest events ``score_with_agents`` also
  reads (a short-term base beside the agents, ``layers.WithShortTermBase``; 0 for agents alone),
  and ``recent_event_features()``: the history features that carry them (``[N]`` each).

``AgentModel`` is a mix-in: it answers ``supports_agents()`` and ``agent_shape()`` from two
attributes, ``agent_encoder`` (the encoder) and ``agent_ranking_dim`` (the width D of the
embeddings the model feeds it), and leaves the two model-specific methods to the model (three
when the agent encoder reads the latest events too: ``recent_event_features``). The
library's ``models.RankingModel`` is one; ``examples/hisac_in_your_model.py`` shows a user's own.
A model that holds an agent-capable encoder but is not an ``AgentModel`` exports
``serving_default`` only, and the exporter warns.

Example::

    class MyModel(tfrs.models.Model, AgentModel):
        def __init__(self, encoder):
            super().__init__()
            self.agent_encoder, self.agent_ranking_dim = encoder, 32
            ...
        def compute_agents(self, features):
            agents = self.agent_encoder.compute_agents(self.encoder_inputs(features))
            return {"agent_vectors": agents["agent_vectors"], "agent_mask": tf.cast(agents["agent_mask"], tf.int64),
                    "agent_weights": agents["agent_weights"]}
        def score_with_agents(self, features):
            ...  # embed the candidate, self.agent_encoder.attend_agents(...), the model's head
"""
from __future__ import annotations

from typing import Mapping

import tensorflow as tf

from tfrs_seqcompress.layers.base import computes_agents


class AgentModel:
    """Mix-in for models that serve through precomputed agents (see the module docstring).

    Attributes the model sets:
      agent_encoder: the encoder with ``compute_agents`` / ``attend_agents`` / ``num_agents`` /
        ``agent_dim`` (and ``recent_events``, N, when ``attend_agents`` also reads the user's latest
        N events, as ``layers.WithShortTermBase`` does).
      agent_ranking_dim: D, the width of the ranking embeddings the model gives the encoder.
    """

    def supports_agents(self) -> bool:
        # No class-level defaults: Keras only tracks (and exports) a layer set on the instance.
        return computes_agents(getattr(self, "agent_encoder", None))

    def agent_shape(self) -> tuple[int, int]:
        """``(K, A)``: agents per user and the width of one agent vector."""
        if not self.supports_agents():
            raise ValueError(f"{type(self).__name__} has no agent encoder.")
        return int(self.agent_encoder.num_agents), int(self.agent_encoder.agent_dim(self.agent_ranking_dim))

    def agent_recent_events(self) -> int:
        """N: the user's latest events a ``score_with_agents`` example carries beside the agents (0: none)."""
        if not self.supports_agents():
            raise ValueError(f"{type(self).__name__} has no agent encoder.")
        return int(getattr(self.agent_encoder, "recent_events", 0))

    def recent_event_features(self) -> tuple[str, ...]:
        """The history features (``[N]`` each) a ``score_with_agents`` example carries for those N
        events; () when N = 0. A model with a short-term base names them."""
        if self.agent_recent_events():
            raise NotImplementedError(f"{type(self).__name__} scores agents beside the user's latest events: it must "
                                      "implement recent_event_features (see agent_model).")
        return ()

    def compute_agents(self, features: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement compute_agents (see agent_model).")

    def score_with_agents(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement score_with_agents (see agent_model).")


def agent_capable_encoders(model: tf.Module) -> list[str]:
    """Names of the model's layers that could compute agents (what the exporter warns about when
    the model is not an ``AgentModel``)."""
    layers = getattr(model, "submodules", ())
    return sorted({type(layer).__name__ for layer in layers
                   if computes_agents(layer) and hasattr(layer, "attend_agents")})
