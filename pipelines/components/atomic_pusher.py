"""``AtomicPusher``: TFX's Pusher, with the copy into the serving directory made atomic.

TFX's own Pusher copies the model straight into ``<base>/<version>/`` (``saved_model.pb`` last),
so a reader can list a version directory that is still being written. This executor keeps the
Pusher's contract — blessing check, ``pushed`` / ``pushed_destination`` / ``pushed_version``
properties, the archived copy in the ``PushedModel`` artefact — and pushes with
``tfrs_seqcompress.model_push.push_atomically`` (staging directory, then one rename).
"""
from __future__ import annotations

import os

from tfx import v1 as tfx
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import executor_spec
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from tfrs_seqcompress import model_push


class AtomicPushExecutor(pusher_executor.Executor):
    """Pushes a blessed model to a filesystem destination atomically (other destinations: refused)."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        pushed = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(pushed)
            return
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise NotImplementedError("AtomicPusher pushes to a filesystem destination only.")
        model_path = self.GetModelPath(input_dict)
        version_dir = model_push.push_atomically(model_path, destination.filesystem.base_directory)
        io_utils.copy_dir(model_path, pushed.uri)
        self._MarkPushed(pushed, pushed_destination=version_dir, pushed_version=os.path.basename(version_dir))


def AtomicPusher(**kwargs) -> tfx.components.Pusher:
    """``tfx.components.Pusher`` (same arguments) with ``AtomicPushExecutor``."""
    return tfx.components.Pusher(
        custom_executor_spec=executor_spec.ExecutorClassSpec(AtomicPushExecutor), **kwargs)
