"""UBI records -> click log -> grades -> a BEIR folder that ``read_beir`` (eval, tune) takes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from connector.errors import ConfigError
from connector.feedback.judgments import build_judgments, click_log_from_records, query_key, write_beir
from connector.quality.load import read_beir
from connector.ubi import UbiEvent, UbiQuery


def _click(qid: str, doc: str | None, action: str = "click", ordinal: int | None = None) -> UbiEvent:
    attrs: dict[str, object] = {}
    if doc is not None:
        attrs["object"] = {"object_id": doc}
    if ordinal is not None:
        attrs["position"] = {"ordinal": ordinal}
    return UbiEvent.model_validate(
        {"action_name": action, "client_id": "c", "query_id": qid, "event_attributes": attrs}
    )


def _records(searches: int = 60) -> tuple[list[UbiQuery], list[UbiEvent]]:
    """'red tent' shoppers: d1 and d2 swap places; d1 is clicked whenever seen, d3 bought now and then."""
    queries: list[UbiQuery] = []
    events: list[UbiEvent] = []
    for i in range(searches):
        hits = ["d1", "d2", "d3", "d4"] if i % 2 else ["d2", "d1", "d3", "d4"]
        qid = f"s{i}"
        queries.append(
            UbiQuery(query_id=qid, user_query="Red  Tent" if i % 3 else "red tent", query_response_hit_ids=hits)
        )
        events.append(_click(qid, "d1"))
        if i % 4 == 0:
            events.append(_click(qid, "d3", "purchase"))
        if i % 10 == 0:
            events.append(_click(qid, "d2"))
    queries.append(UbiQuery(query_id="rare", user_query="lamp", query_response_hit_ids=["d9"]))
    return queries, events


def test_searches_join_events_by_query_id_and_group_by_text() -> None:
    queries, events = _records()
    events.append(_click("s1", None, ordinal=4))  # no object id: the ordinal places it
    events.append(_click("unknown", "d1"))
    log, texts = click_log_from_records(queries, events)
    assert query_key("  Red  Tent ") == "red tent" and set(texts) == {"red tent", "lamp"}
    assert log.searches == 61 and log.depth == 4
    d4 = log.pairs.index(("red tent", "d4"))
    assert log.pair_counts(log.clicks)[d4] == 1
    d3 = log.pairs.index(("red tent", "d3"))
    assert log.pair_counts(log.purchases)[d3] == 15 and log.pair_counts(log.clicks)[d3] == 15


def test_impression_events_cut_what_was_shown() -> None:
    q = UbiQuery(query_id="s", user_query="tent", query_response_hit_ids=["a", "b", "c"])
    log, _ = click_log_from_records([q], [_click("s", "a", "impression", ordinal=2)])
    assert log.shown.tolist() == [[0, 1]]


@pytest.mark.parametrize("model", ["coec", "pbm", "sdbn"])
def test_grades_and_the_beir_folder(tmp_path: Path, model: str) -> None:
    queries, events = _records()
    judgments = build_judgments(queries, events, model=model, min_impressions=10)  # type: ignore[arg-type]
    (qid,) = judgments.queries  # "lamp" was shown once: below min_impressions, no grade
    grades = judgments.qrels[qid]
    assert grades["d3"] == 3  # bought: weighs most
    assert grades["d1"] > grades["d2"] == 0  # d1 is clicked wherever it is shown, d2 rarely
    root = write_beir(judgments, tmp_path / "clicks")
    dataset = read_beir(root)
    assert dataset.queries == {qid: "red tent"} and dataset.qrels == judgments.qrels
    assert (root / "judgments.json").exists()


def test_purchases_weigh_more_than_clicks() -> None:
    queries = [UbiQuery(query_id=f"s{i}", user_query="q", query_response_hit_ids=["a", "b"]) for i in range(40)]
    events = [_click(f"s{i}", "a") for i in range(0, 40, 2)] + [_click(f"s{i}", "b") for i in range(1, 40, 2)]
    events += [_click(f"s{i}", "b", "purchase") for i in range(1, 40, 2)]
    judgments = build_judgments(queries, events, model="coec", min_impressions=5, purchase_weight=2.0)
    grades = next(iter(judgments.qrels.values()))
    assert grades["b"] == 3 and grades["a"] < 3


def test_query_ids_can_be_kept_and_errors_say_what_to_do() -> None:
    queries, events = _records()
    judgments = build_judgments(queries, events, query_ids={"red tent": "42"})
    assert list(judgments.queries) == ["42"]
    with pytest.raises(ConfigError, match="min_impressions"):
        build_judgments(queries, events, min_impressions=0)
    with pytest.raises(ConfigError, match="empty"):
        build_judgments([], events)
    assert np.isfinite(judgments.to_json()["judged_pairs"])
