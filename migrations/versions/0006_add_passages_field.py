"""Add a nested passages field (one vector per passage of a long text) beside the whole-document vector.

Parameters: ``passages_field`` (default ``passages``), ``dims``, ``model_id`` and the other vector
parameters of 0001 (``similarity``, ``quantization``, ``engine``, ``source_fields``, ``template``),
and how passages are cut, recorded in ``_meta`` (the job that fills the field writes the cut it used):
``passage_tokens`` (default: the model's window), ``passage_overlap`` (sentences, default 1),
``max_passages`` (default 16), ``passage_prefix`` (a template such as ``{title}``). Next step::

    eshybrid backfill --index NAME --vector-field passages --passages --fields ... --embed-url URL

Downgrade: removes the field from ``_meta`` (and with ``--param clear_values=true`` its values); the
mapping entry stays (mappings cannot drop a field).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mappings.passages import build_add_passages_field_body

revision = "0006"
down_revision = "0005"
requires = ("dims", "model_id")


def upgrade(ctx: Any) -> None:
    name = ctx.param("passages_field", "passages")
    field = replace(ctx.vector_field_spec(), name=name)
    tokens = ctx.param("passage_tokens", None)
    cut = {
        "strategy": "sentence",
        "max_tokens": int(tokens) if tokens not in (None, "") else None,
        "overlap_sentences": ctx.int_param("passage_overlap", 1),
        "max_passages": ctx.int_param("max_passages", 16),
        "prefix_template": ctx.param("passage_prefix", None),
    }
    body = build_add_passages_field_body(
        ctx.caps, existing_mapping=ctx.mapping(), field=field, cut=cut, index_settings=ctx.settings()
    )
    ctx.put_mapping(body)
    ctx.log(f"  added nested {name} ({field.dims} dims, {field.model_id}); fill it with a passages backfill")


def downgrade(ctx: Any) -> None:
    name = ctx.param("passages_field", "passages")
    ours = ctx.eshybrid_meta()
    fields = dict(ours.get("passage_fields") or {})
    fields.pop(name, None)
    ours["passage_fields"] = fields
    ctx.write_eshybrid_meta(ours)
    if ctx.bool_param("clear_values", False):
        ctx.clear_field_values(name)
    ctx.log(f"  {name} removed from _meta (the mapping keeps the field: mappings cannot drop one)")
