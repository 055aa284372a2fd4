"""The data contract's ``DataSchema`` as a TFMD ``Schema`` proto: TFX's own way to carry a schema.

``HistoryExampleGen`` writes it into a standard ``Schema`` artefact; the Trainer reads it back
(``fn_args.schema_path``). The conversion is lossless: every history-example feature with its
shape and ``int_domain`` (so vocabulary sizes are ``max + 1``); L is the history features' shape;
IAT's ``hist_token`` is a FLOAT feature of shape ``[L, token_dim]``; ``token_version`` an INT
scalar whose domain is the one ``token_version_id`` allowed, the version string in its annotation.
"""
from __future__ import annotations

import os

import tensorflow as tf
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from tfrs_seqcompress import features as F

SCHEMA_FILE = "schema.pbtxt"
VERSION_TAG = "token_version="


def to_tfmd_schema(schema: F.DataSchema) -> schema_pb2.Schema:
    proto = schema_pb2.Schema()
    for name, shape in F.example_feature_shapes(schema).items():
        feature = proto.feature.add(name=name, type=schema_pb2.FLOAT if name == F.HISTORY_TOKEN else schema_pb2.INT)
        feature.shape.dim.extend([schema_pb2.FixedShape.Dim(size=size) for size in shape])
        if name == F.HISTORY_TOKEN:
            continue
        if name == F.TOKEN_VERSION:
            feature.int_domain.min = feature.int_domain.max = F.token_version_id(schema.token_version)
            feature.annotation.tag.append(VERSION_TAG + schema.token_version)
            continue
        size = 2 if name == F.HISTORY_MASK else schema.vocabulary_size(F.field_name(name))
        if size is not None:
            feature.int_domain.min, feature.int_domain.max = 0, size - 1
    return proto


def from_tfmd_schema(proto: schema_pb2.Schema) -> F.DataSchema:
    """Raises ValueError when a contract feature is missing from the proto."""
    by_name = {feature.name: feature for feature in proto.feature}
    required = F.TARGET_FIELDS + (F.LABEL, F.HISTORY_MASK)
    missing = [name for name in required if name not in by_name]
    if missing:
        raise ValueError(f"Schema lacks contract feature(s) {missing}; is it a history-example schema?")
    size = lambda name: int(by_name[name].int_domain.max) + 1  # noqa: E731
    base_history = {F.history_name(field) for field in F.HISTORY_BASE_FIELDS} | {F.HISTORY_MASK, F.HISTORY_TOKEN}
    version_tags = [tag[len(VERSION_TAG):] for tag in by_name[F.TOKEN_VERSION].annotation.tag
                    if tag.startswith(VERSION_TAG)] if F.TOKEN_VERSION in by_name else []
    event_features = {F.field_name(name): size(name) for name in by_name
                      if name.startswith(F.HISTORY_PREFIX) and name not in base_history}
    context = tuple(name for name in by_name if name in event_features)
    return F.DataSchema(num_users=size(F.USER_ID), num_items=size(F.ITEM_ID), num_categories=size(F.CATEGORY),
                        history_length=int(by_name[F.HISTORY_MASK].shape.dim[0].size),
                        event_features=event_features, context_features=context,
                        token_dim=int(by_name[F.HISTORY_TOKEN].shape.dim[1].size) if F.HISTORY_TOKEN in by_name else 0,
                        token_version=version_tags[0] if version_tags else "")


def write_schema(schema: F.DataSchema, directory: str) -> str:
    path = os.path.join(directory, SCHEMA_FILE)
    tf.io.gfile.makedirs(directory)
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write(text_format.MessageToString(to_tfmd_schema(schema)))
    return path


def read_schema(path: str) -> F.DataSchema:
    """Reads a ``schema.pbtxt`` file, or the one inside a directory."""
    if tf.io.gfile.isdir(path):
        path = os.path.join(path, SCHEMA_FILE)
    with tf.io.gfile.GFile(path) as handle:
        return from_tfmd_schema(text_format.Parse(handle.read(), schema_pb2.Schema()))
