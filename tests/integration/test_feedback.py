"""The feedback loop on the real servers: the UBI logger, import/export, judgments from the indexes, promote."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.cli import main
from connector.cluster.client import Cluster
from connector.errors import ConfigError
from connector.feedback import (
    ExperimentSpec,
    build_judgments,
    export_records,
    import_records,
    promote,
    read_events,
    read_queries,
    report_experiment,
    team_draft,
)
from connector.quality.load import read_beir
from connector.ubi import UbiEvent, UbiLogger, UbiQuery, read_events_jsonl, write_jsonl
from mappings.search_defaults import search_defaults_of
from mappings.system import ubi_events_index_body, ubi_queries_index_body

pytestmark = [pytest.mark.integration]


@pytest.fixture
def ubi_names(cluster: Cluster) -> Iterator[tuple[str, str]]:
    tag = uuid.uuid4().hex[:8]
    names = (f"test-ubi-queries-{tag}", f"test-ubi-events-{tag}")
    yield names
    for name in names:
        cluster.delete_index(name)


def _session(i: int, arms: tuple[str, str] = ("ctrl", "test")) -> tuple[UbiQuery, list[UbiEvent]]:
    merged = team_draft(
        ["d1", "d2", "d3", "d4"], ["d3", "d1", "d5", "d6"], arms=arms, seed=f"exp|c{i % 7}|tent {i % 3}"
    )
    query = UbiQuery(
        query_id=f"s{i}",
        client_id=f"c{i % 7}",
        user_query=f"tent {i % 3}",
        query_response_hit_ids=merged.ids,
        query_attributes={"experiment": "exp", "arm": "interleaved", "hit_arms": merged.arms},
    )
    click = {"action_name": "click", "client_id": f"c{i % 7}", "query_id": f"s{i}",
             "event_attributes": {"object": {"object_id": "d3"}, "position": {"ordinal": merged.ids.index("d3") + 1}}}  # fmt: skip
    events = [UbiEvent.model_validate(click)]
    if i % 5 == 0:
        events.append(UbiEvent.model_validate({**click, "action_name": "purchase"}))
    return query, events


def test_logger_writes_every_accepted_record(cluster: Cluster, ubi_names: tuple[str, str]) -> None:
    queries_index, events_index = ubi_names
    with UbiLogger(cluster, queries_index=queries_index, events_index=events_index, flush_interval_s=0.05) as ubi:
        for i in range(120):
            query, events = _session(i)
            assert ubi.log_query(query)
            assert ubi.offer(events) == len(events)
        assert not ubi.log_event({"action_name": "click"})  # invalid: refused, counted, never raised
        assert ubi.flush(timeout_s=30)
    assert (ubi.failed, ubi.dropped) == (0, 1)
    assert ubi.written == 120 + 120 + 24
    cluster.refresh(queries_index)
    cluster.refresh(events_index)
    assert cluster.count(queries_index) == 120 and cluster.count(events_index) == 144
    mapping = cluster.get_mapping(events_index)
    assert mapping["_meta"]["eshybrid"]["kind"] == "ubi_events"
    hits = cluster.search(events_index, {"query": {"term": {"event_attributes.object.object_id": "d3"}}, "size": 0})
    assert hits["hits"]["total"]["value"] == 144
    read = list(read_queries(cluster, queries_index))
    assert len(read) == 120 and {q.query_id for q in read} == {f"s{i}" for i in range(120)}


def test_a_full_queue_refuses_and_counts(cluster: Cluster, ubi_names: tuple[str, str]) -> None:
    queries_index, events_index = ubi_names
    ubi = UbiLogger(cluster, queries_index=queries_index, events_index=events_index, queue_size=5, batch_size=5)
    events = [e for i in range(40) for e in _session(i)[1]]
    accepted = ubi.offer(events)
    ubi.close(timeout_s=30)
    assert accepted < len(events)
    assert ubi.dropped == len(events) - accepted
    assert ubi.written == accepted and ubi.failed == 0


def test_existing_indexes_are_used_as_they_are(cluster: Cluster, ubi_names: tuple[str, str]) -> None:
    queries_index, events_index = ubi_names
    body = ubi_queries_index_body()
    body["mappings"]["_meta"] = {"owner": "someone else"}
    cluster.create_index(queries_index, body)
    with UbiLogger(cluster, queries_index=queries_index, events_index=events_index) as ubi:
        ubi.log_query(_session(1)[0])
    assert cluster.get_mapping(queries_index)["_meta"] == {"owner": "someone else"}


def test_import_export_judgments_and_report(
    cluster: Cluster, ubi_names: tuple[str, str], tmp_path: Path, cluster_url: str
) -> None:
    queries_index, events_index = ubi_names
    sessions = [_session(i) for i in range(90)]
    write_jsonl(tmp_path / "q.jsonl", [q for q, _ in sessions])
    write_jsonl(tmp_path / "e.jsonl", [e for _, es in sessions for e in es])
    counts = import_records(
        cluster,
        queries_jsonl=tmp_path / "q.jsonl",
        events_jsonl=tmp_path / "e.jsonl",
        queries_index=queries_index,
        events_index=events_index,
    )
    assert (counts.queries, counts.events, counts.failed) == (90, 108, 0)
    # A stored document that is not a valid record is skipped, not fatal.
    cluster.bulk([{"index": {"_index": events_index}}, {"action_name": "click"}], refresh=True)
    out = export_records(cluster, events_jsonl=tmp_path / "out.jsonl", events_index=events_index)
    assert (out.events, out.skipped) == (108, 1)
    assert len(list(read_events_jsonl(tmp_path / "out.jsonl"))) == 108

    judgments = build_judgments(read_queries(cluster, queries_index), read_events(cluster, events_index))
    assert len(judgments.queries) == 3 and all(docs["d3"] == 3 for docs in judgments.qrels.values())
    rc = main(["judgments", "--url", cluster_url, "--queries-index", queries_index, "--events-index", events_index,
               "--out", str(tmp_path / "clicks")])  # fmt: skip
    assert rc == 0 and read_beir(tmp_path / "clicks").qrels == judgments.qrels

    spec = ExperimentSpec.model_validate({"name": "exp", "arms": {"ctrl": {}, "test": {}}})
    report = report_experiment(spec, read_queries(cluster, queries_index), read_events(cluster, events_index))
    assert report.searches == 90 and report.wins + report.losses == 90


def test_promote_writes_search_defaults_with_the_evidence(cluster: Cluster, ubi_names: tuple[str, str]) -> None:
    index = f"test-promote-{uuid.uuid4().hex[:8]}"
    cluster.create_index(index, {"mappings": {"_meta": {"other": 1}, "properties": {"title": {"type": "text"}}}})
    try:
        spec = ExperimentSpec.model_validate(
            {
                "name": "exp",
                "arms": {
                    "ctrl": {"fusion": {"method": "rrf"}},
                    "test": {
                        "fusion": {
                            "method": "linear",
                            "normalizer": "min_max",
                            "lexical_weight": 0.3,
                            "vector_weight": 0.7,
                        }
                    },
                },
            }  # fmt: skip
        )
        queries, events = [], []
        for i in range(60):
            q, es = _session(i)  # d3, clicked every time, is the test arm's first pick
            queries.append(q)
            events.extend(es)
        report = report_experiment(spec, queries, events)
        weak = report_experiment(spec, queries[:3], events[:3])
        with pytest.raises(ConfigError, match="no significant winner"):
            promote(cluster, index, spec, weak)
        written = promote(cluster, index, spec, report)
        meta = cluster.get_mapping(index)["_meta"]
        assert meta["other"] == 1
        stored = search_defaults_of(meta)
        assert stored == json.loads(json.dumps(written))
        assert stored is not None and stored["fusion"]["lexical_weight"] == 0.3
        assert stored["chosen_by"] == "eshybrid experiment promote"
        assert stored["evidence"]["winner"] == report.winner and stored["evidence"]["p_value"] < 0.05
    finally:
        cluster.delete_index(index)


def test_bodies_are_accepted(cluster: Cluster, ubi_names: tuple[str, str]) -> None:
    for name, body in zip(ubi_names, (ubi_queries_index_body(), ubi_events_index_body())):
        cluster.create_index(name, body)
        assert cluster.get_mapping(name)["dynamic"] in (False, "false")


def test_both_drivers_record_shoppers_searches(cluster: Cluster, ubi_names: tuple[str, str], cluster_url: str) -> None:
    import asyncio

    from connector.cluster.aio import aconnect
    from connector.search import AsyncHybridSearch, HybridSearch
    from connector.search.experiment import experiment_search

    queries_index, events_index = ubi_names
    index = f"test-ubi-products-{uuid.uuid4().hex[:8]}"
    cluster.create_index(index, {"mappings": {"properties": {"title": {"type": "text"}}}})
    lines: list[dict[str, object]] = []
    for i, word in enumerate(["red", "blue", "green", "dome", "tunnel"]):
        lines += [{"index": {"_index": index, "_id": f"p{i}"}}, {"title": f"{word} tent"}]
    cluster.bulk(lines, refresh=True)
    ubi = UbiLogger(cluster, queries_index=queries_index, events_index=events_index, flush_interval_s=0.05)
    try:
        search = HybridSearch(cluster, index, ubi=ubi, lexical_fields={"title": 1.0})
        recorded = search.search("tent", mode="bm25", size=3, client_id="c-1", session_id="s-1")
        unrecorded = search.search("tent", mode="bm25", size=3)  # evaluation, tuning: no client_id, no record
        spec = ExperimentSpec.model_validate(
            {"name": "exp", "arms": {"ctrl": {"mode": "bm25"}, "test": {"mode": "bm25", "fusion": {"method": "rrf"}}}}
        )
        shown, arms = experiment_search(search, "red tent", spec=spec, client_id="c-2", size=3)

        async def run_async() -> str:
            async with await aconnect(cluster_url) as acluster:
                asearch = AsyncHybridSearch(acluster, index, ubi=ubi, lexical_fields={"title": 1.0})
                response = await asearch.search("dome tent", mode="bm25", size=2, client_id="c-3")
                return response.query_id

        async_id = asyncio.run(run_async())
        assert ubi.flush(timeout_s=30)
    finally:
        ubi.close()
        cluster.delete_index(index)
    assert (ubi.written, ubi.failed) == (3, 0)
    cluster.refresh(queries_index)
    records = {q.query_id: q for q in read_queries(cluster, queries_index)}
    assert set(records) == {recorded.query_id, shown.query_id, async_id}
    assert unrecorded.query_id not in records
    first = records[recorded.query_id]
    assert first.query_response_hit_ids == recorded.ids and first.session_id == "s-1" and first.client_id == "c-1"
    assert first.query_attributes is not None and first.query_attributes.configuration == "bm25"
    exp = records[shown.query_id].query_attributes
    assert exp is not None and exp.experiment == "exp" and exp.hit_arms == arms["hit_arms"]
