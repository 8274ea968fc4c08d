"""The kNN leg over passages: nested kNN where a document scores by its best passage (pure builders).

A passages field (``mappings.passages``) is a ``nested`` array of ``{vector, start, end, text}``. Its kNN
leg is written per cluster (verified on ES 8.19 / 9.5 and OpenSearch 2.19 / 3.6):

* Elasticsearch, ``knn`` query (8.12+): ``nested{path, score_mode: max, query: knn{field: <path>.vector,
  filter}, inner_hits}``; the ``knn`` section (8.11): ``knn{field: <path>.vector, filter, inner_hits}``.
  In both, ``filter`` clauses on *top-level* fields filter the parent documents before the HNSW search
  (a pre-filter, as for a whole-document vector) and the document's score is its best passage's.
* OpenSearch: ``nested{path, score_mode: max, query: knn{<path>.vector: {vector, k, filter}}, inner_hits}``,
  ``k`` counted in documents; 3.x applies the ``filter`` on top-level fields to the parents (a pre-filter),
  2.19 does so for positive clauses only (a ``must_not`` excludes nothing), so the filters are repeated
  on the parents outside the nested query (``bool{must: nested, filter}``).

One hit per document either way, so fusion and pagination do not change. ``inner_hits`` (size 1, the
best passage) carries the passage's offsets, text and score: :func:`best_passage` reads them for the
explanation. Server-side: the passage clause replaces the vector clause in OpenSearch's ``hybrid``
query and Elasticsearch's ``query`` + ``knn`` form; Elasticsearch's retrievers and OpenSearch 2.19's
hybrid query take the nested kNN for ranking but return no ``inner_hits``, so their hits carry no passage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connector.errors import SearchRequestError
from connector.search.models import FusionConfig, PassageMatch
from connector.search.query_builder import FORM_BODIES, form_body

__all__ = [
    "PassageMatch",
    "best_passage",
    "best_passages",
    "passage_inner_hits",
    "passage_knn_clause",
    "passage_knn_leg_body",
    "passage_knn_section",
    "passage_server_body",
]

JsonDict = dict[str, Any]

# The vector's name inside each passage (``mappings.passages.PASSAGE_VECTOR``; search does not import mappings).
_VECTOR = "vector"


def passage_inner_hits(path: str) -> JsonDict:
    """``inner_hits`` returning the best passage's offsets and text (never its vector)."""
    return {
        "name": path,
        "size": 1,
        "_source": {"includes": [f"{path}.start", f"{path}.end", f"{path}.text"]},
    }


def passage_knn_section(
    vector: Sequence[float],
    *,
    path: str,
    k: int,
    num_candidates: int,
    filters: Sequence[Mapping[str, Any]] = (),
    inner_hits: bool = True,
) -> JsonDict:
    """Elasticsearch's ``knn`` section (or kNN retriever body, ``inner_hits=False``) over ``<path>.vector``."""
    section: JsonDict = {
        "field": f"{path}.{_VECTOR}",
        "query_vector": list(vector),
        "k": k,
        "num_candidates": max(num_candidates, k),
    }
    if filters:
        section["filter"] = [dict(f) for f in filters]
    if inner_hits:
        section["inner_hits"] = passage_inner_hits(path)
    return section


