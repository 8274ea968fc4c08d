"""An image vector field beside the text vector field (pure builders).

The image vector is a vector field like the text one (same mapping per server, same ``eshybrid_meta``
bookkeeping, same ``_meta.eshybrid.vector_fields.<name>`` record), filled from a URL or path field of each document
by an image backfill through a CLIP-style service. ``_meta`` marks it ``modality: image`` and names the image
field, which is how search, Kibana and the jobs tell it from a text vector.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.cluster.capabilities import Capabilities
from mappings.builders import build_add_vector_field_body
from mappings.fields import VectorField

__all__ = [
    "DEFAULT_IMAGE_VECTOR_FIELD",
    "DEFAULT_IMAGE_URL_FIELD",
    "image_vector_field",
    "build_add_image_vector_field_body",
    "image_vector_fields",
]

DEFAULT_IMAGE_VECTOR_FIELD = "image_embedding"
DEFAULT_IMAGE_URL_FIELD = "image_url"


def image_vector_field(
    name: str = DEFAULT_IMAGE_VECTOR_FIELD,
    *,
    dims: int,
    model_id: str,
    image_field: str = DEFAULT_IMAGE_URL_FIELD,
    similarity: str = "cosine",
    **options: Any,
) -> VectorField:
    """The :class:`VectorField` of an image vector made from ``image_field`` (a URL or a path per document)."""
    return VectorField(
        name,
        dims=dims,
        model_id=model_id,
        similarity=similarity,  # type: ignore[arg-type]  # checked by VectorField
        pooling="clip",
        normalized=True,
        source_fields=(image_field,),
        template="{" + image_field + "}",
        **options,
    )


def build_add_image_vector_field_body(
    caps: Capabilities,
    *,
    existing_mapping: Mapping[str, Any],
    vector_field: VectorField,
    index_settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``PUT /<index>/_mapping`` body adding an image vector field: :func:`build_add_vector_field_body`
    with ``modality: image`` and ``image_field`` recorded in the field's ``_meta``.

    Raises:
        ConfigError: as :func:`build_add_vector_field_body`.
    """
    body = build_add_vector_field_body(
        caps, existing_mapping=existing_mapping, vector_field=vector_field, index_settings=index_settings
    )
    record = body["_meta"]["eshybrid"]["vector_fields"][vector_field.name]
    record["modality"] = "image"
    record["image_field"] = vector_field.source_fields[0]
    return body


def image_vector_fields(index_meta: Mapping[str, Any] | None) -> dict[str, str]:
    """``{image vector field: image URL/path field}`` recorded in an index ``_meta`` (empty when none)."""
    fields = (((index_meta or {}).get("eshybrid") or {}).get("vector_fields")) or {}
    return {
        name: str(meta.get("image_field") or "")
        for name, meta in fields.items()
        if isinstance(meta, Mapping) and meta.get("modality") == "image"
    }
