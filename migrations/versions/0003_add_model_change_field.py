"""Prepare a model change: add a second vector field for the new model beside the active one.

Parameters: ``new_vector_field``, ``new_dims``, ``new_model_id`` (and optionally
``new_similarity``, ``source_fields``, ``template``). The new field is recorded in ``_meta``
with ``status: building``; search keeps using ``active_vector_field`` (the old field) until
0004 switches. Next step: fill it with the new model's service::

    eshybrid backfill --index NAME --vector-field NEW --fields ... --embed-url NEW_SERVICE

Downgrade: removes the new field from ``_meta`` (and with ``--param clear_values=true`` its
values); the mapping entry stays (mappings cannot drop a field).
"""

from __future__ import annotations

from typing import Any

from connector.errors import ConfigError
from mappings import build_add_vector_field_body

revision = "0003"
down_revision = "0002"
requires = ("new_vector_field", "new_dims", "new_model_id")


def upgrade(ctx: Any) -> None:
    old = ctx.param("vector_field", "embedding")
    vector = ctx.vector_field_spec(prefix="new_")
    if vector.name == old:
        raise ConfigError(f"new_vector_field must differ from the active field {old!r}", field="new_vector_field")
    body = build_add_vector_field_body(
        ctx.caps, existing_mapping=ctx.mapping(), vector_field=vector, index_settings=ctx.settings()
    )
    ours = dict(body["_meta"]["eshybrid"])
    ours.setdefault("active_vector_field", old)
    ours["vector_fields"][vector.name]["status"] = "building"
    body["_meta"]["eshybrid"] = ours
    ctx.put_mapping(body)
    ctx.log(f"  added {vector.name} ({vector.dims} dims, {vector.model_id}); backfill it, then migrate to 0004")


def downgrade(ctx: Any) -> None:
    new = ctx.param("new_vector_field")
    ours = ctx.eshybrid_meta()
    if ours.get("active_vector_field") == new:
        raise ConfigError(f"{new!r} is the active field; downgrade 0004 first", field="new_vector_field")
    fields = dict(ours.get("vector_fields") or {})
    fields.pop(new, None)
    ours["vector_fields"] = fields
    ctx.write_eshybrid_meta(ours)
    if ctx.bool_param("clear_values", False):
        ctx.clear_field_values(new)
    ctx.log(f"  {new} removed from _meta")
