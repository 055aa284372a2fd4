"""``AgentWriter``: after a push, every user's precomputed agents for the pushed version.

HiSAC's serving path scores candidates against a user's agents (``score_with_agents``); this
component computes them with the pushed SavedModel's own ``compute_agents`` signature over each
user's latest history (the last L events of the log) and writes them, keyed by user and tagged
with the model version, as an ``AgentTable`` artefact (``tfrs_seqcompress.agent_table``): what a
feature store loads beside the new model version. When the model was not pushed (not blessed),
nothing is computed and the artefact says so (``written`` = 0).
"""
import os

from absl import logging
from tfx import v1 as tfx

from pipelines.components import data_schema_io, log_io
from pipelines.components.artifacts import AgentTable, InstanceTokens
from tfrs_seqcompress import agent_table
from tfrs_seqcompress import features as F
from tfrs_seqcompress.iat import token_beam

TABLE_FILE = "agents.tfrecord"


@tfx.dsl.components.component
def AgentWriter(
    pushed_model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.PushedModel],
    log_examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    schema: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Schema],
    agents: tfx.dsl.components.OutputArtifact[AgentTable],
    instance_tokens: tfx.dsl.components.InputArtifact[InstanceTokens] = None,
) -> None:
    """Writes ``agents.tfrecord`` for the pushed version (nothing when the model was not pushed).

    With ``instance_tokens`` (an encoder over IAT tokens) each history also carries its tokens,
    read from the run's token files at the schema's token version."""
    if not pushed_model.get_int_custom_property("pushed"):
        logging.info("AgentWriter: the model was not pushed; no agents computed.")
        agents.set_int_custom_property("written", 0)
        return
    model_dir = pushed_model.get_string_custom_property("pushed_destination")
    version = int(pushed_model.get_string_custom_property("pushed_version"))
    data_schema = data_schema_io.read_schema(schema.uri)
    log = log_io.read_log_columns(log_examples, F.LOG_COLUMNS + tuple(data_schema.event_features))
    store = None
    if instance_tokens is not None:
        store = token_beam.read_token_store(instance_tokens.uri, expected_version=data_schema.token_version)
    table = agent_table.compute_agent_table(model_dir, log, data_schema, token_store=store)
    agent_table.write_agent_table(os.path.join(agents.uri, TABLE_FILE), table, model_version=version)
    logging.info("AgentWriter: agents of %d users for model version %d", len(table), version)
    agents.set_int_custom_property("written", 1)
    agents.set_int_custom_property("model_version", version)
    agents.set_int_custom_property("users", len(table))
