"""Serving an experiment: team-draft pages credited per arm, the A/B arm sticky per client."""

from __future__ import annotations

import asyncio
from typing import Any

from connector.search.experiment import ExperimentSpec, aexperiment_search, experiment_search
from connector.search.models import FusionConfig, SearchHit, SearchResponse

RANKINGS = {"rrf": ["a", "b", "c", "d", "e", "f"], "linear": ["c", "x", "a", "y", "z", "b"]}
SPEC = ExperimentSpec.model_validate(
    {"name": "fusion-test", "arms": {"ctrl": {"fusion": {"method": "rrf"}}, "test": {"fusion": {"method": "linear"}}}}
)


class FakeSearch:
    """Answers each fusion with a fixed ranking, recording the calls."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def search(
        self, text: str, *, size: int, page: int, fusion: FusionConfig | None = None, **kw: Any
    ) -> SearchResponse:
        self.calls.append({"size": size, "page": page, "fusion": fusion, **kw})
        ids = RANKINGS[fusion.method if fusion else "rrf"][(page - 1) * size : page * size]
        hits = [
            SearchHit(id=i, index="p", rank=(page - 1) * size + n + 1, score=1.0 / (n + 1)) for n, i in enumerate(ids)
        ]
        return SearchResponse(index="p", query=text, mode="hybrid", strategy="client", page=page, size=size,
                              max_depth=100, hits=hits)  # fmt: skip


def test_interleaved_pages_are_credited_and_sticky() -> None:
    search = FakeSearch()
    first, attrs = experiment_search(search, "tent", spec=SPEC, client_id="c1", size=3, filters=[{"term": {"x": 1}}])
    assert [c["size"] for c in search.calls] == [3, 3] and all(c["page"] == 1 for c in search.calls)
    assert all(c["filters"] == [{"term": {"x": 1}}] for c in search.calls)
    assert attrs["experiment"] == "fusion-test" and attrs["arm"] == "interleaved"
    assert len(first.ids) == 3 == len(attrs["hit_arms"]) and [h.rank for h in first.hits] == [1, 2, 3]
    for doc, arm in zip(first.ids, attrs["hit_arms"]):
        assert doc in RANKINGS["rrf" if arm == "ctrl" else "linear"][:3]
    again, attrs_again = experiment_search(FakeSearch(), "tent", spec=SPEC, client_id="c1", size=3)
    assert (again.ids, attrs_again) == (first.ids, attrs)
    second, attrs2 = experiment_search(FakeSearch(), "tent", spec=SPEC, client_id="c1", size=3, page=2)
    assert not set(second.ids) & set(first.ids) and [h.rank for h in second.hits] == [4, 5, 6]
    assert len(attrs2["hit_arms"]) == len(second.ids)


def test_ab_runs_the_clients_arm_only() -> None:
    spec = SPEC.model_copy(update={"mode": "ab"})
    seen = set()
    for n in range(20):
        search = FakeSearch()
        response, attrs = experiment_search(search, "tent", spec=spec, client_id=f"c{n}", size=2)
        assert len(search.calls) == 1 and attrs["arm"] in ("ctrl", "test")
        assert response.ids == RANKINGS["rrf" if attrs["arm"] == "ctrl" else "linear"][:2]
        seen.add(attrs["arm"])
    assert seen == {"ctrl", "test"}


def test_the_async_driver_answers_the_same() -> None:
    class AsyncFake(FakeSearch):
        async def search(self, text: str, **kw: Any) -> SearchResponse:  # type: ignore[override]
            return FakeSearch.search(self, text, **kw)

    sync = experiment_search(FakeSearch(), "tent", spec=SPEC, client_id="c9", size=4)
    awaited = asyncio.run(aexperiment_search(AsyncFake(), "tent", spec=SPEC, client_id="c9", size=4))
    assert (sync[0].ids, sync[1]) == (awaited[0].ids, awaited[1])
