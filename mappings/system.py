"""Bodies of eshybrid's own system indices (pure builders, golden-tested).

- :func:`jobs_index_body`: ``eshybrid-jobs`` (job documents and slice checkpoints);
- :func:`dead_letter_index_body`: ``eshybrid-dead-letters``;
- :func:`migrations_index_body`: ``eshybrid-migrations`` (migration locks and history);
- :func:`search_log_index_body` / :func:`search_log_mapping`: ``eshybrid-search-log``;
- :func:`profiles_index_body`: ``eshybrid-profiles-<index>`` (shopper profile vectors, issue 18);
- :func:`ubi_queries_index_body` / :func:`ubi_events_index_body`: ``ubi_queries`` / ``ubi_events``
  (what shoppers searched and did, in the User Behavior Insights 1.x shape, issue 25).
- :func:`judgments_index_body`: ``eshybrid-judgments`` (grades people gave in the relevance workbench, issue 32).

Each is ``dynamic: false`` with ``_meta.eshybrid.kind`` naming it, one shard and a
replica only when a second node exists: small bookkeeping indices that Kibana and
OpenSearch Dashboards read like any other. The modules that write these indices
(:mod:`connector.jobs.store`, :mod:`migrations.state`, :mod:`connector.search.log`)
create them with these bodies; nothing here talks to a cluster.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = [
    "JOB_COUNT_FIELDS",
    "SEARCH_LOG_LATENCY_STAGES",
    "SEARCH_LOG_MAPPING_VERSION",
    "dead_letter_index_body",
    "JUDGMENT_FIELDS",
    "judgments_index_body",
    "jobs_index_body",
    "migrations_index_body",
    "PROFILE_FIELDS",
    "profiles_index_body",
    "profiles_index_name",
    "search_log_index_body",
    "search_log_mapping",
    "UBI_EVENTS_INDEX",
    "UBI_QUERIES_INDEX",
    "ubi_events_index_body",
    "ubi_queries_index_body",
]

JsonDict = dict[str, Any]

# The counts a job records (``connector.jobs.store.JobCounts`` has one attribute per name).
JOB_COUNT_FIELDS: Final = (
    "read",
    "updated",
    "skipped",
    "dead_lettered",
    "vanished",
    "embedded",
    "reused",
    "conflicts",
)

# Stages a hybrid search times, in the order they run (``latency_ms.<stage>`` of the search log).
SEARCH_LOG_LATENCY_STAGES: Final = ("correct", "embed", "search", "fuse", "fetch", "rerank", "total")
SEARCH_LOG_MAPPING_VERSION: Final = 3  # 2: query_id, vector_fallback(_reason), round_trips; 3: fusion weights

_SMALL_INDEX_SETTINGS: Final = {"index": {"number_of_shards": 1, "auto_expand_replicas": "0-1"}}


def _keyword() -> JsonDict:
    return {"type": "keyword"}


def _date() -> JsonDict:
    return {"type": "date"}


def _long() -> JsonDict:
    return {"type": "long"}


def _small_index_settings() -> JsonDict:
    return {"index": dict(_SMALL_INDEX_SETTINGS["index"])}


def _small_index_body(kind: str, properties: JsonDict) -> JsonDict:
    """One shard (a replica when there is a second node), only the listed fields indexed."""
    return {
        "settings": _small_index_settings(),
        "mappings": {"dynamic": False, "_meta": {"eshybrid": {"kind": kind}}, "properties": properties},
    }


def jobs_index_body() -> JsonDict:
    """Settings and mapping of the jobs index: ``type: job`` documents and ``type: checkpoint`` documents."""

    def counts() -> JsonDict:
        return {"properties": {name: _long() for name in JOB_COUNT_FIELDS}}

    not_searched = {"type": "keyword", "index": False, "doc_values": False}
    return _small_index_body(
        "jobs",
        {
            "type": _keyword(),
            "job_id": _keyword(),
            "kind": _keyword(),
            "index": _keyword(),
            "target_index": _keyword(),
            "alias": _keyword(),
            "vector_field": _keyword(),
            "model_id": _keyword(),
            "status": _keyword(),
            "phase": _keyword(),
            "owner": _keyword(),
            "slice": _keyword(),
            "pass": _keyword(),
            "slice_id": {"type": "integer"},
            "max_slices": {"type": "integer"},
            "done": {"type": "boolean"},
            "cursor": dict(not_searched),
            "pit_id": dict(not_searched),
            "commit_seq": _long(),
            "shard": {"type": "integer"},
            "after_seq_no": _long(),
            "upto_seq_no": _long(),
            "counts": counts(),
            "catch_up_counts": counts(),
            "total_counts": counts(),
            "live_counts": counts(),
            "docs_total": _long(),
            "rate_docs_per_s": {"type": "float"},
            "elapsed_s": {"type": "float"},
            "reconciles": {"type": "boolean"},
            "errors": {"properties": {"at": _date(), "message": {"type": "text"}}},
            "params": {"type": "object", "enabled": False},
            "state": {"type": "object", "enabled": False},
            "started_at": _date(),
            "finished_at": _date(),
            "updated_at": _date(),
        },
    )


def dead_letter_index_body() -> JsonDict:
    """Settings and mapping of the dead-letter index: one document per document a job could not write."""
    return _small_index_body(
        "dead_letters",
        {
            "job_id": _keyword(),
            "index": _keyword(),
            "doc_id": _keyword(),
            "vector_field": _keyword(),
            "reason_code": _keyword(),
            "reason": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 512}}},
            "text_excerpt": {"type": "text"},
            "at": _date(),
        },
    )


def migrations_index_body() -> JsonDict:
    """Settings and mapping of the migrations index: ``lock:<index>`` and ``state:<index>`` (history) documents."""
    return _small_index_body(
        "migrations",
        {
            "type": _keyword(),
            "index": _keyword(),
            "current": _keyword(),
            "owner": _keyword(),
            "acquired_at": _date(),
            "updated_at": _date(),
            "expires_at_ms": _long(),
            "history": {
                "properties": {
                    "revision": _keyword(),
                    "direction": _keyword(),
                    "owner": _keyword(),
                    "at": _date(),
                    "params": {"type": "object", "enabled": False},
                }
            },
        },
    )


def search_log_mapping() -> JsonDict:
    """The mapping of the search log index (the same JSON on Elasticsearch and OpenSearch).

    ``dynamic: false`` keeps a field added by a later version in ``_source`` without
    mapping it, so an old index never rejects a new record.
    """
    latency = {stage: {"type": "float"} for stage in SEARCH_LOG_LATENCY_STAGES}
    return {
        "dynamic": False,
        "_meta": {
            "eshybrid": {
                "kind": "search_log",
                "mapping_version": SEARCH_LOG_MAPPING_VERSION,
                "fields": {
                    "timestamp": "when the search started (UTC)",
                    "query": "the user's text; absent when queries are hashed",
                    "query_sha256": "sha256 of the user's text",
                    "latency_ms": "milliseconds per stage: correct, embed, search, fuse, fetch, rerank, total",
                    "rerank_fallback": "true when the reranker failed and the fused order was kept",
                    "personal_weight": "the personal signal's effective weight (personalized searches only)",
                    "user_sha256": "sha256 of the shopper id of a personalized search",
                    "corrected_query": "the spelling-corrected text searched; absent when unchanged or hashed",
                    "did_you_mean": "the suggestion offered to the user; absent when none or hashed",
                    "corrected_terms": "the words the correction changed, as original->corrected",
                    "rewrite_fallback": "true when the query rewriter failed and the original text was searched",
                    "query_id": "the search's UUID, as its response gave it (the key shoppers' events join on)",
                    "vector_fallback": "true when a helper (embedder, profile read) failed: lexical result",
                    "vector_fallback_reason": "which helper failed, and why",
                    "round_trips": "the sequential cluster round trips of the search",
                    "lexical_weight": "adaptive fusion: the lexical leg's share it gave this query",
                    "vector_weight": "adaptive fusion: the vector leg's share",
                    "coverage": "adaptive fusion: share of the query's content words some document contains",
                },
            }
        },
        "properties": {
            "timestamp": _date(),
            "query": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 512}}},
            "query_sha256": _keyword(),
            "index": _keyword(),
            "mode": _keyword(),
            "strategy": _keyword(),
            "fusion": _keyword(),
            "latency_ms": {"properties": latency},
            "hit_count": {"type": "integer"},
            "total_hits": _long(),
            "rerank_fallback": {"type": "boolean"},
            "personal_weight": {"type": "float"},
            "user_sha256": _keyword(),
            "corrected_query": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 512}}},
            "did_you_mean": {"type": "keyword", "ignore_above": 512},
            "corrected_terms": _keyword(),
            "rewrite_fallback": {"type": "boolean"},
            "query_id": _keyword(),
            "vector_fallback": {"type": "boolean"},
            "vector_fallback_reason": {"type": "keyword", "ignore_above": 1024},
            "round_trips": {"type": "integer"},
            "lexical_weight": {"type": "float"},
            "vector_weight": {"type": "float"},
            "coverage": {"type": "float"},
        },
    }


def search_log_index_body() -> JsonDict:
    """``PUT <index>`` body for the search log: one shard, no replica needed on a single node."""
    return {"settings": _small_index_settings(), "mappings": search_log_mapping()}


# The fields of one shopper profile document (``connector.jobs.profiles`` writes them,
# ``connector.search.personal`` reads them).
PROFILE_FIELDS: Final = (
    "user_id",
    "vector",
    "model_id",
    "index",
    "vector_field",
    "updated_at",
    "as_of",
    "event_count",
    "weight_sum",
    "concentration",
    "history",
    "affinity_fields",
    "affinities",
)


def profiles_index_body() -> JsonDict:
    """Settings and mapping of a profiles index: one document per user (or session), ``_id`` = the user id.

    ``vector`` is the time-decayed, kind-weighted mean of the product vectors the user interacted
    with (not unit length: its norm is ``concentration``, 1 when every product points the same
    way); it stays in ``_source`` only (read by id, never searched), as does ``history`` (the raw
    events, stored only when asked). ``as_of`` is the time the decay is measured from (the newest
    event), ``weight_sum`` the decayed weight behind the mean, so new events update it.
    ``affinities`` (field -> value -> decayed weight, issue 26) is read with the profile, never searched;
    ``affinity_fields`` names the product fields they were made from.
    """
    not_indexed = {"type": "object", "enabled": False}
    return _small_index_body(
        "profiles",
        {
            "user_id": _keyword(),
            "model_id": _keyword(),
            "index": _keyword(),
            "vector_field": _keyword(),
            "updated_at": _date(),
            "as_of": _date(),
            "event_count": _long(),
            "weight_sum": {"type": "double"},
            "concentration": {"type": "float"},
            "history": dict(not_indexed),
            "affinity_fields": _keyword(),
            "affinities": dict(not_indexed),
        },
    )


def profiles_index_name(index: str) -> str:
    """The default profiles index of a product index (or alias): ``eshybrid-profiles-<index>``."""
    return f"eshybrid-profiles-{index}"


# -- User Behavior Insights (UBI 1.x) ----------------------------------------------------------
# The index names OpenSearch's UBI plugin uses; when the plugin made them first, its mappings are
# kept (every field below has the same type there, so our documents index into either).
UBI_QUERIES_INDEX: Final = "ubi_queries"
UBI_EVENTS_INDEX: Final = "ubi_events"


def _ubi_keyword(ignore_above: int) -> JsonDict:
    return {"type": "keyword", "ignore_above": ignore_above}


def ubi_queries_index_body() -> JsonDict:
    """``PUT ubi_queries``: one document per search (what was asked and which hits were shown, in order).

    The UBI fields keep the plugin's types (``user_query`` text with a ``keyword`` subfield,
    ``query_response_hit_ids`` keyword). ``query_attributes`` holds what eshybrid adds (which
    configuration or experiment arm served the search, and the arm credited with each shown hit);
    the plugin maps it as ``flat_object``, we map the few keys we filter on and keep the rest in
    ``_source`` (``dynamic: false``), the same JSON on Elasticsearch and OpenSearch.
    """
    body = _small_index_body(
        "ubi_queries",
        {
            "timestamp": _date(),
            "query_id": _ubi_keyword(100),
            "query_response_id": _ubi_keyword(100),
            "query_response_hit_ids": _keyword(),
            "user_query": {"type": "text", "fields": {"keyword": _ubi_keyword(256)}},
            "client_id": _ubi_keyword(100),
            "session_id": _ubi_keyword(100),
            "application": _ubi_keyword(256),
            "query_attributes": {
                "dynamic": False,
                "properties": {
                    "index": _keyword(),
                    "configuration": _keyword(),
                    "experiment": _keyword(),
                    "arm": _keyword(),
                    "hit_arms": _keyword(),
                },
            },
        },
    )
    body["mappings"]["_meta"]["eshybrid"]["spec"] = "ubi 1.x"
    return body


def ubi_events_index_body() -> JsonDict:
    """``PUT ubi_events``: one document per shopper action (impression, click, add_to_cart, purchase...).

    The types of OpenSearch's UBI plugin ``events`` mapping for the fields eshybrid accepts
    (``event_attributes.object.object_id``, ``event_attributes.position.ordinal``...), plus
    ``session_id``; ``dynamic: false`` so no record chooses a mapping.
    """
    body = _small_index_body(
        "ubi_events",
        {
            "timestamp": _date(),
            "action_name": _ubi_keyword(100),
            "query_id": _ubi_keyword(100),
            "client_id": _ubi_keyword(100),
            "session_id": _ubi_keyword(100),
            "application": _ubi_keyword(256),
            "message_type": _ubi_keyword(100),
            "message": _ubi_keyword(1024),
            "event_attributes": {
                "properties": {
                    "object": {
                        "properties": {
                            "object_id": _ubi_keyword(256),
                            "object_id_field": _ubi_keyword(100),
                        }
                    },
                    "position": {"properties": {"ordinal": {"type": "integer"}}},
                }
            },
        },
    )
    body["mappings"]["_meta"]["eshybrid"]["spec"] = "ubi 1.x"
    return body


# The fields of one judgment document (``connector.workbench.store`` writes and reads them).
JUDGMENT_FIELDS: Final = ("index", "query", "doc_id", "grade", "rater", "at", "config")


def judgments_index_body() -> JsonDict:
    """Settings and mapping of the judgments index: one document per (index, query, document, rater).

    ``_id`` is derived from those four, so a rater who changes a grade overwrites it; ``config`` (the
    workbench side the hit was rated on) stays in ``_source`` only.
    """
    return _small_index_body(
        "judgments",
        {
            "index": _keyword(),
            "query": {"type": "keyword", "ignore_above": 4096},
            "doc_id": _keyword(),
            "grade": {"type": "byte"},
            "rater": _keyword(),
            "at": _date(),
            "config": {"type": "object", "enabled": False},
        },
    )
