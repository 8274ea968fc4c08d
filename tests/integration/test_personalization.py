"""Personalization on the four real servers: profiles built from events, the personal signal in search.

The products and the query table are test_hybrid_search.py's (red products near [1,0,0,0], blue
ones far; ``color`` a keyword field: the default affinity field); a "blue" shopper's history is a few
blue products, a "red" one's a few red products.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from connector.cluster.client import Cluster
from connector.errors import ModelMismatchError, SearchRequestError
from connector.jobs.profiles import BadEvent, build_profiles
from connector.search import AsyncHybridSearch, HybridSearch
from connector.search.personal import DEFAULT_SHRINKAGE, MIN_EVENTS, UserProfile
from connector.ubi.logger import UbiLogger
from tests.integration.test_hybrid_search import QUERY_VECTORS, TableEmbedder, corpus, create_index
from tests.integration.test_hybrid_search_async import ThreadedAsyncCluster

pytestmark = [pytest.mark.integration]

T0 = "2026-11-01T12:00:00Z"


def _events(user: str, products: list[str], kind: str = "view") -> list[dict[str, Any]]:
    return [{"user_id": user, "product_id": p, "kind": kind, "timestamp": T0} for p in products]


EVENTS: list[Any] = [
    *_events("blue-fan", ["d14", "d15", "d16"]),
    *_events("blue-fan", ["d20"], kind="purchase"),
    *_events("red-fan", ["d03", "d04", "d05"], kind="cart"),
    *_events("newcomer", ["d20"]),  # below MIN_EVENTS: cold start
    {"user_id": "blue-fan", "product_id": "no-such-product", "kind": "view", "timestamp": T0},
    {"user_id": "blue-fan", "product_id": "d14", "kind": "wishlist", "timestamp": T0},
    {"user_id": "blue-fan", "product_id": "d14", "kind": "view", "timestamp": "yesterday"},
    {"user_id": "blue-fan", "kind": "view", "timestamp": T0},
    ["not", "an", "object"],
    BadEvent(99, "bad_json", "not JSON"),
]


@pytest.fixture
def shop(cluster: Cluster, index_name: str) -> tuple[str, str]:
    create_index(cluster, index_name, corpus())
    profiles = f"{index_name}-profiles"
    report = build_profiles(cluster, enumerate(EVENTS, start=1), index=index_name, profiles_index=profiles)
    assert (report.profiles_created, report.profiles_updated, report.write_failures) == (3, 0, 0)
    assert report.events_used == 8 and report.events_read == len(EVENTS)
    assert dict(report.bad_events) == {
        "unknown_product": 1,
        "unknown_kind": 1,
        "bad_timestamp": 1,
        "missing_field": 1,
        "bad_type": 1,
        "bad_json": 1,
    }
    return index_name, profiles


def _search(cluster: Cluster, shop: tuple[str, str], **options: Any) -> HybridSearch:
    index, profiles = shop
    return HybridSearch(
        cluster, index, embedder=TableEmbedder(QUERY_VECTORS), max_depth=24, profiles_index=profiles, **options
    )


def _blue_share(ids: list[str]) -> int:
    return sum(1 for i in ids if int(i[1:]) >= 12)


def test_profiles_are_stored_and_updated_incrementally(cluster: Cluster, shop: tuple[str, str]) -> None:
    index, profiles = shop
    doc = cluster.request("GET", f"/{profiles}/_doc/red-fan").body["_source"]
    assert doc["model_id"] == "test/hand-made" and doc["event_count"] == 3 and doc["index"] == index
    assert len(doc["vector"]) == 4 and "history" not in doc
    # the default affinity fields: the keyword fields with a moderate number of values (color: red/blue)
    assert doc["affinity_fields"] == ["color"] and doc["affinities"] == {"color": {"red": 9.0}}
    later = _events("red-fan", ["d06", "d07"], kind="purchase")
    for event in later:
        event["timestamp"] = "2026-11-20T12:00:00Z"
    report = build_profiles(cluster, enumerate(later, 1), index=index, profiles_index=profiles, keep_history=True)
    assert (report.profiles_created, report.profiles_updated, report.events_used) == (0, 1, 2)
    doc = cluster.request("GET", f"/{profiles}/_doc/red-fan").body["_source"]
    assert doc["event_count"] == 5 and doc["as_of"] == "2026-11-20T12:00:00Z"
    assert doc["affinities"]["color"]["red"] == pytest.approx(9.0 * 0.5 ** (19 / 30) + 10.0, abs=1e-5)
    assert [h["product_id"] for h in doc["history"]] == ["d06", "d07"]


def test_personal_signal_reorders_the_query_candidates_only(cluster: Cluster, shop: tuple[str, str]) -> None:
    search = _search(cluster, shop)
    plain = search.search("camping gear", size=24, strategy="client", source=False)
    shopper = {"personal_weight": 0.3}  # pinned: the assertions below do not follow the default
    blue = search.search("camping gear", size=24, user="blue-fan", source=False, explain=True, **shopper)
    red = search.search("camping gear", size=24, user="red-fan", source=False, **shopper)
    assert set(blue.ids) == set(plain.ids) == set(red.ids)  # reordered, nothing brought in
    assert blue.candidates == plain.candidates
    assert _blue_share(blue.ids[:8]) > _blue_share(plain.ids[:8]) > _blue_share(red.ids[:8]) - 8
    assert _blue_share(red.ids[:8]) < _blue_share(blue.ids[:8])
    assert blue.user == "blue-fan" and blue.personal_weight is not None and blue.personal_weight > 0
    assert blue.strategy == "client" and blue.fusion is not None and "personal=" in blue.fusion.describe()
    top = blue.hits[0].explanation
    assert top is not None and top.signals is not None and blue.ids[0] >= "d12"
    personal = top.signals["personal"]
    taste = 8.0 / (8.0 + DEFAULT_SHRINKAGE)  # every blue-fan event on a blue product
    assert personal.weight == pytest.approx(0.3 * taste) and personal.contribution > 0
    assert top.affinities == pytest.approx({"color=blue": taste})  # which affinity moved it
    # pages are slices of one personalized ranking
    pages = [
        search.search("camping gear", size=6, page=p, user="blue-fan", source=False, **shopper).ids for p in (1, 2)
    ]
    assert pages[0] + pages[1] == blue.ids[:12]


def test_cold_start_and_zero_weight_change_nothing(cluster: Cluster, shop: tuple[str, str]) -> None:
    search = _search(cluster, shop)
    plain = search.search("camping gear", size=10, strategy="client", source=False)
    for response in (
        search.search("camping gear", size=10, strategy="client", user="nobody-known", source=False),
        search.search("camping gear", size=10, strategy="client", user="newcomer", source=False),
        search.search("camping gear", size=10, strategy="client", user="blue-fan", personal_weight=0.0, source=False),
    ):
        assert [(h.id, h.score) for h in response.hits] == [(h.id, h.score) for h in plain.hits]
        assert response.personal_weight is None and "personal_weight" not in response.model_dump()
    assert MIN_EVENTS > 1
    # with the default strategy, an unknown shopper keeps whatever form the plain search uses (server-side too)
    auto = search.search("camping gear", size=10, source=False)
    cold = search.search("camping gear", size=10, source=False, user="nobody-known")
    assert (cold.strategy, cold.server_form, cold.ids) == (auto.strategy, auto.server_form, auto.ids)
    with pytest.raises(SearchRequestError) as err:
        search.search("camping gear", size=10, user="blue-fan", strategy="server")
    assert err.value.field == "strategy"  # type: ignore[attr-defined]


def test_single_leg_modes_async_and_errors(cluster: Cluster, shop: tuple[str, str]) -> None:
    search = _search(cluster, shop)
    bm25 = search.search("camping gear", mode="bm25", size=24, user="blue-fan", source=False)
    plain = search.search("camping gear", mode="bm25", size=24, source=False)
    assert set(bm25.ids) == set(plain.ids) and _blue_share(bm25.ids[:8]) >= _blue_share(plain.ids[:8])
    assert bm25.strategy == "client" and plain.strategy == "single"
    stranger = UserProfile("x", (1.0, 0.0, 0.0, 0.0), event_count=5, model_id="another/model")
    with pytest.raises(ModelMismatchError):
        search.search("camping gear", user=stranger)
    with pytest.raises(SearchRequestError) as err:
        search.search("camping gear", user="blue-fan", personal_weight=-1.0)
    assert err.value.field == "personal_weight"  # type: ignore[attr-defined]
    index, profiles = shop

    async def run() -> list[str]:
        asearch = AsyncHybridSearch(
            ThreadedAsyncCluster(cluster),
            index,
            embedder=TableEmbedder(QUERY_VECTORS),
            max_depth=24,
            profiles_index=profiles,
        )
        response = await asearch.search("camping gear", size=24, user="blue-fan", source=False)
        return response.ids

    sync_ids = search.search("camping gear", size=24, user="blue-fan", source=False).ids
    assert asyncio.run(run()) == sync_ids


def test_profiles_build_command(
    cluster_url: str, cluster: Cluster, index_name: str, tmp_path: Any, capsys: Any
) -> None:
    import json

    from connector.cli.main import main

    create_index(cluster, index_name, corpus())
    events = tmp_path / "events.jsonl"
    lines = [json.dumps(e) for e in _events("cli-user", ["d01", "d02", "d03"])] + ["{not json", '{"user_id": 3}']
    events.write_text("\n".join(lines) + "\n")
    profiles = f"{index_name}-profiles"
    argv = ["profiles", "build", "--events", str(events), "--index", index_name, "--profiles-index", profiles]
    assert main([*argv, "--url", cluster_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["profiles_created"] == 1 and report["events_used"] == 3
    assert report["bad_events"] == {"bad_json": 1, "missing_field": 1}
    assert main([*argv, "--url", cluster_url]) == 0  # again: an update
    assert "1 updated" in capsys.readouterr().out
    assert cluster.request("GET", f"/{profiles}/_doc/cli-user").body["_source"]["event_count"] == 6


def test_the_session_counts_more_than_the_profile(cluster: Cluster, shop: tuple[str, str]) -> None:
    index, profiles = shop
    events_index = f"{index}-ubi-events"
    with UbiLogger(cluster, events_index=events_index, queries_index=f"{index}-ubi-queries") as ubi:
        try:
            for product in ("d17", "d18", "d19"):  # a red-fan now carting blue products
                assert ubi.log_event(
                    {"action_name": "add_to_cart", "client_id": "red-fan", "session_id": "s-now",
                     "event_attributes": {"object": {"object_id": product}}}
                )  # fmt: skip
            assert ubi.flush()
            cluster.refresh(events_index)
            search = _search(cluster, shop, ubi=ubi)
            options: dict[str, Any] = {"size": 24, "source": False, "personal_weight": 0.3}
            old = search.search("camping gear", user="red-fan", **options)
            now = search.search("camping gear", user="red-fan", session_id="s-now", explain=True, **options)
            other = search.search("camping gear", user="blue-fan", session_id="s-now", **options)
            assert _blue_share(now.ids[:8]) > _blue_share(old.ids[:8])
            # red 9 of (9 + 2 x 9 session + shrinkage) now, blue 18 of it
            top = now.hits[0].explanation
            assert top is not None and top.affinities == pytest.approx(
                {"color=blue": 18.0 / (27.0 + DEFAULT_SHRINKAGE)}
            )
            # another shopper's session id reads nothing of red-fan's session
            assert other.ids == search.search("camping gear", user="blue-fan", **options).ids
        finally:
            cluster.delete_index(events_index)
            cluster.delete_index(f"{index}-ubi-queries")


def test_profiles_build_from_ubi_events_with_chosen_fields(
    cluster_url: str, cluster: Cluster, index_name: str, capsys: Any
) -> None:
    import json

    from connector.cli.main import main

    create_index(cluster, index_name, corpus())
    events_index, profiles = f"{index_name}-ubi-events", f"{index_name}-profiles"
    try:
        with UbiLogger(cluster, events_index=events_index, queries_index=f"{index_name}-ubi-queries") as ubi:
            for action, product in (
                ("impression", "d01"),
                ("click", "d01"),
                ("add_to_cart", "d02"),
                ("purchase", "d03"),
            ):
                ubi.log_event({"action_name": action, "client_id": "ubi-shopper", "session_id": "s1",
                               "event_attributes": {"object": {"object_id": product}}})  # fmt: skip
            assert ubi.flush()
        cluster.refresh(events_index)
        argv = ["profiles", "build", "--ubi-events", events_index, "--index", index_name, "--profiles-index", profiles]
        assert main([*argv, "--affinity-fields", "color, price", "--url", cluster_url, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["profiles_created"] == 1 and report["events_used"] == 3  # the impression says nothing
        assert report["affinity_fields"] == ["color", "price"]
        doc = cluster.request("GET", f"/{profiles}/_doc/ubi-shopper").body["_source"]
        assert doc["affinities"]["color"] == {"red": pytest.approx(9.0, abs=1e-3)}  # 1 + 3 + 5, minutes apart
        assert set(doc["affinities"]["price"]) == {"11", "12", "13"}  # a numeric field's doc values, as text
    finally:
        cluster.delete_index(events_index)
        cluster.delete_index(f"{index_name}-ubi-queries")
        cluster.delete_index(profiles)
