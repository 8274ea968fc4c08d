"""Switch search to the new model's vector field (``_meta.eshybrid.active_vector_field``).

Refuses while documents that have a vector in the old field lack one in the new field (the
backfill of 0003's field is not finished), unless ``--param force=true``. The old field
keeps its values, so the switch can be undone instantly (downgrade switches back).

Parameters: ``new_vector_field``, ``vector_field`` (the old one, default ``embedding``), ``force``.
"""

from __future__ import annotations

from typing import Any

from connector.errors import MigrationError

revision = "0004"
down_revision = "0003"
requires = ("new_vector_field",)


def _set_active(ctx: Any, active: str, retired: str) -> None:
    ours = ctx.eshybrid_meta()
    fields = {name: dict(spec) for name, spec in (ours.get("vector_fields") or {}).items()}
    if active not in fields:
        raise MigrationError(f"{active!r} is not a vector field of {ctx.index} (_meta); apply 0003 first")
    fields[active]["status"] = "active"
    if retired in fields:
        fields[retired]["status"] = "retired"
    ours["vector_fields"] = fields
    ours["active_vector_field"] = active
    ctx.write_eshybrid_meta(ours)


def upgrade(ctx: Any) -> None:
    old, new = ctx.param("vector_field", "embedding"), ctx.param("new_vector_field")
    ctx.cluster.refresh(ctx.index)
    lacking = ctx.count(
        {
            "bool": {
                "filter": [{"exists": {"field": f"eshybrid_meta.{old}.text_hash"}}],
                "must_not": [{"exists": {"field": f"eshybrid_meta.{new}.text_hash"}}],
            }
        }
    )
    if lacking and not ctx.bool_param("force", False):
        raise MigrationError(
            f"{lacking} documents have a vector in {old!r} but none in {new!r}: run `eshybrid backfill --index "
            f"{ctx.index} --vector-field {new} ...` first (or pass --param force=true)",
            lacking=lacking,
        )
    _set_active(ctx, new, old)
    ctx.log(f"  search now uses {new} (was {old})")


def downgrade(ctx: Any) -> None:
    old, new = ctx.param("vector_field", "embedding"), ctx.param("new_vector_field")
    _set_active(ctx, old, new)
    ctx.log(f"  search uses {old} again")
