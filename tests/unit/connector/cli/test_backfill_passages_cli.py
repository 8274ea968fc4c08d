"""``eshybrid backfill --passages ...`` becomes a PassagePolicy; without it, whole-document vectors."""

from __future__ import annotations

from connector.cli.jobs import _passage_policy
from connector.cli.main import build_parser
from connector.jobs.passages import PassagePolicy


def test_passage_flags() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["backfill", "--index", "p", "--vector-field", "passages", "--passages", "--passage-tokens", "128",
         "--passage-prefix", "{title}", "--max-passages", "4"]
    )  # fmt: skip
    assert _passage_policy(args) == PassagePolicy(
        max_tokens=128, overlap_sentences=1, max_passages=4, prefix_template="{title}"
    )
    assert _passage_policy(parser.parse_args(["backfill", "--index", "p"])) is None
