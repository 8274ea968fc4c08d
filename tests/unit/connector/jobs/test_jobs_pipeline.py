"""The job machinery without a network: bulk retries, ordered checkpoints, the pipeline's stages.

The in-process ``Embedder`` and the scripted ``_bulk`` stand-in below exist ONLY here: the
integration tests run the same code against real clusters and a real Ray Serve.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from connector.cluster.client import ApiResult
from connector.errors import BulkError, ClusterApiError, EmbeddingOverloaded, EmbeddingRequestError, JobError
from connector.jobs.bulk import BulkAction, streaming_bulk
from connector.jobs.pipeline import (
    Backpressure,
    CheckpointTracker,
    DocWork,
    Page,
    Pipeline,
    PipelineOptions,
)
from connector.jobs.store import DeadLetter, JobCounts, SliceCheckpoint


@dataclass
class ScriptedBulk:
    """Answers ``POST /_bulk``: ``item_status(doc_id, attempt)`` decides each item's status."""

    item_status: Any = None
    request_errors: list[int] = field(default_factory=list)
    requests: list[list[str]] = field(default_factory=list)
    url: str = "scripted"
    lock: threading.Lock = field(default_factory=threading.Lock)
    attempts: dict[str, int] = field(default_factory=dict)

    def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> ApiResult:
        assert (method, path) == ("POST", "/_bulk")
        with self.lock:
            if self.request_errors:
                status = self.request_errors.pop(0)
                raise ClusterApiError(
                    f"scripted {status}", status=status, error_type="scripted", reason="", url=self.url, body=None
                )
            lines = [json.loads(line) for line in body]
            metas = [
                next(iter(line.values()))
                for line in lines
                if len(line) == 1 and next(iter(line)) in ("index", "update", "delete", "create")
            ]
            self.requests.append([m["_id"] for m in metas])
            items = []
            for meta in metas:
                n = self.attempts[meta["_id"]] = self.attempts.get(meta["_id"], 0) + 1
                status = self.item_status(meta["_id"], n) if self.item_status else 200
                item: dict[str, Any] = {"_id": meta["_id"], "status": status, "_seq_no": 1, "_primary_term": 1}
                if status >= 300:
                    item["error"] = {
                        "type": "es_rejected_execution_exception" if status == 429 else "x",
                        "reason": f"status {status}",
                    }
                items.append({"update": item})
            return ApiResult(status=200, body={"errors": False, "items": items}, headers={})


def actions(n: int) -> list[BulkAction]:
    return [BulkAction("update", {"_index": "p", "_id": str(i)}, {"doc": {"x": i}}, ref=i) for i in range(n)]


def test_batches_by_count_and_bytes() -> None:
    cluster = ScriptedBulk()
    results = list(streaming_bulk(cluster, actions(10), max_docs=4))  # type: ignore[arg-type]
    assert [len(r) for r in cluster.requests] == [4, 4, 2]
    assert [r.action.ref for r in results] == list(range(10)) and all(r.ok for r in results)
    cluster = ScriptedBulk()
    list(streaming_bulk(cluster, actions(10), max_docs=100, max_bytes=150))  # type: ignore[arg-type]
    assert max(len(r) for r in cluster.requests) < 10 and sum(len(r) for r in cluster.requests) == 10


def test_only_items_that_got_429_are_resent() -> None:
    cluster = ScriptedBulk(item_status=lambda doc_id, n: 429 if doc_id in ("1", "3") and n == 1 else 200)
    pressure: list[str] = []
    results = list(
        streaming_bulk(
            cluster,
            actions(5),
            initial_backoff_s=0.001,  # type: ignore[arg-type]
            on_backpressure=pressure.append,
        )
    )
    assert cluster.requests == [["0", "1", "2", "3", "4"], ["1", "3"]]
    assert all(r.ok for r in results) and pressure


def test_a_chunk_that_keeps_failing_raises_with_every_item() -> None:
    cluster = ScriptedBulk(request_errors=[503, 503, 503, 503])
    seen = []
    with pytest.raises(BulkError) as err:
        for result in streaming_bulk(
            cluster,
            actions(6),
            max_docs=3,
            max_retries=3,  # type: ignore[arg-type]
            initial_backoff_s=0.001,
        ):
            seen.append(result)
    assert seen == []  # nothing of the failed chunk was yielded before the raise
    assert len(err.value.items) == 3 and all(not item.ok for item in err.value.items)


def test_item_errors_other_than_429_are_results_not_raises() -> None:
    cluster = ScriptedBulk(item_status=lambda doc_id, n: 409 if doc_id == "2" else 200)
    results = list(streaming_bulk(cluster, actions(4)))  # type: ignore[arg-type]
    assert [r.status for r in results] == [200, 200, 409, 200]
    assert results[2].reason == "status 409"


def _page(key: str, seq: int, *, read: int, cursor: int | None, end: bool = False, restart: bool = False) -> Page:
    return Page(
        slice_key=key,
        seq=seq,
        cursor=[cursor] if cursor is not None else None,
        counts=JobCounts(read=read, updated=read),
        end=end,
        restart=restart,
    )


def test_checkpoints_advance_only_over_contiguous_pages() -> None:
    cp = SliceCheckpoint(job_id="j", key="main-0", pass_name="main", slice_id=0, max_slices=1)
    tracker = CheckpointTracker(None, [cp])
    tracker.complete(_page("main-0", 1, read=5, cursor=10))
    assert cp.cursor is None and cp.counts.read == 0  # page 0 still in flight
    tracker.complete(_page("main-0", 0, read=5, cursor=5))
    assert cp.cursor == [10] and cp.counts.read == 10 and not cp.done
    tracker.complete(_page("main-0", 2, read=0, cursor=10, end=True))
    assert cp.done and cp.commit_seq == 2


