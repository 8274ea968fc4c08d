"""Pure request bodies of plain cluster APIs that several layers send (search, jobs)."""

from __future__ import annotations

from collections.abc import Sequence

from connector.cluster.client import JsonDict

__all__ = ["mget_body"]


def mget_body(docs: Sequence[tuple[str, str, str | None]]) -> JsonDict:
    """``_mget`` body for ``(index, id, routing)`` triples (routing kept when the hit had one)."""
    out = []
    for index, doc_id, routing in docs:
        doc: JsonDict = {"_index": index, "_id": doc_id}
        if routing is not None:
            doc["routing"] = routing
        out.append(doc)
    return {"docs": out}
