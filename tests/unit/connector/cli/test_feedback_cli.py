"""``eshybrid judgments`` and ``experiment report`` on JSON lines: no cluster needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connector.cli import main
from connector.quality.load import read_beir
from connector.ubi import UbiEvent, UbiQuery, write_jsonl
from connector.ubi.interleave import team_draft


def _files(tmp_path: Path) -> tuple[Path, Path]:
    queries, events = [], []
    for i in range(30):
        merged = team_draft(["d1", "d2", "d3"], ["d3", "d4", "d1"], arms=("ctrl", "test"), seed=f"e|c{i}|tent")
        queries.append(
            UbiQuery(
                query_id=f"s{i}",
                client_id=f"c{i}",
                user_query="tent",
                query_response_hit_ids=merged.ids,
                query_attributes={"experiment": "e", "arm": "interleaved", "hit_arms": merged.arms},
            )
        )
        events.append(
            UbiEvent.model_validate(
                {
                    "action_name": "click",
                    "client_id": f"c{i}",
                    "query_id": f"s{i}",
                    "event_attributes": {"object": {"object_id": "d3"}},
                }
            )  # fmt: skip
        )
    q, e = tmp_path / "q.jsonl", tmp_path / "e.jsonl"
    write_jsonl(q, queries)
    write_jsonl(e, events)
    return q, e


def test_judgments_from_json_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    q, e = _files(tmp_path)
    out = tmp_path / "clicks"
    rc = main(["judgments", "--out", str(out), "--queries-jsonl", str(q), "--events-jsonl", str(e), "--json",
               "--click-model", "coec", "--min-impressions", "5"])  # fmt: skip
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] == "coec" and summary["searches"] == 30
    dataset = read_beir(out)
    (qid,) = dataset.queries
    assert dataset.qrels[qid]["d3"] == 3


def test_one_jsonl_alone_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    q, _ = _files(tmp_path)
    assert main(["judgments", "--out", str(tmp_path / "x"), "--queries-jsonl", str(q)]) == 2
    assert "--events-jsonl" in capsys.readouterr().err


def test_experiment_report_from_json_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    q, e = _files(tmp_path)
    spec = tmp_path / "e.json"
    spec.write_text(json.dumps({"name": "e", "arms": {"ctrl": {}, "test": {}}}))
    assert main(["experiment", "report", str(spec), "--queries-jsonl", str(q), "--events-jsonl", str(e), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["searches"] == 30 and report["wins"] + report["losses"] == 30
