"""Where job pages come from: a sliced point-in-time scan, and the per-shard catch-up scan.

Catch-up rests on sequence numbers: every write to a shard gets the next ``_seq_no``
of that shard, so "what changed since the job started" is, per shard, the documents
with ``_seq_no`` above the high-water mark taken before the scan. The mark is the
smallest ``local_checkpoint`` of the shard's copies (every operation up to it is
processed on every copy); it is read BEFORE the refresh, so each operation at or
below it is visible to the scan that follows.

Limits (documented in docs/jobs.md): a deleted document has no ``_seq_no`` left to
find, so deletes are reconciled separately (reindex compares ids); and a window
closes when it is read, so a change made after the last catch-up is left to the
next run (or, for reindex, to the catch-up after the alias swap).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from connector.cluster.bodies import mget_body
from connector.cluster.client import Cluster, JsonDict
from connector.errors import ClusterApiError
from connector.jobs.dialect import PitDialect, PitExpiredError, catch_up_search_body, check_shards, pit_search_body
from connector.jobs.own_writes import OwnWrites

__all__ = ["PitSliceSource", "ShardCatchUpSource", "shard_high_water_marks"]

logger = logging.getLogger(__name__)

RawPage = tuple[list[JsonDict], list[Any] | None, str | None, bool]
T = TypeVar("T")

# While a node leaves, a shard has no active copy for a few seconds (until a replica is promoted): searches and
# opening a point in time answer 5xx or lack shards. Eight tries, backoff doubling with jitter up to 10 s, wait out
# ~40 s of that; a cluster still failing then fails the job (``--resume`` continues it).
_SHARD_RETRY_ATTEMPTS = 8
_SHARD_RETRY_MAX_S = 10.0


def _retrying_shards(fn: Callable[[], T], *, what: str) -> T:
    """``fn()``, retried while the cluster answers 5xx/429 or without some shards (a node leaving)."""

    def transient(err: BaseException) -> bool:
        return isinstance(err, ClusterApiError) and (err.status >= 500 or err.status == 429)

    def log(state: RetryCallState) -> None:
        logger.warning("%s failed (%s); retrying", what, state.outcome.exception() if state.outcome else "?")

    retrying = Retrying(
        stop=stop_after_attempt(_SHARD_RETRY_ATTEMPTS),
        wait=wait_random_exponential(multiplier=0.5, max=_SHARD_RETRY_MAX_S),
        retry=retry_if_exception(transient),
        before_sleep=log,
        reraise=True,
    )
    return retrying(fn)


def shard_high_water_marks(cluster: Cluster, index: str) -> dict[int, int]:
    """Per shard number: the sequence number up to which every copy has processed every write."""
    stats = cluster.request("GET", f"/{index}/_stats/docs", params={"level": "shards"}).body
    indices = stats["indices"]
    if len(indices) != 1:
        raise ValueError(f"{index!r} resolves to {len(indices)} indices; name one index")
    shards = next(iter(indices.values()))["shards"]
    marks: dict[int, int] = {}
    for number, copies in shards.items():
        checkpoints = [int(c["seq_no"]["local_checkpoint"]) for c in copies if "seq_no" in c]
        marks[int(number)] = min(checkpoints) if checkpoints else -1
    return marks


@dataclass
class PitSliceSource:
    """One slice of a point-in-time scan, sorted on ``_shard_doc``, resumable from a cursor.

    When the point in time is gone (expired while the job was down), the slice opens a
    new one and starts over (``restarted`` on the first page): unchanged documents are
    then skipped by their text hash, so little is embedded twice.
    """

    key: str
    cluster: Cluster
    dialect: PitDialect
    index: str
    pit_id: str
    keep_alive: str
    page_size: int
    source_includes: Sequence[str] | None
    slice_id: int = 0
    max_slices: int = 1
    cursor: list[Any] | None = None
    max_restarts: int = 3
    query: JsonDict | None = None
    opened_pits: list[str] = field(default_factory=list)

    def pages(self) -> Iterator[RawPage]:
        cursor, pit_id, restarted, restarts = self.cursor, self.pit_id, False, 0
        while True:
            body = pit_search_body(
                pit_id=pit_id,
                keep_alive=self.keep_alive,
                size=self.page_size,
                source=self.dialect.source_filter(self.source_includes),
                search_after=cursor,
                slice_id=self.slice_id,
                max_slices=self.max_slices,
                query=self.query,
                sort=self.dialect.pit_sort,
            )
            try:
                response = self.dialect.search(self.cluster, body)
            except PitExpiredError:
                if restarts >= self.max_restarts:
                    raise
                restarts += 1
                logger.warning("slice %s: the point in time is gone; starting the slice over from a new one", self.key)
                pit_id = _retrying_shards(
                    lambda: self.dialect.open_pit(self.cluster, self.index, keep_alive=self.keep_alive),
                    what=f"slice {self.key}: opening a new point in time",
                )
                self.opened_pits.append(pit_id)
                cursor, restarted = None, True
                continue
            pit_id = str(response.get("pit_id") or pit_id)
            hits: list[JsonDict] = response["hits"]["hits"]
            if hits:
                cursor = list(hits[-1]["sort"])
            yield hits, cursor, pit_id, restarted
            restarted = False
            if not hits:
                return

    def close(self) -> None:
        for pit_id in self.opened_pits:
            self.dialect.close_pit(self.cluster, pit_id)


@dataclass
class ShardCatchUpSource:
    """The documents of one shard written in ``(after_seq_no, upto_seq_no]``, in ``_seq_no`` order.

    With ``own_writes`` (a backfill in place), a page is read without ``_source``; the documents whose
    ``_seq_no`` is still the one the job's own write got are left out (``skipped_own``), and the sources of
    the others are fetched with ``_mget`` (real time: their current state, with its ``_seq_no``).
    """

    key: str
    cluster: Cluster
    dialect: PitDialect
    index: str
    shard: int
    after_seq_no: int
    upto_seq_no: int
    page_size: int
    source_includes: Sequence[str] | None
    cursor: list[Any] | None = None
    own_writes: OwnWrites | None = None
    skipped_own: int = 0

    def pages(self) -> Iterator[RawPage]:
        cursor = self.cursor
        light = self.own_writes is not None
        while True:
            body = catch_up_search_body(
                after_seq_no=self.after_seq_no,
                upto_seq_no=self.upto_seq_no,
                size=self.page_size,
                source=False if light else self.dialect.source_filter(self.source_includes),
                search_after=cursor,
            )
            response = _retrying_shards(
                functools.partial(self._whole_page, body), what=f"catch-up of shard {self.shard} of {self.index}"
            )
            hits: list[JsonDict] = response["hits"]["hits"]
            if hits:
                cursor = list(hits[-1]["sort"])
            if light and hits:
                hits = self._sources_of_others(hits)
                if not hits:
                    continue  # a page of the job's own writes only: nothing to hand on, read the next one
            yield hits, cursor, None, False
            if not hits:
                return

    def _whole_page(self, body: JsonDict) -> JsonDict:
        """One page of the shard; a page without the shard (its copy failed) is an error, not an empty page."""
        response = self.cluster.search(self.index, body, params={"preference": f"_shards:{self.shard}"})
        check_shards(response, url=self.cluster.url, what=f"a catch-up page of shard {self.shard}")
        return response

    def _sources_of_others(self, hits: list[JsonDict]) -> list[JsonDict]:
        assert self.own_writes is not None
        others = [h for h in hits if not self.own_writes.is_own(str(h["_index"]), str(h["_id"]), h.get("_seq_no"))]
        self.skipped_own += len(hits) - len(others)
        if not others:
            return []
        params: JsonDict = {}
        if self.source_includes is not None:
            params["_source_includes"] = ",".join(self.source_includes)
        body = mget_body([(str(h["_index"]), str(h["_id"]), h.get("_routing")) for h in others])
        docs = self.cluster.request("POST", "/_mget", body=body, params=params).body["docs"]
        # Deleted since the page was read: gone, nothing to do (a delete has no vector to write).
        return [doc for doc in docs if doc.get("found")]
