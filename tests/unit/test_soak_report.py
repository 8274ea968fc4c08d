"""The soak's bookkeeping (tests/fixtures/soak.py): what counts as degraded, flagged, a helper's 5xx, recovery."""

from __future__ import annotations

import math
import random
from typing import Any

from tests.fixtures.soak import MALFORMED, Phase, Sample, Workload, classify, phase_report, typo


def _hit(vector_rank: int | None) -> dict[str, Any]:
    return {"id": "p1", "explanation": {"vector": {"rank": vector_rank, "weight": 0.3}}}


def test_degraded_is_read_from_the_answer_and_needs_its_own_flag() -> None:
    both, one = {"strategy": "client"}, {"strategy": "single"}
    # a page of lexical-only hits is no degradation when both legs ran (the vector leg's hits ranked lower)
    assert classify("hybrid", 200, {"hits": [_hit(None)], **both}) == (False, False, None)
    assert classify("hybrid", 200, {"hits": [_hit(None)], **one}) == (True, False, None)  # one leg, no flag
    assert classify("hybrid", 200, {"hits": [_hit(None)], **one, "vector_fallback": True}) == (True, True, None)
    assert classify("knn", 200, {"hits": [_hit(2)], **one}) == (False, False, None)
    assert classify("knn", 200, {"hits": [_hit(None)], **one, "vector_fallback": True}) == (True, True, None)
    assert classify("hybrid", 200, {"hits": [], **one}) == (False, False, None)  # nothing to tell from
    # a rerank answer: both parts checked, each with its own flag
    assert classify("rerank", 200, {"hits": [_hit(1)], "reranked": True, **both}) == (False, False, None)
    assert classify("rerank", 200, {"hits": [_hit(1)], "rerank_fallback": True, **both}) == (True, True, None)
    assert classify("rerank", 200, {"hits": [_hit(None)], "reranked": True, **one}) == (True, False, None)
    assert classify("rerank", 200, {"hits": [_hit(None)], "rerank_fallback": True, **one}) == (True, False, None)
    assert classify("bm25", 200, {"hits": [_hit(None)]}) == (False, False, None)
    assert classify("hybrid", 503, {"error": {"type": "cluster_unavailable"}}) == (False, False, "cluster_unavailable")


def test_workload_mixes_modes_typos_filters_and_deep_pages() -> None:
    workload = Workload(["warm sleeping bag", "tent"], [{"term": {"in_stock": True}}])
    rng = random.Random(1)
    drawn = [workload.draw(rng) for _ in range(2000)]
    kinds = {kind: sum(1 for k, _ in drawn if k == kind) / len(drawn) for kind in ("rerank", "bm25", "knn", "hybrid")}
    assert 0.07 < kinds["rerank"] < 0.13 and 0.55 < kinds["hybrid"] < 0.75
    bodies = [body for _, body in drawn]
    assert any(b["text"] not in workload.queries for b in bodies)  # typos
    assert any("filters" in b for b in bodies) and any(b.get("page", 1) > 1 for b in bodies)
    assert all(b["mode"] == "hybrid+rerank" and "page" not in b for k, b in drawn if k == "rerank")
    assert typo("tent", random.Random(3)) != "tent" and typo("a b", random.Random(3)) == "a b"
    assert len({name for name, _, _ in MALFORMED}) == len(MALFORMED)


def test_phase_report_counts_and_recovers_within_the_helpers_window() -> None:
    phases = [
        Phase("warmup", None, 0.0, 10.0),
        Phase("embed_down", "embed", 10.0, 20.0, returned=19.0),
        Phase("embed_again", "embed", 20.0, 30.0, returned=29.0),
    ]
    samples = [
        Sample(1.0, 1.2, "hybrid", 200),
        Sample(11.0, 11.3, "hybrid", 200, degraded=True, flagged=True),
        Sample(12.0, 12.1, "knn", 200, degraded=True, flagged=False),
        Sample(13.0, 13.5, "hybrid", 503, error_type="cluster_unavailable"),
        Sample(14.0, 14.5, "hybrid", 500, error_type="server_error"),
        Sample(15.0, 30.0, "hybrid", 0),  # no answer at all: a helper's failure too
        Sample(19.5, 19.9, "bm25", 200),  # not a kind that uses the embedder
        Sample(21.0, 21.5, "hybrid", 200),  # after the next fault began: not this phase's recovery
    ]
    rows, figures = phase_report(samples, phases, fault_phases=("embed_down", "embed_again"))
    assert figures["helper_5xx"] == 2 and figures["cluster_5xx"] == 1 and figures["unflagged_degraded"] == 1
    by_name = {row["phase"]: row for row in rows}
    assert by_name["embed_down"]["recovery_s"] == math.inf and by_name["embed_down"]["unflagged"] == 1
    assert math.isclose(figures["p99_calm_ms"], 200.0)


def test_phase_report_names_the_tail_by_kind_and_when_it_started() -> None:
    phases = [Phase("embed_down", "embed", 100.0, 120.0)]
    samples = [Sample(100.0 + i * 0.1, 100.1 + i * 0.1, "bm25", 200) for i in range(150)]
    samples += [Sample(102.0, 103.5, "hybrid", 200), Sample(103.0, 104.4, "hybrid", 200)]
    samples += [Sample(110.0 + i * 0.1, 110.2 + i * 0.1, "hybrid", 200) for i in range(48)]
    (row,), _ = phase_report(samples, phases, fault_phases=("embed_down",), goal_ms=800)
    assert row["over_goal"] == 2  # the searches slower than the goal: which phase holds the p99 over it
    kinds = dict(part.split(":") for part in row["p99_by_kind"].split(","))
    assert kinds == {"bm25": "100", "hybrid": "1500"}  # 50 hybrid searches: the p99 is the slowest
    assert row["slowest_at_s"] == 2.5  # the two slow hybrid searches, 2 and 3 s into the phase
