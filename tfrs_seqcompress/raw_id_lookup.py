"""Raw IDs inside the exported model: a request carries the log's own strings, the graph maps them.

A log whose columns held raw values (``data.raw_ids``: ``"u_8f3a"``, ``"electronics"``) trains on
integer IDs; the exported model keeps the vocabularies as lookup tables, so its ``serving_default``
parses those columns as strings (target and history alike: ``item_id`` and ``hist_item_id``) and
maps them in-graph. A value the vocabulary does not hold (a new item, the empty string of a padded
history position) maps to the unknown ID (``raw_ids.unknown_id``: 0 for an ID column, the first ID
beyond the vocabulary for an event feature, which the models embed in their unknown row).

Example::

    lookup = RawIdLookup({"item_id": ["itemA", "itemB"]}, directory="/tmp/vocabularies")
    spec = lookup.parse_spec(features.example_parse_spec(schema, with_label=False))  # item_id: tf.string
    ids = lookup(tf.io.parse_example(serialized, spec))        # item_id: int64, "itemB" -> 2
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfrs_seqcompress import features as F
from tfrs_seqcompress.data import raw_ids


class RawIdLookup(tf.Module):
    """One ``tf.lookup.StaticHashTable`` per raw column (value -> its ID, ``raw_ids.first_id``
    onwards; unknown -> ``raw_ids.unknown_id``), read from a vocabulary file per column that is
    saved as an asset of the model holding the lookup as an attribute (a table of millions of
    values stays out of the graph).

    Args:
      vocabularies: column -> its raw values (``raw_ids.build_vocabularies``). An empty list: the
        column is parsed as strings but not looked up (every value is unknown), for a column no
        model reads, such as ``user_id``.
      directory: where the vocabulary files are written (it must outlive the model's export).
    """

    def __init__(self, vocabularies: Mapping[str, Sequence[str]], directory: str):
        super().__init__(name="raw_id_lookup")
        self.columns = tuple(sorted(vocabularies))
        self.unknown = {name: raw_ids.unknown_id(name, vocabularies[name]) for name in self.columns}
        self.first = {name: raw_ids.first_id(name) for name in self.columns}
        self.tables = {}
        for name in self.columns:
            if vocabularies[name]:
                path = os.path.join(directory, f"{name}.vocabulary.txt")
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write("\n".join(vocabularies[name]) + "\n")
                self.tables[name] = tf.lookup.StaticHashTable(tf.lookup.TextFileInitializer(
                    path, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64,
                    tf.lookup.TextFileIndex.LINE_NUMBER), default_value=-1)

    def parse_spec(self, spec: Mapping[str, tf.io.FixedLenFeature]) -> dict:
        """``spec`` with the raw columns' features (target and ``hist_``) parsed as strings."""
        return {name: tf.io.FixedLenFeature(feature.shape, tf.string) if F.field_name(name) in self.columns else feature
                for name, feature in spec.items()}

    def _ids(self, column: str, values: tf.Tensor) -> tf.Tensor:
        unknown = tf.fill(tf.shape(values), tf.constant(self.unknown[column], tf.int64))
        if column not in self.tables:
            return unknown
        line = self.tables[column].lookup(values)
        return tf.where(line >= 0, line + self.first[column], unknown)

    def __call__(self, features: Mapping[str, tf.Tensor]) -> dict:
        """Parsed raw-ID features -> the model's integer features (other features unchanged)."""
        return {name: self._ids(F.field_name(name), value) if F.field_name(name) in self.columns else value
                for name, value in features.items()}


def to_raw_id_examples(serialized: Sequence[bytes], vocabularies: Mapping[str, Sequence[str]]) -> list[bytes]:
    """Integer-ID examples rewritten with the raw values their IDs stand for (ID 0 becomes ""): the
    request a client of a raw-ID model sends (also the export's warmup requests)."""
    rewritten = []
    for record in serialized:
        example = tf.train.Example.FromString(record)
        for name, feature in example.features.feature.items():
            if F.field_name(name) in vocabularies:
                values = raw_ids.decode_ids(F.field_name(name), np.array(feature.int64_list.value), vocabularies)
                feature.Clear()
                feature.bytes_list.value.extend(str(value).encode() for value in values)
        rewritten.append(example.SerializeToString())
    return rewritten
