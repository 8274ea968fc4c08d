"""``serve search --ubi`` on a real Ray Serve: query records, POST /events, experiments (ES 9, OpenSearch 3)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connector import connect
from connector.search.experiment import ExperimentSpec
from connector.ubi.intake import EventIntakeSettings
from mappings import TextField, build_index_body

pytestmark = [pytest.mark.integration, pytest.mark.ray]

PRODUCTS = [(f"p{i}", f"{word} tent", f"a {word} tent for camping") for i, word in enumerate(
    ["red", "blue", "green", "dome", "tunnel", "pop-up", "family", "ultralight"], start=1)]  # fmt: skip
SPEC = {"name": "fusion-test", "arms": {"ctrl": {"mode": "bm25"},
                                         "test": {"mode": "bm25", "fusion": {"method": "rrf"}}}}  # fmt: skip


@pytest.fixture(
    scope="module", params=[pytest.param("es9", marks=pytest.mark.es9), pytest.param("os3", marks=pytest.mark.os3)]
)
def served(request: pytest.FixtureRequest, ray_serve: Any) -> Iterator[dict[str, Any]]:
    from connector.search.app import build_search_app
    from connector.search.settings import SearchServiceSettings

    key = str(request.param)
    url = str(request.getfixturevalue(f"{key}_url"))
    tag = uuid.uuid4().hex[:8]
    index, queries, events = f"test-events-{tag}", f"test-ubi-q-{tag}", f"test-ubi-e-{tag}"
    with connect(url) as cluster:
        cluster.create_index(index, build_index_body(cluster.capabilities, text_fields=[TextField("title"), TextField("text")],
                                                     vector_fields=[], number_of_shards=1, number_of_replicas=0))  # fmt: skip
        lines: list[dict[str, Any]] = []
        for doc_id, title, text in PRODUCTS:
            lines += [{"index": {"_index": index, "_id": doc_id}}, {"title": title, "text": text}]
        assert not cluster.bulk(lines, refresh=True)["errors"]
        settings = SearchServiceSettings(
            cluster_url=url,
            index=index,
            num_cpus_per_replica=0.1,
            ubi=True,
            ubi_queries_index=queries,
            ubi_events_index=events,
            events=EventIntakeSettings(max_records=20, max_body_bytes=8192, rate_per_s=1000, burst=1000),
            experiment=ExperimentSpec.model_validate(SPEC),
        )
        name = f"events-{key}"
        base = ray_serve.deploy(build_search_app(settings), name=name, route_prefix=f"/{name}")
        try:
            yield {"base": base, "url": url, "queries": queries, "events": events}
        finally:
            ray_serve.delete(name)
            for name in (index, queries, events):
                cluster.delete_index(name)


def _event(query_id: str, doc: str, **extra: Any) -> dict[str, Any]:
    return {"action_name": "click", "query_id": query_id, "client_id": "c-1",
            "event_attributes": {"object": {"object_id": doc}, "position": {"ordinal": 1}}, **extra}  # fmt: skip


def _wait_written(served: dict[str, Any], at_least: int) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        stats = httpx.get(served["base"] + "/events/stats", timeout=10).json()
        if stats["logger"]["written"] >= at_least or time.monotonic() > deadline:
            return stats
        time.sleep(0.2)


def test_searches_events_and_experiments(served: dict[str, Any]) -> None:
    base = served["base"]
    plain = httpx.post(base + "/search", json={"text": "tent", "mode": "bm25", "size": 3}, timeout=60).json()
    shopper = httpx.post(base + "/search", json={"text": "tent", "mode": "bm25", "size": 4, "client_id": "c-1",
                                                 "session_id": "s-1"}, timeout=60).json()  # fmt: skip
    exp = httpx.post(base + "/search", json={"text": "camping tent", "size": 4, "client_id": "c-1",
                                             "experiment": "fusion-test"}, timeout=60)  # fmt: skip
    assert exp.status_code == 200, exp.text
    arms = exp.json()["experiment"]
    assert arms["experiment"] == "fusion-test" and len(arms["hit_arms"]) == len(exp.json()["hits"]) == 4

    good = [
        _event(shopper["query_id"], shopper["hits"][0]["id"]),
        _event(exp.json()["query_id"], exp.json()["hits"][1]["id"]),
    ]
    answer = httpx.post(base + "/events", json=[good[0], {**good[1], "index": "x"}, good[1]], timeout=30)
    assert answer.status_code == 202, answer.text
    assert answer.json()["accepted"] == 2 and answer.json()["rejected"][0]["field"] == "index"

    stats = _wait_written(served, 4)  # 2 query records (plain search: no client_id) + 2 events
    assert stats["logger"]["failed"] == 0 and stats["intake"]["invalid"] == 1
    with connect(served["url"]) as cluster:
        cluster.refresh(served["queries"])
        cluster.refresh(served["events"])
        found = cluster.search(served["queries"], {"size": 10})["hits"]["hits"]
        records = {h["_source"]["query_id"]: h["_source"] for h in found}
        assert set(records) == {shopper["query_id"], exp.json()["query_id"]}
        assert plain["query_id"] not in records
        assert records[shopper["query_id"]]["query_response_hit_ids"] == [h["id"] for h in shopper["hits"]]
        assert records[shopper["query_id"]]["session_id"] == "s-1"
        assert records[exp.json()["query_id"]]["query_attributes"]["hit_arms"] == arms["hit_arms"]
        assert cluster.count(served["events"]) == 2


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{not json", 400, "body"),
        (b"[" + b",".join([b'{"action_name":"click","client_id":"c"}'] * 21) + b"]", 413, "events"),
        (b'{"action_name":"click","client_id":"c","message":"' + b"x" * 9000 + b'"}', 413, "body"),
        (b'[{"action_name":"click"}]', 400, "client_id"),
    ],
)
def test_bad_bodies_get_4xx_naming_the_field(served: dict[str, Any], body: bytes, status: int, field: str) -> None:
    answer = httpx.post(
        served["base"] + "/events", content=body, headers={"content-type": "application/json"}, timeout=30
    )
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["field"] == field


def test_experiment_errors_name_the_field(served: dict[str, Any]) -> None:
    base = served["base"]
    other = httpx.post(base + "/search", json={"text": "tent", "client_id": "c", "experiment": "nope"}, timeout=60)
    assert other.status_code == 400 and other.json()["error"]["field"] == "experiment"
    anonymous = httpx.post(base + "/search", json={"text": "tent", "experiment": "fusion-test"}, timeout=60)
    assert anonymous.status_code == 400 and anonymous.json()["error"]["field"] == "client_id"
