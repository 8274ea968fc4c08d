"""Add the vector field, its bookkeeping fields and _meta to an existing BM25 index, in place.

Parameters: ``vector_field`` (default ``embedding``), ``dims``, ``model_id``, ``similarity``
(default cosine), ``source_fields`` / ``template`` (what ``_meta`` records as the embedded
text), ``quantization``, ``engine``. Existing fields are untouched; sending it again is harmless.

OpenSearch: an index created without ``index.knn: true`` (a final setting) cannot take an ANN
vector field in place; the revision fails. Then ``eshybrid migrate stamp --index NAME 0001`` and
``migrate up --to 0002`` with the same parameters: 0002's copy into NAME-v1 has ``index.knn``
and the vector field.

Downgrade: a field cannot be removed from a mapping. It is removed from ``_meta`` (search
stops using it) and, with ``--param clear_values=true``, its values and bookkeeping are
removed from every document; the mapping entry stays until the next reindex.
"""

from __future__ import annotations

from typing import Any

from mappings import build_add_vector_field_body

revision = "0001"
down_revision = None
requires = ("dims", "model_id")


def upgrade(ctx: Any) -> None:
    vector = ctx.vector_field_spec()
    body = build_add_vector_field_body(
        ctx.caps, existing_mapping=ctx.mapping(), vector_field=vector, index_settings=ctx.settings()
    )
    ctx.put_mapping(body)
    ctx.log(f"  added {vector.name} ({vector.dims} dims, {vector.model_id}) to {ctx.concrete_index()}")


def downgrade(ctx: Any) -> None:
    name = ctx.param("vector_field", "embedding")
    ours = ctx.eshybrid_meta()
    fields = dict(ours.get("vector_fields") or {})
    fields.pop(name, None)
    ours["vector_fields"] = fields
    if ours.get("active_vector_field") == name:
        ours.pop("active_vector_field")
    ctx.write_eshybrid_meta(ours)
    if ctx.bool_param("clear_values", False):
        ctx.clear_field_values(name)
    ctx.log(f"  {name} removed from _meta (the mapping keeps the field: mappings cannot drop one)")
