"""Raw IDs inside the exported model: a request carries the log's own strings, the graph maps them.

A log whose columns held raw values (``data.raw_ids``: ``"u_8f3a"``, ``"electronics"``) trains on
integer IDs; the exported model keeps the vocabularies as lookup tables, so its ``serving_default``
parses those columns as strings (target and history alike: ``item_id`` and ``hist_item_id``) and
maps them in-graph. A value the vocabulary does not hold (a new item, the empty string of a padded
history position) maps to 0, the unknown ID.

Example::

    lookup = RawIdLookup({"item_id": ["itemA", "itemB"]})
    spec = lookup.parse_spec(features.example_parse_spec(schema, with_label=False))  # item_id: tf.string
    ids = lookup(tf.io.parse_example(serialized, spec))        # item_id: int64, "itemB" -> 2
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import raw_ids


def _column(name: str) -> str:
    """The log column a feature holds: ``hist_item_id`` -> ``item_id``."""
    return name[len(F.HISTORY_PREFIX):] if name.startswith(F.HISTORY_PREFIX) else name


class RawIdLookup(tf.Module):
    """One ``tf.lookup.StaticHashTable`` per raw column (value -> its ID, unknown -> 0), saved with
    the model that holds it as an attribute.

    Args:
      vocabularies: column -> its raw values (``raw_ids.build_vocabularies``): ID i + 1 is value i.
    """

    def __init__(self, vocabularies: Mapping[str, Sequence[str]]):
        super().__init__(name="raw_id_lookup")
        self.columns = tuple(sorted(vocabularies))
        self.tables = {name: tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(vocabularies[name]), tf.string),
            tf.range(1, len(vocabularies[name]) + 1, dtype=tf.int64)), default_value=0) for name in self.columns}

    def parse_spec(self, spec: Mapping[str, tf.io.FixedLenFeature]) -> dict:
        """``spec`` with the raw columns' features (target and ``hist_``) parsed as strings."""
        return {name: tf.io.FixedLenFeature(feature.shape, tf.string) if _column(name) in self.tables else feature
                for name, feature in spec.items()}

    def __call__(self, features: Mapping[str, tf.Tensor]) -> dict:
        """Parsed raw-ID features -> the model's integer features (other features unchanged)."""
        return {name: self.tables[_column(name)].lookup(value) if _column(name) in self.tables else value
                for name, value in features.items()}


def to_raw_id_examples(serialized: Sequence[bytes], vocabularies: Mapping[str, Sequence[str]]) -> list[bytes]:
    """Integer-ID examples rewritten with the raw values their IDs stand for (ID 0 becomes ""): the
    request a client of a raw-ID model sends (also the export's warmup requests)."""
    rewritten = []
    for record in serialized:
        example = tf.train.Example.FromString(record)
        for name, feature in example.features.feature.items():
            if _column(name) in vocabularies:
                values = raw_ids.decode_ids(_column(name), np.array(feature.int64_list.value), vocabularies)
                feature.Clear()
                feature.bytes_list.value.extend(str(value).encode() for value in values)
        rewritten.append(example.SerializeToString())
    return rewritten
