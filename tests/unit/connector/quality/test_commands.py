"""The plain functions behind ``eshybrid load | eval | tune`` (connector.quality.commands), without a cluster."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from connector.cluster.capabilities import Capabilities
from connector.quality import commands
from connector.quality.load import BeirDataset
from connector.search.fusion import LegHit

DATASET = BeirDataset(
    path=Path("/nonexistent"),
    queries={"q1": "tent", "q2": "chair", "q3": "unjudged"},
    qrels={"q1": {"d1": 3, "d2": 0}, "q2": {"d2": 1}, "q3": {"d1": 0}},
)
RANKINGS = {"tent": ["d1", "d2"], "chair": ["d1", "d2"]}


class FakeSearch:
    """What the commands use of a HybridSearch: ``max_depth``, ``search`` and ``retrieve_legs``."""

    def __init__(self, *, max_depth: int) -> None:
        self.max_depth = max_depth
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def search(self, text: str, **options: Any) -> SimpleNamespace:
        self.calls.append((text, options))
        return SimpleNamespace(ids=RANKINGS[text][: options["size"]])

    def retrieve_legs(self, text: str, *, mode: str) -> dict[str, list[LegHit]]:
        self.calls.append((text, {"mode": mode}))
        ids = RANKINGS[text]
        return {"lexical": [LegHit(i, 1.0 / (n + 1)) for n, i in enumerate(ids)], "vector": [LegHit(ids[-1], 0.9)]}


@pytest.mark.parametrize(("max_depth", "depth"), [(50, 50), (300, 100)])
def test_evaluate_dataset_runs_each_judged_query_in_each_mode(max_depth: int, depth: int) -> None:
    search = FakeSearch(max_depth=max_depth)
    report = commands.evaluate_dataset(search, DATASET, modes=["bm25", "hybrid"], strategy="client")  # type: ignore[arg-type]
    assert [(text, o["mode"]) for text, o in search.calls] == [
        ("tent", "bm25"), ("chair", "bm25"), ("tent", "hybrid"), ("chair", "hybrid")
    ]  # fmt: skip
    assert {(o["size"], o["strategy"]) for _, o in search.calls} == {(depth, "client")}
    assert report.skipped_queries == 1


def test_load_beir_corpus_creates_a_plain_bm25_index(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_load(cluster: Any, index: str, corpus: Any, **options: Any) -> str:
        seen.update(index=index, corpus=corpus, **options)
        return "report"

    monkeypatch.setattr(commands, "load_corpus", fake_load)
    cluster = SimpleNamespace(capabilities=Capabilities.from_version("elasticsearch", "9.5.4"))
    report = commands.load_beir_corpus(cluster, "shop", "ds", shards=2, replicas=1, chunk_size=7, replace=True)  # type: ignore[arg-type]
    assert report == "report"
    assert (seen["index"], seen["corpus"], seen["chunk_size"], seen["replace"]) == ("shop", "ds", 7, True)
    assert seen["raise_on_error"] is False  # failures are counted in the report; the CLI prints them
    settings = seen["index_body"]["settings"]
    assert str(settings.get("number_of_shards", settings.get("index", {}).get("number_of_shards"))) == "2"
    title = seen["index_body"]["mappings"]["properties"]["title"]
    assert title["type"] == "text"
    # english by default; this ES (no modules listed) is assumed to have the language analyzers
    assert title["analyzer"] == "english" and title["fields"]["keyword"]["type"] == "keyword"
