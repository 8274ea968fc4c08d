"""Round trips and the vector fallback of a default search, over an in-memory cluster double (no network)."""

from __future__ import annotations

import time
from typing import Any

from connector.cluster.capabilities import Capabilities
from connector.errors import EmbeddingServiceUnavailable
from connector.search.hybrid import HybridSearch
from connector.search.ops import ClusterRequest, Trace

MAPPING = {
    "properties": {"title": {"type": "text"}, "embedding": {"type": "dense_vector", "dims": 2}},
    "_meta": {"eshybrid": {"vector_fields": {"embedding": {"model_id": "m", "dims": 2}}}},
}


def _hits(*ids: str) -> dict[str, Any]:
    return {
        "hits": {
            "hits": [
                {"_id": i, "_index": "shop", "_score": 1.0 / (n + 1), "_source": {"title": i}}
                for n, i in enumerate(ids)
            ]
        }  # fmt: skip
    }


class _Cluster:
    """Answers what a default search sends; records the thread and time of each request."""

    capabilities = Capabilities.from_version("elasticsearch", "9.1.0", license="basic")

    def __init__(self) -> None:
        self.sent: list[tuple[str, float]] = []

    def get_mapping(self, index: str) -> Any:
        return MAPPING

    def search(self, index: str, body: Any, params: Any = None) -> Any:
        self.sent.append(("search", time.perf_counter()))
        if "suggest" in body:
            time.sleep(0.05)
            return {"hits": {"hits": []}, "suggest": {}}
        return _hits("a", "b")

    def msearch(self, index: str, searches: Any) -> Any:
        self.sent.append(("msearch", time.perf_counter()))
        if any("suggest" in body for _, body in searches):
            time.sleep(0.05)
        # the suggestion, the legs (lexical, then vector), then their top hits again with sources
        return [{"hits": {"hits": []}, "suggest": {}} if "suggest" in body
                else _hits("a", "b", "c") if "query" in body and "knn" not in str(body) else _hits("c", "d")
                for _, body in searches]  # fmt: skip


class _Embedder:
    def __init__(self, *, delay_s: float = 0.0, down: bool = False) -> None:
        self.delay_s, self.down, self.calls = delay_s, down, 0
        self.started: list[float] = []

    def embed_query(self, text: str) -> list[float]:
        self.calls += 1
        self.started.append(time.perf_counter())
        if self.down:
            raise EmbeddingServiceUnavailable("connection refused", retryable=True)
        time.sleep(self.delay_s)
        return [1.0, 0.0]


def test_a_default_search_is_two_round_trips_with_the_embedding_beside_the_suggestion() -> None:
    cluster, embedder = _Cluster(), _Embedder(delay_s=0.05)
    search = HybridSearch(cluster, "shop", embedder=embedder, max_depth=10, fusion=None)
    response = search.search("red tent", size=2)
    assert response.round_trips == 2 and not response.vector_fallback
    assert [what for what, _ in cluster.sent] == ["msearch", "msearch"]
    # the embedding started before the suggestion came back (both ran at once)
    assert embedder.started[0] < cluster.sent[0][1] + 0.05
    assert all(h.source == {"title": h.id} for h in response.hits), "the page's sources come from the legs' hits"
    assert [r.path for r in response.requests] == ["shop/_msearch", "shop/_msearch"]
    first, second = (r.ndjson or [] for r in response.requests)
    # the lexical leg (and its sourced copy) rode with the suggestion; only the kNN leg waited for the vector
    assert ["suggest" in line for line in first[1::2]] == [True, False, False]
    assert all("knn" in str(line) for line in second[1::2])
    assert response.ids == search.search("red tent", size=2, correct="off").ids
    assert len(response.query_id) == 36 and response.query_id != search.search("red tent").query_id


def test_a_down_embedder_gives_the_lexical_result_flagged_and_the_breaker_skips_it() -> None:
    cluster, embedder = _Cluster(), _Embedder(down=True)
    search = HybridSearch(cluster, "shop", embedder=embedder, max_depth=10, breaker_failures=2)
    for attempt in range(4):
        response = search.search("red tent", size=2, correct="off")
        assert response.vector_fallback and response.strategy == "single"
        assert response.vector_fallback_reason and "query embedder" in response.vector_fallback_reason
        # the adaptive fusion's word counts rode beside the failing embedding; with the breaker open, one request
        assert response.ids == ["a", "b"] and response.round_trips == (2 if attempt < 2 else 1)
    assert embedder.calls == 2, "after 2 failures in a row the open breaker stops asking the embedder"


