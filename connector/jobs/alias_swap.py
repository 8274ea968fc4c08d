"""The cut-over of a reindex: writes to the source blocked, the last catch-up, deletes reconciled, the alias swapped.

Phases 2 to 4 of :mod:`connector.jobs.reindex` (see its docstring for why writes are
blocked and what readers see). Functions of a :class:`~connector.jobs.reindex.ReindexJob`,
which calls :func:`copy_rest_and_swap` once its main copy is done.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from connector.cluster.client import JsonDict
from connector.errors import JobError
from connector.jobs.bulk import BulkAction, streaming_bulk
from connector.jobs.dialect import pit_search_body
from connector.jobs.versioned import alias_actions

if TYPE_CHECKING:
    from connector.jobs.reindex import ReindexJob

__all__ = [
    "block_source_writes",
    "copy_rest_and_swap",
    "finish_target",
    "reconcile_deletes",
    "swap",
    "wait_for_writes_to_settle",
]

logger = logging.getLogger(__name__)


def copy_rest_and_swap(job: ReindexJob) -> None:
    """The last catch-up passes, the delete reconciliation and the swap, writes to the source blocked."""
    assert job.state is not None
    job.save_state(phase="catch_up")
    job.run_catch_up()
    concrete = job.alias_kind == "concrete"
    # Stop writes to the source for the last pass, the delete reconciliation and the swap: a write
    # or delete landing between them would otherwise be lost or resurrected in the new index.
    # Queries keep answering; writes get a short 403 (cluster_block_exception) window.
    block_source_writes(job, True)
    try:
        wait_for_writes_to_settle(job)
        job.run_catch_up(max_passes=1, until_quiet=False)
        job.state.extra["deleted"] = int(job.state.extra.get("deleted", 0)) + reconcile_deletes(job)
        finish_target(job)
        swap(job)
    except BaseException:
        if job.cluster.index_exists(job.state.scan_index):
            block_source_writes(job, False)
        raise
    if not concrete:
        block_source_writes(job, False)  # the old index is kept (for a rollback) and stays writable
    job.state.extra["stage"] = "swapped"
    job.save_state(phase="swapped")


def block_source_writes(job: ReindexJob, blocked: bool) -> None:
    assert job.state is not None
    job.cluster.request("PUT", f"/{job.state.scan_index}/_settings", body={"index": {"blocks": {"write": blocked}}})


def wait_for_writes_to_settle(job: ReindexJob, *, timeout_s: float = 60.0) -> None:
    """After the write block: wait until writes already admitted have completed on every copy.

    A write that passed the block check before the block took effect still completes; until
    it does, the shard's ``local_checkpoint`` stays below its ``max_seq_no``.
    """
    assert job.state is not None
    deadline = time.monotonic() + timeout_s
    while True:
        stats = job.cluster.request("GET", f"/{job.state.scan_index}/_stats/docs", params={"level": "shards"}).body[
            "indices"
        ]
        copies = [c["seq_no"] for shards in next(iter(stats.values()))["shards"].values() for c in shards]
        if all(int(c["local_checkpoint"]) >= int(c["max_seq_no"]) for c in copies):
            return
        if time.monotonic() >= deadline:
            raise JobError(
                f"writes to {job.state.scan_index} did not settle in {timeout_s:.0f}s after blocking them; not swapping"
            )
        time.sleep(0.1)


def reconcile_deletes(job: ReindexJob) -> int:
    """Delete from the new index the ids the source no longer has; returns how many."""
    assert job.state is not None
    source, target = job.state.scan_index, job.target
    job.cluster.refresh(source)
    job.cluster.refresh(target)
    if job.cluster.count(target) == job.cluster.count(source):
        return 0
    deleted = 0
    pit_id = job.dialect.open_pit(job.cluster, target, keep_alive=job.settings.pit_keep_alive)
    try:
        cursor = None
        while True:
            body = pit_search_body(
                pit_id=pit_id,
                keep_alive=job.settings.pit_keep_alive,
                size=1000,
                source=False,
                search_after=cursor,
                sort=job.dialect.pit_sort,
            )
            hits = job.dialect.search(job.cluster, body)["hits"]["hits"]
            if not hits:
                break
            cursor = hits[-1]["sort"]
            deleted += _delete_missing(job, source, target, hits)
    finally:
        job.dialect.close_pit(job.cluster, pit_id)
    job.cluster.refresh(target)
    logger.info("reindex %s: deleted %s documents the source no longer has", job.job_id, deleted)
    return deleted


def _delete_missing(job: ReindexJob, source: str, target: str, hits: list[JsonDict]) -> int:
    docs = [{"_id": h["_id"], **({"routing": h["_routing"]} if h.get("_routing") else {})} for h in hits]
    found = job.cluster.request("POST", f"/{source}/_mget", body={"docs": docs}, params={"_source": False}).body["docs"]
    gone = [h for h, f in zip(hits, found) if not f.get("found")]
    actions = [
        BulkAction(
            "delete",
            {"_index": target, "_id": h["_id"], **({"routing": h["_routing"]} if h.get("_routing") else {})},
        )
        for h in gone
    ]
    failed = [r for r in streaming_bulk(job.cluster, actions) if not r.ok and r.status != 404]
    if failed:
        raise JobError(f"could not delete {len(failed)} stale documents from {target}: {failed[0].reason}")
    return len(gone)


def finish_target(job: ReindexJob) -> None:
    assert job.state is not None
    refresh = job.state.extra.get("refresh_interval")
    job.cluster.request("PUT", f"/{job.target}/_settings", body={"index": {"refresh_interval": refresh}})
    job.cluster.refresh(job.target)


def swap(job: ReindexJob) -> None:
    """Point the alias at the new index in one atomic ``_aliases`` request (idempotent)."""
    assert job.state is not None
    alias, target, kind = job.config.alias, job.target, job.alias_kind
    current = job.current_aliases()
    if target in current:
        return
    if kind == "concrete":
        source_count, target_count = job.cluster.count(alias), job.cluster.count(target)
        if source_count != target_count:
            raise JobError(f"not swapping: {target} holds {target_count} documents, {alias} {source_count}")
    actions = alias_actions(alias=alias, kind=kind, old_indices=current, new_index=target)
    job.cluster.request("POST", "/_aliases", body={"actions": actions})
    logger.info("reindex %s: alias %s now points to %s", job.job_id, alias, target)