def passage_knn_clause(
    vector: Sequence[float],
    *,
    knn_shape: str,
    path: str,
    k: int,
    num_candidates: int,
    filters: Sequence[Mapping[str, Any]] = (),
) -> JsonDict:
    """The ``nested`` query clause of the passage leg (``knn_shape``: ``es_knn_query`` or ``os_knn_query``)."""
    field = f"{path}.{_VECTOR}"
    knn: JsonDict
    if knn_shape == "es_knn_query":
        clause: JsonDict = {"field": field, "query_vector": list(vector), "num_candidates": max(num_candidates, k)}
        if filters:
            clause["filter"] = [dict(f) for f in filters]
        knn = {"knn": clause}
    elif knn_shape == "os_knn_query":
        inner: JsonDict = {"vector": list(vector), "k": k}
        if filters:
            inner["filter"] = {"bool": {"filter": [dict(f) for f in filters]}}
        knn = {"knn": {field: inner}}
    else:
        raise SearchRequestError(f"no nested kNN query clause for shape {knn_shape!r}", field="knn_shape")
    nested: JsonDict = {
        "nested": {"path": path, "score_mode": "max", "query": knn, "inner_hits": passage_inner_hits(path)}
    }
    if knn_shape == "os_knn_query" and filters:
        # OpenSearch 2.19 applies a negative clause (must_not) of the knn filter to the passages, not to their
        # parents, so it excludes nothing; the same filters on the parents outside the nested query keep the answer
        # right everywhere (a post-filter there: fewer than k documents may come back on 2.19; 3.x pre-filters).
        return {"bool": {"must": [nested], "filter": [dict(f) for f in filters]}}
    return nested


def passage_knn_leg_body(
    vector: Sequence[float],
    *,
    knn_shape: str,
    path: str,
    k: int,
    num_candidates: int,
    filters: Sequence[Mapping[str, Any]] = (),
    source: bool | JsonDict = False,
) -> JsonDict:
    """One search body for the passage kNN leg (see :func:`connector.search.query_builder.knn_leg_body`)."""
    body: JsonDict
    if knn_shape == "es_knn_section":
        body = {"knn": passage_knn_section(vector, path=path, k=k, num_candidates=num_candidates, filters=filters)}
    else:
        body = {
            "query": passage_knn_clause(
                vector, knn_shape=knn_shape, path=path, k=k, num_candidates=num_candidates, filters=filters
            )
        }
    body.update({"size": k, "_source": source, "track_total_hits": False})
    return body


def passage_server_body(
    form: str,
    query: Mapping[str, Any],
    vector: Sequence[float],
    *,
    path: str,
    fusion: FusionConfig,
    depth: int,
    num_candidates: int,
    filters: Sequence[Mapping[str, Any]] = (),
    size: int,
    from_: int,
    source: bool | JsonDict,
) -> JsonDict:
    """:func:`connector.search.query_builder.server_body` with the passage leg as its vector leg.

    Raises:
        SearchRequestError: an unknown form (``field="strategy"``).
    """
    if form not in FORM_BODIES:
        raise SearchRequestError(f"unknown server form {form!r}", field="strategy")
    options: dict[str, Any] = {"path": path, "k": depth, "num_candidates": num_candidates, "filters": filters}
    if FORM_BODIES[form][0] == "os_knn_query":
        clause = passage_knn_clause(vector, knn_shape="os_knn_query", **options)
    else:  # a kNN retriever has no inner_hits: the ranking is by best passage, the hits name no passage
        clause = passage_knn_section(vector, inner_hits=form == "es_query_knn", **options)
    return form_body(form, query, clause, fusion=fusion, depth=depth, size=size, from_=from_, source=source)


def best_passage(hit: Mapping[str, Any], path: str) -> PassageMatch | None:
    """The best passage of a hit, from its ``inner_hits`` (``None`` when the hit has none)."""
    inner = ((hit.get("inner_hits") or {}).get(path) or {}).get("hits") or {}
    hits = inner.get("hits") or []
    if not hits:
        return None
    top = hits[0]
    source = top.get("_source") or {}
    # Elasticsearch returns the nested document's own fields; OpenSearch may keep the path as the outer key.
    if path in source and isinstance(source[path], Mapping):
        source = source[path]
    nested = top.get("_nested") or {}
    score = top.get("_score")
    return PassageMatch(
        start=source.get("start"),
        end=source.get("end"),
        text=source.get("text"),
        score=float(score) if score is not None else None,
        offset=nested.get("offset"),
    )


def best_passages(response: Mapping[str, Any], path: str) -> dict[str, PassageMatch]:
    """Document id -> its best passage, for every hit of a passage kNN leg's response."""
    out: dict[str, PassageMatch] = {}
    for hit in (response.get("hits") or {}).get("hits") or []:
        match = best_passage(hit, path)
        if match is not None:
            out[str(hit["_id"])] = match
    return out