def test_a_slow_embedder_costs_at_most_its_budget() -> None:
    cluster, embedder = _Cluster(), _Embedder()
    search = HybridSearch(cluster, "shop", embedder=embedder, max_depth=10, embed_budget_s=0.05)
    assert not search.search("warm up", correct="off").vector_fallback  # the first call: model check, 5 s
    embedder.delay_s = 1.0
    started = time.perf_counter()
    response = search.search("red tent", size=2, correct="off")
    assert time.perf_counter() - started < 0.5
    assert response.vector_fallback and "budget" in (response.vector_fallback_reason or "")
    search.close()


def test_the_trace_records_the_request_as_sent() -> None:
    trace = Trace()
    trace.before(ClusterRequest("POST", "/_mget", body={"docs": []}, params={"realtime": "false"}, note="n"))
    (request,) = trace.requests
    assert (request.method, request.path, trace.round_trips) == ("POST", "_mget", 1)


def test_the_cli_default_budget_is_the_library_default() -> None:
    from connector.cli.search import EMBED_BUDGET_S
    from connector.search.options import _SearchPathEnv

    # the suite sets ESHYBRID_SEARCH_EMBED_BUDGET_S (tests/conftest.py): compare the defaults themselves
    assert EMBED_BUDGET_S == _SearchPathEnv.model_fields["embed_budget_s"].default


def test_one_list_of_server_forms() -> None:
    from connector.cluster.capabilities import HYBRID_FORMS
    from connector.search.query_builder import FORM_BODIES, SERVER_FORMS

    assert set(SERVER_FORMS) == set(FORM_BODIES) == set(HYBRID_FORMS)


def test_the_async_driver_falls_back_the_same_way() -> None:
    import asyncio

    from connector.search.hybrid import AsyncHybridSearch

    class _AsyncCluster:
        capabilities = _Cluster.capabilities

        def __init__(self) -> None:
            self.sync = _Cluster()

        async def get_mapping(self, index: str) -> Any:
            return MAPPING

        async def search(self, index: str, body: Any, params: Any = None) -> Any:
            return self.sync.search(index, body, params)

        async def msearch(self, index: str, searches: Any) -> Any:
            return self.sync.msearch(index, searches)

    class _DownEmbedder:
        async def embed_query(self, text: str) -> list[float]:
            raise EmbeddingServiceUnavailable("connection refused", retryable=True)

    async def run() -> Any:
        async with AsyncHybridSearch(_AsyncCluster(), "shop", embedder=_DownEmbedder(), max_depth=10) as search:
            return await search.search("red tent", size=2)

    response = asyncio.run(run())
    # the lexical leg rode with the suggestion: the vector failed, nothing was left to send
    assert response.vector_fallback and response.ids == ["a", "b"] and response.round_trips == 1


_PROFILE = {"event_count": 4, "model_id": "m", "weight_sum": 8.0, "affinity_fields": ["brand"],
            "affinities": {"brand": {"Acme": 8.0}}}  # fmt: skip


class _ShopperCluster(_Cluster):
    """Also answers the profile and the session's events (one ``_msearch``) and the legs' doc values."""

    def msearch(self, index: str, searches: Any) -> Any:
        self.sent.append(("msearch", time.perf_counter()))
        answers = []
        for header, body in searches:
            if header.get("index") == "profiles":
                answers.append({"hits": {"hits": [{"_id": "u1", "_source": _PROFILE}]}})
            elif header.get("index") == "ubi_events":
                event = {"action_name": "purchase", "event_attributes": {"object": {"object_id": "p9"}}}
                answers.append({"hits": {"hits": [{"_source": event}]}})
            elif "ids" in str(body.get("query")):  # the session products' values, beside the legs
                answers.append({"hits": {"hits": [{"_id": "p9", "fields": {"brand": ["Zed"]}}]}})
            else:
                brands = {"a": "Other", "b": "Zed", "c": "Acme"}
                hits = _hits("a", "b", "c")["hits"]["hits"]
                answers.append({"hits": {"hits": [{**h, "fields": {"brand": [brands[h["_id"]]]}} for h in hits]}})
        return answers


def test_a_personalized_search_with_its_session_is_still_two_round_trips() -> None:
    cluster = _ShopperCluster()
    search = HybridSearch(cluster, "shop", embedder=_Embedder(), max_depth=10, profiles_index="profiles")
    plain = search.search("red tent", size=3, strategy="client")
    response = search.search("red tent", size=3, user="u1", session_id="s1", explain=True, personal_weight=5.0)
    assert response.round_trips == 2 == plain.round_trips
    assert sorted(what for what, _ in cluster.sent[-3:]) == ["msearch", "msearch", "search"]
    assert plain.ids[0] == "a" and response.ids[:2] == ["b", "c"]  # the session's brand, then the profile's
    tastes = {h.id: (h.explanation.affinities if h.explanation else None) for h in response.hits}
    assert set(tastes["c"] or {}) == {"brand=Acme"} and set(tastes["b"] or {}) == {"brand=Zed"}  # the session's
    assert tastes["a"] is None
