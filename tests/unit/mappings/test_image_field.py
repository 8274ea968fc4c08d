"""The image vector field: a vector field like the text one, marked ``modality: image`` in ``_meta``; Kibana shows
its URL field as an image."""

from __future__ import annotations

import json

import pytest

from connector.cluster.capabilities import Capabilities
from connector.errors import SearchRequestError
from connector.kibana.objects import data_view, image_field_formats
from connector.search.images import ImageSignal, check_query_image, with_image_weight
from connector.search.models import FusionConfig
from mappings.images import build_add_image_vector_field_body, image_vector_field, image_vector_fields

EXISTING = {
    "properties": {"title": {"type": "text"}, "image_url": {"type": "keyword"}},
    "_meta": {"eshybrid": {"vector_fields": {"embedding": {"model_id": "m", "dims": 384}}}},
}


@pytest.mark.parametrize(("flavor", "version", "kind"), [("elasticsearch", "9.5.4", "dense_vector"),
                                                          ("opensearch", "3.6.0", "knn_vector")])  # fmt: skip
def test_add_image_field_body(flavor: str, version: str, kind: str) -> None:
    caps = Capabilities.from_version(flavor, version)  # type: ignore[arg-type]
    field = image_vector_field(dims=32, model_id="tiny-clip")
    body = build_add_image_vector_field_body(
        caps, existing_mapping=EXISTING, vector_field=field, index_settings={"index": {"knn": "true"}}
    )
    assert body["properties"]["image_embedding"]["type"] == kind
    assert set(body["properties"]["eshybrid_meta"]["properties"]) == {"image_embedding"}
    record = body["_meta"]["eshybrid"]["vector_fields"]["image_embedding"]
    assert record["modality"] == "image" and record["image_field"] == "image_url" and record["pooling"] == "clip"
    assert "embedding" in body["_meta"]["eshybrid"]["vector_fields"], "the text field's record is kept"
    assert image_vector_fields(body["_meta"]) == {"image_embedding": "image_url"}
    assert image_vector_fields(EXISTING["_meta"]) == {} and image_vector_fields(None) == {}


def test_kibana_shows_the_image_url_as_an_image() -> None:
    field = image_vector_field(dims=32, model_id="tiny-clip")
    caps = Capabilities.from_version("elasticsearch", "9.5.4")
    body = build_add_image_vector_field_body(caps, existing_mapping=EXISTING, vector_field=field)
    mapping = {"properties": {**EXISTING["properties"], **body["properties"]}, "_meta": body["_meta"]}
    for flavor in ("kibana", "opensearch-dashboards"):
        view = data_view(title="shop", mapping=mapping, flavor=flavor)  # type: ignore[arg-type]
        formats = json.loads(view["attributes"]["fieldFormatMap"])
        assert formats == {"image_url": {"id": "url", "params": {"type": "img", "urlTemplate": None,
                           "labelTemplate": None, "width": 96, "height": 96}}}  # fmt: skip
        assert {"value": "image_embedding"} in json.loads(view["attributes"]["sourceFilters"])
    assert image_field_formats(EXISTING) == {}
    plain = data_view(title="shop", mapping=EXISTING, flavor="kibana")
    assert plain["attributes"]["fieldFormatMap"] == "{}"


class _NoEmbedder:
    def embed_query(self, text: str) -> list[float]:
        raise AssertionError

    def embed_images(self, images: object) -> list[list[float]]:
        raise AssertionError


def test_image_weight_and_query_image() -> None:
    signal = ImageSignal(embedder=_NoEmbedder(), weight=0.4)
    fusion = with_image_weight(FusionConfig(), signal)
    assert fusion.weight("image") == 0.4
    own = FusionConfig(weights={"image": 2.0})
    assert with_image_weight(own, signal).weight("image") == 2.0
    assert check_query_image(b"x") == b"x"
    for bad in (b"", "a path", None):
        with pytest.raises(SearchRequestError) as info:
            check_query_image(bad)
        assert info.value.field == "image"
