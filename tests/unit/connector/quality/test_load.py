"""``load_corpus`` writes through the jobs' streaming bulk helper (no network: a scripted ``_bulk`` stand-in).

The stand-in exists ONLY here; tests/integration/test_eval.py loads into the real servers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from connector.cluster.client import ApiResult
from connector.errors import BulkError, ConfigError
from connector.quality.load import LoadReport, load_corpus


@dataclass
class ScriptedCluster:
    """Index create/delete/refresh and ``POST /_bulk``; ``item_status(doc_id, attempt)`` decides each item."""

    item_status: Callable[[str, int], int] | None = None
    existing: set[str] = field(default_factory=set)
    requests: list[list[str]] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    url: str = "scripted"
    capabilities: Any = None

    def index_exists(self, index: str) -> bool:
        return index in self.existing

    def delete_index(self, index: str) -> None:
        self.calls.append(f"delete {index}")
        self.existing.discard(index)

    def create_index(self, index: str, body: Any) -> None:
        self.calls.append(f"create {index}")
        self.existing.add(index)

    def refresh(self, index: str) -> None:
        self.calls.append(f"refresh {index}")

    def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> ApiResult:
        assert (method, path) == ("POST", "/_bulk")
        lines = [json.loads(line) for line in body]
        metas = [line["index"] for line in lines[::2]]
        self.requests.append([m["_id"] for m in metas])
        items = []
        for meta in metas:
            n = self.attempts[meta["_id"]] = self.attempts.get(meta["_id"], 0) + 1
            status = self.item_status(meta["_id"], n) if self.item_status else 201
            item: dict[str, Any] = {"_id": meta["_id"], "status": status}
            if status >= 300:
                item["error"] = {"type": "rejected" if status == 429 else "mapper_parsing_exception", "reason": "no"}
            items.append({"index": item})
        return ApiResult(
            status=200, body={"errors": any("error" in i["index"] for i in items), "items": items}, headers={}
        )


def rows(n: int) -> list[dict[str, Any]]:
    return [{"_id": f"d{i}", "title": f"title {i}", "text": "text"} for i in range(n)]


def load(cluster: ScriptedCluster, n: int, **options: Any) -> LoadReport:
    return load_corpus(cluster, "shop", rows(n), index_body={"mappings": {}}, **options)  # type: ignore[arg-type]


def test_chunks_by_count_and_reports_them() -> None:
    cluster = ScriptedCluster()
    report = load(cluster, 5, chunk_size=2)
    assert cluster.requests == [["d0", "d1"], ["d2", "d3"], ["d4"]]
    assert (report.docs, report.failed, report.chunks, report.failures) == (5, 0, 3, [])
    assert cluster.calls == ["create shop", "refresh shop"]


def test_only_items_that_got_429_are_resent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.sleep", lambda s: None)  # tenacity's backoff
    cluster = ScriptedCluster(item_status=lambda doc_id, n: 429 if doc_id == "d1" and n == 1 else 201)
    report = load(cluster, 3, chunk_size=10)
    assert cluster.requests == [["d0", "d1", "d2"], ["d1"]]
    assert (report.docs, report.failed, report.chunks) == (3, 0, 1)


def test_refused_documents_are_reported_or_raised() -> None:
    def status(doc_id: str, n: int) -> int:
        return 400 if doc_id == "d2" else 201

    report = load(ScriptedCluster(item_status=status), 4, chunk_size=3, raise_on_error=False)
    assert (report.docs, report.failed, report.chunks) == (3, 1, 2)
    assert report.failures == [
        {"_id": "d2", "status": 400, "error": {"type": "mapper_parsing_exception", "reason": "no"}}
    ]
    with pytest.raises(BulkError, match="1 documents were refused") as err:
        load(ScriptedCluster(item_status=status), 4)
    assert err.value.items == report.failures


def test_an_existing_index_needs_replace() -> None:
    with pytest.raises(ConfigError, match="already exists"):
        load(ScriptedCluster(existing={"shop"}), 1)
    cluster = ScriptedCluster(existing={"shop"})
    assert load(cluster, 1, replace=True).docs == 1
    assert cluster.calls[:2] == ["delete shop", "create shop"]
