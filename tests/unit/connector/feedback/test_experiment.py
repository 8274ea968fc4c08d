"""Team-draft interleaving, the A/B split, and the experiment report's figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connector.errors import ConfigError
from connector.feedback.experiment import (
    ExperimentSpec,
    report_experiment,
    searches_needed_ab,
    searches_needed_interleave,
    sign_test_p,
)
from connector.ubi import UbiEvent, UbiQuery
from connector.ubi.interleave import assign_arm, credit_clicks, team_draft

A = ["a1", "a2", "a3", "s1", "a4"]
B = ["s1", "b1", "a1", "b2", "b3"]


def test_team_draft_takes_turns_and_credits_each_hit() -> None:
    merged = team_draft(A, B, arms=("ctrl", "test"), seed="exp|client-1|red tent", size=6)
    assert len(merged.ids) == len(set(merged.ids)) == 6
    for doc, arm in zip(merged.ids, merged.arms):
        assert doc in (A if arm == "ctrl" else B)
    # Each arm's picks keep its own order, and the teams never differ by more than one pick.
    for arm, ranking in (("ctrl", A), ("test", B)):
        picked = [d for d, a in zip(merged.ids, merged.arms) if a == arm]
        assert picked == sorted(picked, key=ranking.index)
    for k in range(1, 7):
        counts = merged.arms[:k]
        assert abs(counts.count("ctrl") - counts.count("test")) <= 1 or k % 2


def test_team_draft_is_sticky_and_fair() -> None:
    seed = "exp|client-1|red tent"
    assert team_draft(A, B, seed=seed) == team_draft(A, B, seed=seed)
    firsts = [team_draft(A, B, seed=f"exp|client-{i}|q").arms[0] for i in range(2000)]
    assert 0.45 < firsts.count("a") / 2000 < 0.55
    same = team_draft(A, A, seed=3, size=4)
    assert same.ids == A[:4]


def test_ab_assignment_is_sticky_and_split() -> None:
    arms = [assign_arm("exp", f"client-{i}", ("ctrl", "test"), split=0.3) for i in range(4000)]
    assert 0.27 < arms.count("ctrl") / 4000 < 0.33
    assert assign_arm("exp", "client-7", ("ctrl", "test")) == assign_arm("exp", "client-7", ("ctrl", "test"))
    with pytest.raises(ConfigError):
        assign_arm("exp", "c", ("a",))


def test_credit_clicks() -> None:
    arms = ["a", "b", "a", "b"]
    assert credit_clicks(arms, [0, 2, 3], "a") == "win"
    assert credit_clicks(arms, [1], "a") == "loss"
    assert credit_clicks(arms, [0, 1], "a") == "tie"
    assert credit_clicks(arms, [], "a") == "no_click"
    assert credit_clicks(arms, [9], "a") == "no_click"


def test_sign_test_and_sample_sizes_match_known_values() -> None:
    assert sign_test_p(0, 0) == 1.0
    assert sign_test_p(5, 5) == 1.0
    assert sign_test_p(9, 1) == pytest.approx(0.021484375)  # 2 * 11 / 1024
    assert sign_test_p(60, 40) == pytest.approx(0.0569, abs=1e-4)
    # 55% wins among decisive searches, half the searches decisive: ~783 decisive -> ~1566 searches.
    assert searches_needed_interleave(55, 45, 200) == pytest.approx(1566, rel=0.02)
    assert searches_needed_interleave(5, 5, 20) is None
    assert searches_needed_ab(1.0, 1.0, 1.1, 1.0) == pytest.approx(2 * 1570, rel=0.01)


def _spec(mode: str = "interleave") -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "name": "fusion-test",
            "mode": mode,
            "arms": {"ctrl": {"fusion": {"method": "rrf"}}, "test": {"fusion": {"method": "linear"}}},
        }
    )


def _click(qid: str, doc: str, action: str = "click") -> UbiEvent:
    return UbiEvent.model_validate(
        {"action_name": action, "client_id": "c", "query_id": qid, "event_attributes": {"object": {"object_id": doc}}}
    )


def test_interleaved_report() -> None:
    queries, events = [], []
    for i in range(40):
        merged = team_draft(A, B, arms=("ctrl", "test"), seed=f"fusion-test|c{i}|q", size=4)
        attrs = {"experiment": "fusion-test", "arm": "interleaved", "hit_arms": merged.arms}
        queries.append(
            UbiQuery(query_id=f"s{i}", user_query="q", query_response_hit_ids=merged.ids, query_attributes=attrs)
        )
        if i < 36:  # the test arm's hit is clicked in 30 searches, the control's in 6; 4 without a click
            arm = "test" if i < 30 else "ctrl"
            events.append(_click(f"s{i}", merged.ids[merged.arms.index(arm)]))
    queries.append(UbiQuery(query_id="other", user_query="q", query_response_hit_ids=["x"]))
    report = report_experiment(_spec(), queries, events)
    assert (report.searches, report.wins, report.losses, report.ties, report.no_click) == (40, 6, 30, 0, 4)
    assert report.preference == pytest.approx(6 / 36 - 0.5)
    assert report.p_value == pytest.approx(sign_test_p(6, 30)) and report.p_value < 0.001
    assert report.winner == "test" and report.more_searches_needed == 0
    assert "winner: test" in report.format_text()
    assert json.loads(json.dumps(report.to_json()))["wins"] == 6


def test_ab_report() -> None:
    queries, events = [], []
    for i in range(400):
        arm = "ctrl" if i % 2 else "test"
        queries.append(
            UbiQuery(
                query_id=f"s{i}",
                user_query="q",
                query_response_hit_ids=["d1", "d2"],
                query_attributes={"experiment": "fusion-test", "arm": arm},
            )
        )
        if arm == "test" or i % 4 == 1:
            events.append(_click(f"s{i}", "d2" if arm == "ctrl" else "d1"))
        if arm == "test" and i % 8 == 0:
            events.append(_click(f"s{i}", "d1", "purchase"))
    report = report_experiment(_spec("ab"), queries, events)
    figures = report.to_json()["per_arm"]
    assert figures["test"]["ctr"] == 1.0 and figures["ctrl"]["ctr"] == 0.5
    assert figures["ctrl"]["mrr@10"] == 0.25 and figures["test"]["purchases_per_search"] == 0.25
    assert report.winner == "test" and report.p_value < 1e-6


def test_spec_errors_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "exp.json"
    path.write_text(json.dumps({"name": "x", "arms": {"a": {}, "b": {"fusion": {"method": "bogus"}}}}))
    with pytest.raises(ConfigError, match=r"arms\.b\.fusion\.method"):
        ExperimentSpec.from_file(path)
    path.write_text(json.dumps({"name": "x", "arms": {"a": {}}}))
    with pytest.raises(ConfigError, match="exactly two arms"):
        ExperimentSpec.from_file(path)
