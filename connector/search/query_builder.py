"""Request bodies of a hybrid search: pure ``-> dict`` builders (golden-JSON tested).

The lexical leg is always a ``multi_match`` over the configured fields with
per-field boosts: user text never reaches ``query_string`` or any other query
parser. The kNN leg carries the *same* filter clauses inside the kNN search
(a pre-filter: HNSW is searched among the filtered documents, so ``k`` hits
still come back when the filter excludes the nearest vectors).

Elasticsearch and OpenSearch differ in how the kNN leg is written; the
builders ask the :class:`connector.cluster.capabilities.Capabilities`'s ``knn_shape``
and ``supports(form)`` rather than the flavor.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from connector.cluster.bodies import mget_body
from connector.errors import SearchRequestError
from connector.search.models import LEXICAL_FORMS, FusionConfig, LexicalForm

__all__ = [
    "SERVER_FORMS",
    "lexical_query",
    "source_spec",
    "lexical_leg_body",
    "knn_leg_body",
    "es_knn_section",
    "es_knn_query",
    "os_knn_query",
    "msearch_searches",
    "mget_body",
    "es_query_knn_body",
    "es_rrf_retriever_body",
    "es_linear_retriever_body",
    "os_hybrid_body",
    "server_body",
    "form_body",
    "FORM_BODIES",
    "os_pipeline_body",
    "os_pipeline_name",
    "pick_server_form",
    "os_missing_policy",
]

JsonDict = dict[str, Any]
_ES_NORMALIZER = {"min_max": "minmax", "l2": "l2_norm"}
_OS_NORMALIZER = {"min_max": "min_max", "l2": "l2"}


def _field_list(fields: Mapping[str, float]) -> list[str]:
    if not fields:
        raise SearchRequestError("the lexical leg needs at least one field", field="lexical_fields")
    out = []
    for name, boost in fields.items():
        if boost <= 0:
            raise SearchRequestError(f"field boost for {name!r} must be > 0, got {boost}", field="lexical_fields")
        out.append(name if boost == 1 else f"{name}^{boost:g}")
    return out


def lexical_query(
    text: str,
    *,
    fields: Mapping[str, float],
    filters: Sequence[Mapping[str, Any]] = (),
    form: LexicalForm = "best_fields",
    tie_breaker: float | None = None,
) -> JsonDict:
    """``bool{must: <form>(text over fields^boost), filter: filters}``.

    The user's text is only ever the ``query`` of a ``combined_fields`` or ``multi_match``
    clause (analyzed, never parsed: no operators, no field syntax).

    Args:
        text: the user's text.
        fields: field -> boost (1 is written without ``^``).
        filters: filter clauses (see :mod:`connector.search.filters`).
        form: ``combined_fields`` (BM25F: the fields scored as one field; boosts must be >= 1),
            or a ``multi_match`` type: ``best_fields`` | ``most_fields`` | ``cross_fields``.
        tie_breaker: ``multi_match`` tie breaker (``None``: the server default);
            ``combined_fields`` has none.

    Raises:
        SearchRequestError: no field, a boost the form refuses, an unknown form, or a
            tie breaker outside 0..1 (``field`` says which).
    """
    if form not in LEXICAL_FORMS:
        raise SearchRequestError(f"lexical form must be one of {', '.join(LEXICAL_FORMS)}, got {form!r}", field="form")
    if tie_breaker is not None and not 0.0 <= tie_breaker <= 1.0:
        raise SearchRequestError(f"tie_breaker must be within 0..1, got {tie_breaker}", field="tie_breaker")
    clause: JsonDict
    if form == "combined_fields":
        low = [name for name, boost in fields.items() if boost < 1]
        if low:
            raise SearchRequestError(
                f"combined_fields needs field boosts >= 1 (got {', '.join(low)} below 1); scale the boosts up",
                field="lexical_fields",
            )
        clause = {"combined_fields": {"query": text, "fields": _field_list(fields)}}
    else:
        multi_match: JsonDict = {"query": text, "fields": _field_list(fields), "type": form}
        if tie_breaker is not None:
            multi_match["tie_breaker"] = tie_breaker
        clause = {"multi_match": multi_match}
    return {"bool": {"must": [clause], "filter": [dict(f) for f in filters]}}


def source_spec(source: bool | Sequence[str], *, excludes: Sequence[str]) -> bool | JsonDict:
    """The ``_source`` option: ``False``, or includes/excludes (vectors are excluded by default)."""
    if source is False:
        return False
    spec: JsonDict = {"excludes": list(excludes)}
    if source is not True:
        spec["includes"] = list(source)
    return spec


def lexical_leg_body(query: Mapping[str, Any], *, size: int, source: bool | JsonDict = False) -> JsonDict:
    """One search body for the lexical leg (its top ``size`` candidates)."""
    return {"query": dict(query), "size": size, "_source": source, "track_total_hits": False}


def es_knn_section(
    vector: Sequence[float],
    *,
    field: str,
    k: int,
    num_candidates: int,
    filters: Sequence[Mapping[str, Any]] = (),
) -> JsonDict:
    """Elasticsearch's ``knn`` section (also a kNN retriever's body); ``filter`` is a pre-filter."""
    section: JsonDict = {
        "field": field,
        "query_vector": list(vector),
        "k": k,
        "num_candidates": max(num_candidates, k),
    }
    if filters:
        section["filter"] = [dict(f) for f in filters]
    return section


def es_knn_query(
    vector: Sequence[float],
    *,
    field: str,
    num_candidates: int,
    filters: Sequence[Mapping[str, Any]] = (),
) -> JsonDict:
    """Elasticsearch's ``knn`` query clause (8.12+); ``filter`` is a pre-filter.

    It matches the ``num_candidates`` nearest documents of each shard; the search's ``size``
    keeps the best ``k``, the same hits and scores as a top-level ``knn`` section with that
    ``k`` and ``num_candidates``, without the section's extra DFS phase.
    """
    clause: JsonDict = {"field": field, "query_vector": list(vector), "num_candidates": num_candidates}
    if filters:
        clause["filter"] = [dict(f) for f in filters]
    return {"knn": clause}


def os_knn_query(
    vector: Sequence[float],
    *,
    field: str,
    k: int,
    filters: Sequence[Mapping[str, Any]] = (),
) -> JsonDict:
    """OpenSearch's ``knn`` query clause; ``filter`` is efficient (pre-)filtering.

    No ``method_parameters.ef_search``: OpenSearch 2.19 then returns ``ef_search``
    hits instead of ``k`` from the lucene engine (3.x returns ``k``), which would change
    the candidate set of the hybrid query's kNN leg; ``k`` (``max_depth``) is the
    candidate list instead.
    """
    clause: JsonDict = {"vector": list(vector), "k": k}
    if filters:
        clause["filter"] = {"bool": {"filter": [dict(f) for f in filters]}}
    return {"knn": {field: clause}}


def knn_leg_body(
    vector: Sequence[float],
    *,
    knn_shape: str,
    field: str,
    k: int,
    num_candidates: int,
    filters: Sequence[Mapping[str, Any]] = (),
    source: bool | JsonDict = False,
) -> JsonDict:
    """One search body for the kNN leg, written the way the cluster expects.

    ``knn_shape`` is a :data:`~connector.cluster.capabilities.KnnLegShape` (``caps.knn_leg_shape``).
    ``num_candidates`` is Elasticsearch's HNSW candidate list (never below ``k``); OpenSearch
    uses ``k``.
    """
    body: JsonDict
    if knn_shape == "es_knn_query":
        body = {"query": es_knn_query(vector, field=field, num_candidates=max(num_candidates, k), filters=filters)}
    elif knn_shape == "es_knn_section":
        body = {"knn": es_knn_section(vector, field=field, k=k, num_candidates=num_candidates, filters=filters)}
    elif knn_shape == "os_knn_query":
        body = {"query": os_knn_query(vector, field=field, k=k, filters=filters)}
    else:
        raise SearchRequestError(f"unknown kNN shape {knn_shape!r}", field="knn_shape")
    body.update({"size": k, "_source": source, "track_total_hits": False})
    return body


def msearch_searches(bodies: Sequence[Mapping[str, Any]]) -> list[tuple[JsonDict, JsonDict]]:
    """``(header, body)`` pairs for :meth:`Cluster.msearch` (the index is in the path)."""
    return [({}, dict(body)) for body in bodies]


# -- server-side (one request) forms ---------------------------------------------------


def _paged(body: JsonDict, *, size: int, from_: int, source: bool | JsonDict) -> JsonDict:
    body.update({"size": size, "from": from_, "_source": source, "track_total_hits": False})
    return body


def _leg_retrievers(query: Mapping[str, Any], knn: Mapping[str, Any]) -> list[JsonDict]:
    """The lexical (``standard``) and kNN retrievers that an ``rrf`` or ``linear`` retriever fuses."""
    return [{"standard": {"query": dict(query)}}, {"knn": dict(knn)}]


def es_query_knn_body(
    query: Mapping[str, Any],
    knn: Mapping[str, Any],
    *,
    fusion: FusionConfig,
    size: int,
    from_: int,
    source: bool | JsonDict,
) -> JsonDict:
    """Elasticsearch ``query`` + ``knn`` in one request: ``score = w_lex * bm25 + w_vec * knn``."""
    boosted = json.loads(json.dumps(query))
    boosted.setdefault("bool", {})["boost"] = fusion.lexical_weight
    section = dict(knn)
    section["boost"] = fusion.vector_weight
    return _paged({"query": boosted, "knn": section}, size=size, from_=from_, source=source)


def es_rrf_retriever_body(
    query: Mapping[str, Any],
    knn: Mapping[str, Any],
    *,
    fusion: FusionConfig,
    depth: int,
    size: int,
    from_: int,
    source: bool | JsonDict,
) -> JsonDict:
    """Elasticsearch ``rrf`` retriever over a standard (BM25) and a kNN retriever (equal weights)."""
    rrf = {
        "retrievers": _leg_retrievers(query, knn),
        "rank_constant": fusion.rank_constant,
        "rank_window_size": depth,
    }
    return _paged({"retriever": {"rrf": rrf}}, size=size, from_=from_, source=source)


def es_linear_retriever_body(
    query: Mapping[str, Any],
    knn: Mapping[str, Any],
    *,
    fusion: FusionConfig,
    depth: int,
    size: int,
    from_: int,
    source: bool | JsonDict,
) -> JsonDict:
    """Elasticsearch ``linear`` retriever: weighted sum of per-retriever normalized scores."""
    normalizer = _ES_NORMALIZER.get(fusion.normalizer)
    if normalizer is None:
        raise SearchRequestError(f"the linear retriever has no {fusion.normalizer!r} normalizer", field="normalizer")
    weights = (fusion.lexical_weight, fusion.vector_weight)
    linear = {
        "retrievers": [
            {"retriever": retriever, "weight": weight, "normalizer": normalizer}
            for retriever, weight in zip(_leg_retrievers(query, knn), weights)
        ],
        "rank_window_size": depth,
    }
    return _paged({"retriever": {"linear": linear}}, size=size, from_=from_, source=source)


def os_hybrid_body(
    query: Mapping[str, Any],
    knn_query: Mapping[str, Any],
    *,
    depth: int,
    size: int,
    from_: int,
    source: bool | JsonDict,
) -> JsonDict:
    """OpenSearch ``hybrid`` query (fused by a search pipeline); each sub-query keeps ``depth`` per shard."""
    hybrid = {"queries": [dict(query), dict(knn_query)], "pagination_depth": depth}
    return _paged({"query": {"hybrid": hybrid}}, size=size, from_=from_, source=source)


def _os_hybrid_form(
    query: Mapping[str, Any], clause: Mapping[str, Any], *, fusion: FusionConfig, **page: Any
) -> JsonDict:
    return os_hybrid_body(query, clause, **page)  # fused by the search pipeline: no fusion in the body


def _es_query_knn_form(query: Mapping[str, Any], clause: Mapping[str, Any], *, depth: int, **page: Any) -> JsonDict:
    return es_query_knn_body(query, clause, **page)  # the knn section's k is the depth


# The one list of server forms: form -> (the vector clause it takes, the body builder). Each builder takes the
# lexical query, the vector clause and (fusion, depth, size, from_, source).
FORM_BODIES: dict[str, tuple[Literal["os_knn_query", "es_knn_section"], Callable[..., JsonDict]]] = {
    "os_hybrid_query": ("os_knn_query", _os_hybrid_form),
    "es_rrf_retriever": ("es_knn_section", es_rrf_retriever_body),
    "es_linear_retriever": ("es_knn_section", es_linear_retriever_body),
    "es_query_knn": ("es_knn_section", _es_query_knn_form),
}
SERVER_FORMS: tuple[str, ...] = tuple(FORM_BODIES)


def form_body(
    form: str,
    query: Mapping[str, Any],
    clause: Mapping[str, Any],
    *,
    fusion: FusionConfig,
    depth: int,
    size: int,
    from_: int,
    source: bool | JsonDict,
) -> JsonDict:
    """The body of server form ``form`` around a ready vector clause (of the kind :data:`FORM_BODIES` names).

    Raises:
        SearchRequestError: an unknown form (``field="strategy"``).
    """
    if form not in FORM_BODIES:
        raise SearchRequestError(f"unknown server form {form!r}", field="strategy")
    build = FORM_BODIES[form][1]
    return build(query, clause, fusion=fusion, depth=depth, size=size, from_=from_, source=source)


def server_body(
    form: str,
    query: Mapping[str, Any],
    vector: Sequence[float],
    *,
    field: str,
    fusion: FusionConfig,
    depth: int,
    num_candidates: int,
    filters: Sequence[Mapping[str, Any]] = (),
    size: int,
    from_: int,
    source: bool | JsonDict,
) -> JsonDict:
    """The one-request body of server form ``form`` (see :data:`SERVER_FORMS`) for one page.

    Args:
        query: the lexical query (:func:`lexical_query`).
        vector: the query vector.
        field: the vector field.
        depth: candidates per leg (``k``, the rank window, OpenSearch's ``pagination_depth``).
        num_candidates: Elasticsearch's HNSW candidate list.

    Raises:
        SearchRequestError: an unknown form (``field="strategy"``).
    """
    if form not in FORM_BODIES:
        raise SearchRequestError(f"unknown server form {form!r}", field="strategy")
    if FORM_BODIES[form][0] == "os_knn_query":
        clause = os_knn_query(vector, field=field, k=depth, filters=filters)
    else:
        clause = es_knn_section(vector, field=field, k=depth, num_candidates=num_candidates, filters=filters)
    return form_body(form, query, clause, fusion=fusion, depth=depth, size=size, from_=from_, source=source)


def os_pipeline_body(fusion: FusionConfig) -> JsonDict:
    """The search pipeline OpenSearch's hybrid query needs (neural-search plugin).

    Linear: ``normalization-processor`` (min_max | l2) + ``arithmetic_mean`` with the
    weights scaled to sum to 1 (OpenSearch requires it). RRF: ``score-ranker-processor``.
    """
    if fusion.method == "rrf":
        processor: JsonDict = {
            "score-ranker-processor": {"combination": {"technique": "rrf", "rank_constant": fusion.rank_constant}}
        }
    else:
        technique = _OS_NORMALIZER.get(fusion.normalizer)
        if technique is None:
            raise SearchRequestError(
                f"OpenSearch's normalization processor has no {fusion.normalizer!r} here", field="normalizer"
            )
        total = fusion.lexical_weight + fusion.vector_weight
        weights = [fusion.lexical_weight / total, fusion.vector_weight / total]
        processor = {
            "normalization-processor": {
                "normalization": {"technique": technique},
                "combination": {"technique": "arithmetic_mean", "parameters": {"weights": weights}},
            }
        }
    return {
        "description": f"eshybrid hybrid fusion {fusion.describe()} (created by eshybrid; safe to delete)",
        "phase_results_processors": [processor],
    }


def os_pipeline_name(fusion: FusionConfig) -> str:
    """A stable pipeline name derived from the pipeline body (same fusion -> same name)."""
    digest = hashlib.sha256(json.dumps(os_pipeline_body(fusion), sort_keys=True).encode()).hexdigest()
    return f"eshybrid-{fusion.method}-{digest[:12]}"


def os_missing_policy(caps: Any) -> str | None:
    """How this OpenSearch's ``arithmetic_mean`` scores a doc missing from a sub-query.

    Measured on OpenSearch 2.19.1 and 3.6.0 (see
    tests/integration/test_hybrid_search_server.py): the absent sub-query counts as 0
    with its weight (``"zero"``, like client-side linear fusion). Older neural-search
    code skipped absent sub-queries and has no ``pagination_depth``: ``None`` there (and
    for Elasticsearch), so linear fusion stays client-side.
    """
    if not caps.supports("os_hybrid_query"):
        return None
    return "zero"


def pick_server_form(caps: Any, fusion: FusionConfig, *, os_missing_policy: str | None) -> str | None:
    """The one-request form that computes exactly ``fusion`` on this cluster, or ``None``.

    Args:
        caps: the cluster's :class:`~connector.cluster.capabilities.Capabilities`.
        fusion: the configured fusion.
        os_missing_policy: how this OpenSearch's ``arithmetic_mean`` scores a document absent
            from a sub-query (``"zero"`` or ``"ignore"``; ``None`` when not OpenSearch).

    Rules: RRF only with equal weights (``es_rrf_retriever``; OpenSearch's
    ``score-ranker-processor`` 2.19+). Linear ``min_max``/``l2``:
    ``os_hybrid_query`` (2.19+, ``pagination_depth``) when its missing-document rule
    matches, ``es_linear_retriever`` with ``missing="zero"``. Linear ``none`` (raw scores):
    ``es_query_knn``'s boosted sum. ``z_score`` stays client-side.
    """
    if fusion.method == "adaptive":  # weights chosen per query from the legs' evidence: client-side only
        return None
    hybrid_ok = caps.supports("os_hybrid_query")
    if fusion.method == "rrf":
        if fusion.lexical_weight != fusion.vector_weight:
            return None
        if caps.supports("es_rrf_retriever"):
            return "es_rrf_retriever"
        return "os_hybrid_query" if hybrid_ok else None
    if fusion.normalizer in _OS_NORMALIZER and hybrid_ok and fusion.missing == os_missing_policy:
        return "os_hybrid_query"
    if fusion.normalizer in _ES_NORMALIZER and caps.supports("es_linear_retriever") and fusion.missing == "zero":
        return "es_linear_retriever"
    if fusion.normalizer == "none" and caps.supports("es_query_knn") and fusion.missing == "zero":
        return "es_query_knn"
    return None
