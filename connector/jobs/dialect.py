"""Point-in-time reading: the one place where Elasticsearch and OpenSearch differ for jobs.

| | Elasticsearch 8/9 | OpenSearch 2/3 |
| --- | --- | --- |
| open | ``POST /<i>/_pit?keep_alive=T`` -> ``{"id"}`` | ``POST /<i>/_search/point_in_time?keep_alive=T`` -> ``{"pit_id"}`` |
| search | ``POST /_search`` with ``pit: {id, keep_alive}`` (no index in the path) | same |
| close | ``DELETE /_pit`` ``{"id"}`` | ``DELETE /_search/point_in_time`` ``{"pit_id": [id]}`` |
| sort | ``_shard_doc`` | ``_shard_doc`` on 3.x; ``_id`` on 2.x (no ``_shard_doc``) |
| whole ``_source`` | ES 9.1+: ``exclude_vectors: false`` to get vectors back | as is |

Request bodies are built by pure functions (golden-tested); :class:`PitDialect`
holds the flavor and sends them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connector.cluster.capabilities import Flavor
from connector.cluster.client import Cluster, JsonDict
from connector.errors import ClusterApiError

__all__ = [
    "Flavor",
    "PitDialect",
    "PitExpiredError",
    "ShardFailuresError",
    "check_shards",
    "SourceFilter",
    "catch_up_search_body",
    "dialect_for",
    "pit_search_body",
]

logger = logging.getLogger(__name__)

SourceFilter = bool | JsonDict

# What PIT pages are sorted on: ``_shard_doc`` (the shard and Lucene doc id in the PIT's
# snapshot: unique and cheap) where the server has it; OpenSearch 2.x lacks it, and ``_doc``
# alone is not unique across shards (pages skip documents), so there the sort is ``_id``
# (unique; it loads the ids as field data, which OpenSearch 2.x still allows).
SHARD_DOC_SORT: list[JsonDict] = [{"_shard_doc": "asc"}]
ID_SORT: list[JsonDict] = [{"_id": "asc"}]

# What every scan page asks for: ``_seq_no``/``_primary_term`` so writes can be conditional
# (``if_seq_no``/``if_primary_term``), ``_version`` so copies can carry it, and no total count.
_PAGE_OPTIONS: JsonDict = {"seq_no_primary_term": True, "version": True, "track_total_hits": False}


class PitExpiredError(ClusterApiError):
    """The point in time is gone (expired or the node restarted); the slice must restart."""


class ShardFailuresError(ClusterApiError):
    """A search answered without some of its shards (``_shards.failed``): its hits are a partial answer.

    A search answers 200 when some shards fail (a node left, a copy relocated): a scan that took that page
    for the whole would skip the missing shards' documents without a word.
    """


def check_shards(response: Mapping[str, Any], *, url: str, what: str) -> None:
    """Raise :class:`ShardFailuresError` when ``response`` lacks some shards.

    Raises:
        ShardFailuresError: ``_shards.failed`` > 0 (``error_type``: the first failure's type).
    """
    shards = response.get("_shards") or {}
    failed = int(shards.get("failed") or 0)
    if not failed:
        return
    types = sorted({str((f.get("reason") or {}).get("type") or "unknown") for f in shards.get("failures") or []})
    raise ShardFailuresError(
        f"{what}: {failed} of {shards.get('total')} shards failed ({', '.join(types) or 'no reason given'}); "
        "the answer would be partial",
        url=url,
        status=503,
        error_type=types[0] if types else "shard_failure",
        reason=", ".join(types),
        body=None,
    )


def pit_search_body(
    *,
    pit_id: str,
    keep_alive: str,
    size: int,
    source: SourceFilter,
    search_after: Sequence[Any] | None = None,
    slice_id: int | None = None,
    max_slices: int = 1,
    query: Mapping[str, Any] | None = None,
    sort: Sequence[Mapping[str, Any]] = tuple(SHARD_DOC_SORT),
) -> JsonDict:
    """One page of a sliced point-in-time scan, sorted on ``sort`` (see :attr:`PitDialect.pit_sort`).

    ``source`` is a ``_source`` filter from :meth:`PitDialect.source_filter`.
    """
    body: JsonDict = {
        "size": size,
        "pit": {"id": pit_id, "keep_alive": keep_alive},
        "sort": [dict(s) for s in sort],
        **_PAGE_OPTIONS,
        "_source": source,
    }
    if query is not None:
        body["query"] = dict(query)
    if search_after is not None:
        body["search_after"] = list(search_after)
    if max_slices > 1:
        if slice_id is None or not 0 <= slice_id < max_slices:
            raise ValueError(f"slice_id must be in [0, {max_slices}), got {slice_id}")
        body["slice"] = {"id": slice_id, "max": max_slices}
    return body


def catch_up_search_body(
    *,
    after_seq_no: int,
    upto_seq_no: int,
    size: int,
    source: SourceFilter,
    search_after: Sequence[Any] | None = None,
) -> JsonDict:
    """One page of the catch-up scan of ONE shard (sent with ``preference=_shards:<n>``).

    Sequence numbers are per shard and every write gets a new one, so the
    documents changed since a high-water mark are exactly those with
    ``after_seq_no < _seq_no <= upto_seq_no`` on that shard. ``_seq_no`` is
    unique per live document of a shard, so it is also a stable cursor.
    """
    body: JsonDict = {
        "size": size,
        "query": {"range": {"_seq_no": {"gt": after_seq_no, "lte": upto_seq_no}}},
        "sort": [{"_seq_no": "asc"}],
        **_PAGE_OPTIONS,
        "_source": source,
    }
    if search_after is not None:
        body["search_after"] = list(search_after)
    return body


@dataclass(frozen=True)
class PitDialect:
    """Open, page through and close points in time on one flavor."""

    flavor: Flavor
    version: tuple[int, int, int] = (0, 0, 0)

    @property
    def pit_sort(self) -> list[JsonDict]:
        """The unique sort of PIT pages: ``_shard_doc``, or ``_id`` on OpenSearch 2.x."""
        if self.flavor == "opensearch" and self.version < (3, 0, 0):
            return [dict(s) for s in ID_SORT]
        return [dict(s) for s in SHARD_DOC_SORT]

    @property
    def hides_source_vectors(self) -> bool:
        """ES 9.1+ leaves vectors out of ``_source`` unless asked (``index.mapping.exclude_source_vectors``)."""
        return self.flavor == "elasticsearch" and self.version >= (9, 1, 0)

    def source_filter(self, includes: Sequence[str] | None) -> SourceFilter:
        """The ``_source`` filter for some fields, or (``None``) the whole source, vectors included."""
        if includes is not None:
            # Fields named explicitly come back, vectors too, on every flavor.
            return {"includes": list(includes)}
        if self.hides_source_vectors:
            return {"exclude_vectors": False}
        return True

    def open_pit(self, cluster: Cluster, index: str, *, keep_alive: str) -> str:
        """Open a point in time over ``index``; returns its id."""
        if self.flavor == "elasticsearch":
            body = cluster.request("POST", f"/{index}/_pit", params={"keep_alive": keep_alive}).body
            return str(body["id"])
        body = cluster.request("POST", f"/{index}/_search/point_in_time", params={"keep_alive": keep_alive}).body
        return str(body["pit_id"])

    def close_pit(self, cluster: Cluster, pit_id: str) -> None:
        """Close a point in time; a PIT that is already gone is not an error."""
        try:
            if self.flavor == "elasticsearch":
                cluster.request("DELETE", "/_pit", body={"id": pit_id}, ignore=(404,))
            else:
                cluster.request("DELETE", "/_search/point_in_time", body={"pit_id": [pit_id]}, ignore=(404,))
        except ClusterApiError as e:
            logger.warning("could not close point in time: %s", e)

    def search(self, cluster: Cluster, body: Mapping[str, Any]) -> JsonDict:
        """Send one PIT page (no index in the path); raise :class:`PitExpiredError` when it is gone.

        A page missing some shards counts as gone too: the PIT's contexts on a node that left (or on a copy
        that relocated) cannot come back, and the page would silently lack their documents.
        """
        try:
            result: JsonDict = cluster.request("POST", "/_search", body=dict(body)).body
            check_shards(result, url=cluster.url, what="a point-in-time page")
        except ShardFailuresError as e:
            raise PitExpiredError(
                f"{e}; the slice restarts from a new point in time",
                url=cluster.url, status=e.status, error_type=e.error_type, reason=e.reason, body=None,
            ) from e  # fmt: skip
        except ClusterApiError as e:
            if _is_pit_gone(e):
                raise PitExpiredError(
                    f"the point in time expired or was lost ({e.error_type}); the slice restarts from a new one",
                    url=cluster.url,
                    status=e.status,
                    error_type=e.error_type,
                    reason=e.reason,
                    body=None,
                ) from e
            raise
        return result


def _is_pit_gone(err: ClusterApiError) -> bool:
    text = f"{err.error_type} {err.reason}".lower()
    if err.status == 404:
        return True
    return (
        "search_context_missing" in text
        or "no search context found" in text
        or ("point in time" in text and ("expired" in text or "not found" in text))
    )


def dialect_for(cluster: Cluster) -> PitDialect:
    """The dialect for a cluster, from its detected capabilities."""
    flavor = cluster.capabilities.flavor
    if flavor not in ("elasticsearch", "opensearch"):
        raise ValueError(f"unknown flavor {flavor!r}")
    return PitDialect(flavor=flavor, version=cluster.capabilities.version)
