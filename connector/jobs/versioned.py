"""Pure bodies of a reindex into a versioned index (golden-tested): the new index, the alias swap."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Literal

from connector.cluster.client import JsonDict

__all__ = ["AliasKind", "alias_actions", "target_index_body"]

AliasKind = Literal["alias", "concrete", "new"]

# Index settings a copy keeps; the rest (uuid, creation date, version...) belong to the old index.
_COPIED_SETTINGS = (
    "number_of_shards",
    "number_of_replicas",
    "analysis",
    "similarity",
    "max_result_window",
    "mapping",
    "refresh_interval",
    "knn",
    "max_ngram_diff",
    "max_shingle_diff",
)


def target_index_body(
    *,
    source_mapping: Mapping[str, Any],
    source_settings: Mapping[str, Any],
    add_vector_body: Mapping[str, Any] | None,
    knn_setting: bool,
) -> JsonDict:
    """The ``PUT /<alias>-v<k>`` body: the source's mapping and settings, plus the vector field (pure).

    ``add_vector_body`` is :func:`mappings.build_add_vector_field_body`'s answer (or ``None``
    to copy the mapping as is). Refresh is off while copying; the job restores it.
    """
    mapping: JsonDict = copy.deepcopy(dict(source_mapping))
    if add_vector_body is not None:
        mapping.setdefault("properties", {}).update(copy.deepcopy(dict(add_vector_body["properties"])))
        mapping["_meta"] = copy.deepcopy(dict(add_vector_body["_meta"]))
    index_settings = dict(source_settings.get("index") or {})
    settings: JsonDict = {k: copy.deepcopy(index_settings[k]) for k in _COPIED_SETTINGS if k in index_settings}
    if knn_setting:
        settings["knn"] = True
    settings["refresh_interval"] = "-1"
    return {"settings": {"index": settings}, "mappings": mapping}


def alias_actions(
    *, alias: str, kind: AliasKind, old_indices: Mapping[str, Mapping[str, Any]], new_index: str
) -> list[JsonDict]:
    """The ``POST /_aliases`` actions of the swap, applied atomically (pure).

    ``old_indices``: index -> its current alias definition (filter, routing...), kept on the new index.
    """
    if kind == "concrete":
        return [{"add": {"index": new_index, "alias": alias}}, {"remove_index": {"index": alias}}]
    actions: list[JsonDict] = [{"remove": {"index": name, "alias": alias}} for name in sorted(old_indices)]
    definition: JsonDict = {}
    for props in old_indices.values():
        definition = {
            k: v for k, v in props.items() if k in ("filter", "routing", "index_routing", "search_routing", "is_hidden")
        }
        break
    actions.append({"add": {"index": new_index, "alias": alias, **definition}})
    return actions