def test_a_restarted_slice_starts_its_counts_over() -> None:
    cp = SliceCheckpoint(
        job_id="j",
        key="main-0",
        pass_name="main",
        slice_id=0,
        max_slices=1,
        counts=JobCounts(read=7, updated=7, embedded=7),
        cursor=[3],
    )
    tracker = CheckpointTracker(None, [cp])
    tracker.complete(_page("main-0", 0, read=4, cursor=4, restart=True))
    assert cp.counts.read == 4 and cp.counts.embedded == 7 and cp.cursor == [4]


def test_backpressure_grows_and_shrinks() -> None:
    pressure = Backpressure(max_delay_s=1.0)
    for _ in range(10):
        pressure.penalize("test")
    assert pressure.delay_s == 1.0
    for _ in range(10):
        pressure.relieve()
    assert pressure.delay_s == 0.0


class ListSource:
    def __init__(self, key: str, docs: list[dict[str, Any]], page_size: int) -> None:
        self.key = key
        self.docs = docs
        self.page_size = page_size

    def pages(self) -> Iterator[tuple[list[dict[str, Any]], list[Any] | None, str | None, bool]]:
        for start in range(0, len(self.docs), self.page_size):
            chunk = self.docs[start : start + self.page_size]
            yield chunk, [start + len(chunk)], None, False
        yield [], None, None, False


class UpperMode:
    """A toy mode: documents whose text is empty are dead-lettered, "same" ones skipped."""

    source_includes = None

    def classify(self, hit: dict[str, Any]) -> DocWork:
        text = hit["_source"].get("t", "")
        work = DocWork(doc_id=hit["_id"], verdict="embed", index="p", text=text)
        if text == "same":
            work.verdict = "skip"
        elif not text:
            self.mark_unembeddable(work, "empty_text", "no text")
        return work

    def mark_unembeddable(self, work: DocWork, reason_code: str, reason: str) -> None:
        work.verdict = "dead"
        work.dead_letter = DeadLetter(
            job_id="j", index="p", doc_id=work.doc_id, reason_code=reason_code, reason=reason, vector_field="v"
        )

    def to_action(self, work: DocWork) -> BulkAction:
        return BulkAction("update", {"_index": "p", "_id": work.doc_id}, {"doc": {"v": work.vector}})

    def resolve_conflicts(self, works: list[DocWork]) -> list[DocWork]:
        for work in works:
            work.verdict = "skip"
        return works


class LengthEmbedder:
    """Embeds a text as ``[len(text)]``; refuses texts containing "boom"; 429s ``overload`` times first."""

    def __init__(self, overload: int = 0) -> None:
        self.overload = overload
        self.calls = 0
        self.lock = threading.Lock()

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        with self.lock:
            self.calls += 1
            if self.overload:
                self.overload -= 1
                raise EmbeddingOverloaded("busy")
        if any("boom" in t for t in texts):
            raise EmbeddingRequestError("refused")
        return [[float(len(t))] for t in texts]


def _run(
    docs: list[dict[str, Any]], embedder: LengthEmbedder, *, slices: int = 2, item_status: Any = None
) -> tuple[JobCounts, list[SliceCheckpoint], ScriptedBulk]:
    cluster = ScriptedBulk(item_status=item_status)
    per_slice = [docs[i::slices] for i in range(slices)]
    cps = [
        SliceCheckpoint(job_id="j", key=f"main-{i}", pass_name="main", slice_id=i, max_slices=slices)
        for i in range(slices)
    ]
    pipeline = Pipeline(
        cluster=cluster,
        mode=UpperMode(),
        embedder=embedder,
        store=None,  # type: ignore[arg-type]
        tracker=CheckpointTracker(None, cps),
        options=PipelineOptions(
            embed_workers=3, write_workers=2, queue_pages=2, bulk_max_docs=7, max_backoff_s=0.01, dims=1
        ),
    )
    live = pipeline.run([ListSource(f"main-{i}", part, page_size=5) for i, part in enumerate(per_slice)])
    return live, cps, cluster


def _docs(n: int) -> list[dict[str, Any]]:
    texts = ["same" if i % 10 == 3 else "" if i % 10 == 7 else "boom" if i == 42 else f"text {i}" for i in range(n)]
    return [{"_id": str(i), "_source": {"t": t}} for i, t in enumerate(texts)]


def test_pipeline_reconciles_and_checkpoints_every_slice() -> None:
    live, cps, cluster = _run(_docs(100), LengthEmbedder(overload=2))
    total = JobCounts()
    for cp in cps:
        assert cp.done
        total.add(cp.counts)
    assert total.read == 100 and total.reconciles()
    assert total.skipped == 10 and total.dead_lettered == 11  # 10 empty + "boom" refused by the service
    assert total.updated == 79
    assert live.as_dict() == total.as_dict()
    written = sorted(int(doc_id) for request in cluster.requests for doc_id in request)
    assert len(written) == len(set(written)) == 79


def test_conflicts_are_resolved_by_the_mode() -> None:
    _, cps, _ = _run(_docs(30), LengthEmbedder(), item_status=lambda doc_id, n: 409 if doc_id == "5" else 200)
    total = JobCounts()
    for cp in cps:
        total.add(cp.counts)
    assert total.conflicts == 1 and total.reconciles()


def test_wrong_dims_stop_the_job() -> None:
    class Wide(LengthEmbedder):
        def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
            return [[1.0, 2.0] for _ in texts]

    with pytest.raises(JobError, match="2-dim vectors"):
        _run(_docs(10), Wide())
