"""Move the index behind an alias: copy it into NAME-v1 with the hybrid mapping, NAME becomes an alias.

The copy is made by the reindex job in copy-only mode (no embedding: vectors already in the
documents are copied as they are; the backfill fills the rest), with catch-up of the writes
made meanwhile, then one atomic ``_aliases`` request adds alias NAME to NAME-v1 and removes
the old index (``remove_index``). Writes to the old index are blocked only during the last
catch-up and the swap; reads never stop. When NAME is already an alias, nothing is done.

Parameters: those of 0001 (the new mapping gets the vector field when ``dims`` and
``model_id`` are given).

Downgrade is refused: an alias answers every read and write the index did, and turning it
back into a concrete index of the same name would need a window with no NAME at all.
"""

from __future__ import annotations

from typing import Any

from connector.errors import IrreversibleMigrationError
from connector.jobs.reindex import ReindexConfig, run_reindex

revision = "0002"
down_revision = "0001"


def upgrade(ctx: Any) -> None:
    if ctx.is_alias():
        ctx.log(f"  {ctx.index} is already an alias of {ctx.concrete_index()}: nothing to do")
        return
    dims = ctx.param("dims", None)
    config = ReindexConfig(
        alias=ctx.index,
        copy_only=True,
        vector_field=ctx.param("vector_field", "embedding"),
        fields=ctx.list_param("source_fields", ("title", "text")),
        template=ctx.param("template", None),
        similarity=ctx.param("similarity", "cosine"),
        dims=int(dims) if dims is not None else None,
        model_id=ctx.param("model_id", None),
        show_progress=False,
    )
    summary = run_reindex(ctx.cluster, config)
    ctx.log(f"  {ctx.index} is now an alias of {summary.target_index} ({summary.total.updated} documents copied)")


def downgrade(ctx: Any) -> None:
    raise IrreversibleMigrationError(
        f"0002 is not undone automatically: {ctx.index} stays an alias of {ctx.concrete_index()}, which serves "
        "the application as the index did. Use `eshybrid migrate stamp --index NAME 0001` to move the "
        "recorded revision back if you undo it by hand."
    )
