"""The data contract's schema survives the round trip through a TFMD Schema artefact (no TFX import)."""
import dataclasses

import pytest
from tensorflow_metadata.proto.v0 import schema_pb2

from pipelines.components import data_schema_io
from tests import helpers
from tfrs_seqcompress import features as F


@pytest.mark.parametrize("token_dim,token_version", [(0, ""), (8, "3f2a9c01d4e5b6a7")])
def test_round_trip(token_dim, token_version, tmp_path):
    schema = dataclasses.replace(helpers.tiny_schema(), token_dim=token_dim, token_version=token_version)
    data_schema_io.write_schema(schema, str(tmp_path))
    assert data_schema_io.read_schema(str(tmp_path)) == schema


def test_token_feature_is_float_with_l_by_d_shape():
    proto = data_schema_io.to_tfmd_schema(dataclasses.replace(helpers.tiny_schema(history_length=5), token_dim=3))
    token = next(feature for feature in proto.feature if feature.name == F.HISTORY_TOKEN)
    assert token.type == schema_pb2.FLOAT and [dim.size for dim in token.shape.dim] == [5, 3]


def test_schema_without_contract_features_is_refused():
    with pytest.raises(ValueError, match="lacks contract feature\\(s\\) \\['user_id'"):
        data_schema_io.from_tfmd_schema(schema_pb2.Schema())
