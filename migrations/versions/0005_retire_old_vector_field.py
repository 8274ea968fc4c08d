"""Drop the old vector field after a model change: stop using it and clear its values.

A field cannot be removed from an Elasticsearch / OpenSearch mapping. "Drop" here means:
the field leaves ``_meta.eshybrid.vector_fields`` (recorded under ``retired_vector_fields``,
so nothing uses it), and unless ``--param clear_values=false`` its vectors and bookkeeping
are removed from every document (``_update_by_query``; the disk space returns as segments
merge). The mapping entry itself disappears only with a reindex into a new index.

Parameters: ``drop_vector_field`` (the old field, named explicitly: this revision is
destructive, so ``migrate up`` to head stops here until it is given), ``clear_values``
(default true).

Downgrade puts the field back into ``_meta``; cleared vectors must be backfilled again.
"""

from __future__ import annotations

from typing import Any

from connector.errors import MigrationError

revision = "0005"
down_revision = "0004"
requires = ("drop_vector_field",)


def upgrade(ctx: Any) -> None:
    old = ctx.param("drop_vector_field")
    ours = ctx.eshybrid_meta()
    if ours.get("active_vector_field", old) == old:
        raise MigrationError(f"{old!r} is still the active vector field; apply 0004 (switch) first")
    fields = dict(ours.get("vector_fields") or {})
    retired = dict(ours.get("retired_vector_fields") or {})
    if old in fields:
        retired[old] = {**fields.pop(old), "status": "dropped"}
    ours["vector_fields"], ours["retired_vector_fields"] = fields, retired
    ctx.write_eshybrid_meta(ours)
    if ctx.bool_param("clear_values", True):
        ctx.clear_field_values(old)
    ctx.log(
        f"  {old} dropped from _meta"
        + (" and its values cleared" if ctx.bool_param("clear_values", True) else "")
        + "; the mapping keeps the (empty) field until a reindex"
    )


def downgrade(ctx: Any) -> None:
    old = ctx.param("drop_vector_field")
    ours = ctx.eshybrid_meta()
    retired = dict(ours.get("retired_vector_fields") or {})
    fields = dict(ours.get("vector_fields") or {})
    if old in retired:
        fields[old] = {**retired.pop(old), "status": "retired"}
    ours["vector_fields"], ours["retired_vector_fields"] = fields, retired
    ctx.write_eshybrid_meta(ours)
    ctx.log(f"  {old} is back in _meta; backfill it again if its values were cleared")
