"""What a pipeline run tells a person: one line per component, read from ML Metadata.

The runner sends TFX's, Beam's and TensorFlow's logs to a file; ``ProgressReporter`` polls the
run's ML Metadata store and prints a line when a component starts and when it ends — its state
(``COMPLETE``, ``CACHED``, ``FAILED``), its seconds, and its key output artefacts — so a run reads
in a screenful. Tests and the pipeline benchmark read the same records (``node_executions``),
never log text.

Example::

    with ProgressReporter(metadata_path, print_line):
        tfx.orchestration.LocalDagRunner().run(pipeline)
"""
from __future__ import annotations

import dataclasses
import re
import threading
from typing import Callable

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

_STATE = metadata_store_pb2.Execution.State
_ENDED = {_STATE.COMPLETE, _STATE.CACHED, _STATE.FAILED, _STATE.CANCELED}
# Output properties worth a mention, per artefact (the rest is in the log file and in ML Metadata).
_KEY_PROPERTIES = ("version", "blessed", "refused_by", "pushed", "pushed_version", "users", "train_events")


@dataclasses.dataclass(frozen=True)
class NodeExecution:
    """The newest execution of one pipeline node (component id), as ML Metadata records it."""

    node: str
    state: str
    seconds: float
    outputs: tuple[str, ...]   # "Type(key=value, ...)" of each output artefact


# A Python exception's own line ("ValueError: ...", "module.SomeError: ..."), as a traceback ends.
_EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt):")


def failure_reason(error: BaseException) -> str:
    """The line of a failed run's error that says what went wrong, for the one-line verdict.

    Beam re-raises a component's error as a ``RuntimeError`` whose message is the whole worker
    traceback: its last exception line is the cause. TensorFlow's graph errors open with
    "Graph execution error:" and a stack: the cause is the line before the ``[[{{node ...}}]]``
    marker. Anything else: the message's first line.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    marker = next((number for number, line in enumerate(lines) if line.startswith("[[")), None)
    if marker:
        return f"{type(error).__name__}: {lines[marker - 1]}"
    causes = [line for line in lines[1:] if _EXCEPTION_LINE.match(line)]
    return causes[-1] if causes else f"{type(error).__name__}: {lines[0]}"


def store_for(metadata_path: str) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def _node_name(store, execution) -> str | None:
    for context in store.get_contexts_by_execution(execution.id):
        if store.get_context_types_by_id([context.type_id])[0].name == "node":
            return context.name.split(".", 1)[-1]
    return None


def _describe(artifact, type_names: dict) -> str:
    properties = []
    for key in _KEY_PROPERTIES:
        if key in artifact.custom_properties:
            value = artifact.custom_properties[key]
            properties.append(f"{key}={value.string_value or value.int_value}")
    return f"{type_names.get(artifact.type_id, '?').split('.')[-1]}({', '.join(properties)})"


def node_executions(store, since_id: int = 0) -> dict[str, NodeExecution]:
    """Node id -> its newest execution with an id above ``since_id`` (this run's, given the last id
    before it started)."""
    type_names = {kind.id: kind.name for kind in store.get_artifact_types()}
    newest = {}
    for execution in sorted(store.get_executions(), key=lambda execution: execution.id):
        if execution.id <= since_id:
            continue
        node = _node_name(store, execution)
        if node is None:
            continue
        outputs = ()
        if execution.last_known_state in _ENDED:
            ids = [event.artifact_id for event in store.get_events_by_execution_ids([execution.id])
                   if event.type == metadata_store_pb2.Event.OUTPUT]
            outputs = tuple(_describe(artifact, type_names) for artifact in store.get_artifacts_by_id(ids))
        seconds = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000
        newest[node] = NodeExecution(node, _STATE.Name(execution.last_known_state), seconds, outputs)
    return newest


def last_execution_id(metadata_path: str) -> int:
    """The id of the store's newest execution (0 for a new store): what a run's executions follow."""
    import os
    if not os.path.exists(metadata_path):
        return 0
    return max((execution.id for execution in store_for(metadata_path).get_executions()), default=0)


class ProgressReporter(threading.Thread):
    """Prints a line per component start and end of the run that follows ``since_id``, until stopped."""

    def __init__(self, metadata_path: str, print_line: Callable[[str], None], since_id: int = 0,
                 interval: float = 1.0):
        super().__init__(daemon=True)
        self.metadata_path, self.print_line, self.since_id, self.interval = metadata_path, print_line, since_id, interval
        self._stop_event, self._said = threading.Event(), {}

    def poll(self) -> None:
        import os
        if not os.path.exists(self.metadata_path):
            return
        try:
            executions = node_executions(store_for(self.metadata_path), self.since_id)
        except Exception:  # noqa: BLE001  (the store may be mid-write; the next poll reads it)
            return
        for node, execution in executions.items():
            if self._said.get(node) == execution.state:
                continue
            if execution.state in ("NEW", "RUNNING"):
                self.print_line(f"[pipeline] {node}: running")
            else:
                outputs = f" -> {', '.join(execution.outputs)}" if execution.outputs else ""
                self.print_line(f"[pipeline] {node}: {execution.state} in {execution.seconds:.0f} s{outputs}")
            self._said[node] = execution.state

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.poll()

    def __enter__(self) -> "ProgressReporter":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop_event.set()
        self.join(timeout=10)
        self.poll()  # the last states (the final component ends just before the runner returns)
