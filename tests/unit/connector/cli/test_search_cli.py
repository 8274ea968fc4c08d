"""``load --analyzer``, the lexical flags and ``tune``'s flags parse; no fusion flag leaves the default to the index."""

from __future__ import annotations

import pytest

from connector.cli import search as search_cli
from connector.cli.main import build_parser
from connector.search.models import FusionConfig


def test_load_defaults_to_english_and_takes_standard() -> None:
    parser = build_parser()
    assert parser.parse_args(["load", "--dataset", "d", "--index", "i"]).analyzer == "english"
    assert (
        parser.parse_args(["load", "--dataset", "d", "--index", "i", "--analyzer", "standard"]).analyzer == "standard"
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["load", "--dataset", "d", "--index", "i", "--analyzer", "klingon"])


def test_lexical_flags_and_fusion_left_to_the_index_when_unset() -> None:
    parser = build_parser()
    args = parser.parse_args(["search", "tent", "--index", "i"])
    assert args.lexical_form is None and args.tie_breaker is None and args.fields is None
    assert search_cli._fusion(args) is None  # HybridSearch then uses the index's recommendation or DEFAULT_FUSION
    args = parser.parse_args(
        ["eval", "--index", "i", "--dataset", "d", "--lexical-form", "cross_fields", "--tie-breaker", "0.2",
         "--fusion", "linear", "--normalizer", "dbsf"]
    )  # fmt: skip
    assert (args.lexical_form, args.tie_breaker) == ("cross_fields", 0.2)
    assert search_cli._fusion(args) == FusionConfig(
        method="linear", normalizer="dbsf", lexical_weight=0.5, vector_weight=0.5
    )


def test_tune_flags() -> None:
    args = build_parser().parse_args(
        ["tune", "--index", "i", "--dataset", "d", "--dry-run", "--epsilon", "0.02", "--bootstrap", "200",
         "--lexical-form", "most_fields"]
    )  # fmt: skip
    assert args.dry_run and args.epsilon == 0.02 and args.bootstrap == 200 and args.lexical_form == "most_fields"


def test_personalization_flags() -> None:
    parser = build_parser()
    args = parser.parse_args(["search", "tent", "--index", "i"])
    assert (args.user, args.personal_weight, args.profiles_index) == (None, None, None)
    args = parser.parse_args(
        ["search", "tent", "--index", "i", "--user", "u1", "--personal-weight", "0.5", "--profiles-index", "p"]
    )
    assert (args.user, args.personal_weight, args.profiles_index) == ("u1", 0.5, "p")
    args = parser.parse_args(["eval", "--index", "i", "--dataset", "d", "--user", "u1"])
    assert args.user == "u1"
    build = parser.parse_args(["profiles", "build", "--events", "e.jsonl", "--index", "i", "--keep-history"])
    assert (build.index, build.keep_history, build.half_life_days) == ("i", True, None)
    with pytest.raises(SystemExit):
        parser.parse_args(["profiles", "build", "--index", "i"])  # --events is required


def test_search_request_body_personal_fields() -> None:
    from pydantic import ValidationError

    from connector.search.settings import SearchRequestBody

    body = SearchRequestBody(text="tent", user="u1", personal_weight=0.4)
    assert (body.user, body.personal_weight) == ("u1", 0.4)
    for bad in ({"user": ""}, {"personal_weight": -1}, {"personal_weight": 1e6}):
        with pytest.raises(ValidationError):
            SearchRequestBody(text="tent", **bad)  # type: ignore[arg-type]
