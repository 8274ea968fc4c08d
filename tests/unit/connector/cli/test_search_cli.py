"""``load --analyzer``, the lexical flags and ``tune``'s flags parse; no fusion flag leaves the default to the index."""

from __future__ import annotations

import pytest

from connector.cli import search as search_cli
from connector.cli.main import build_parser
from connector.errors import ConfigError
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


def test_image_flags_on_search_eval_and_serve_search(monkeypatch: pytest.MonkeyPatch) -> None:
    from connector.cli import serve_search
    from connector.cli.images import image_signal_from_args
    from connector.search.images import DEFAULT_IMAGE_WEIGHT

    for var in ("IMAGE_URL", "IMAGE_FIELD", "IMAGE_WEIGHT"):
        monkeypatch.delenv(f"ESHYBRID_SEARCH_{var}", raising=False)
    parser = build_parser()
    ev = parser.parse_args(
        ["eval", "--index", "i", "--dataset", "d", "--image-url", "http://img:8001", "--image-weight", "0.5"]
    )
    signal = image_signal_from_args(ev, None)
    assert signal is not None and (signal.field, signal.weight) == ("image_embedding", 0.5)
    signal.embedder.close()  # type: ignore[attr-defined]  # an EmbeddingClient
    assert image_signal_from_args(parser.parse_args(["eval", "--index", "i", "--dataset", "d"]), None) is None
    with pytest.raises(SystemExit):  # eval's queries are texts: no example image
        parser.parse_args(["eval", "--index", "i", "--dataset", "d", "--image", "x.png"])

    base = ["serve", "search", "--url", "http://es:9200", "--index", "products"]
    plain = serve_search._settings(parser.parse_args(base))
    assert (plain.image_url, plain.image_field, plain.image_weight) == (None, "image_embedding", DEFAULT_IMAGE_WEIGHT)
    args = parser.parse_args([*base, "--image-url", "http://img:8001", "--image-field", "pic", "--image-weight", "1"])
    settings = serve_search._settings(args)
    assert (settings.image_url, settings.image_field, settings.image_weight) == ("http://img:8001", "pic", 1.0)
    with pytest.raises(ConfigError):
        serve_search._settings(parser.parse_args([*base, "--image-weight", "-1"]))


def test_search_request_body_takes_an_example_image() -> None:
    import base64

    from pydantic import ValidationError

    from connector.search.settings import SearchRequestBody

    raw = b"\x89PNG some bytes"
    encoded = base64.b64encode(raw).decode()
    assert SearchRequestBody(image=encoded).image_bytes() == raw
    assert SearchRequestBody(text="red", image=f"data:image/png;base64,{encoded}").image_bytes() == raw
    assert SearchRequestBody(text="red").image_bytes() is None
    for bad in ("not base64!", ""):
        with pytest.raises(ValidationError) as caught:
            SearchRequestBody(image=bad)
        assert caught.value.errors()[0]["loc"] == ("image",)


def test_rerank_flags_on_serve_search(monkeypatch: pytest.MonkeyPatch) -> None:
    from connector.cli import serve_search
    from connector.search.settings import SearchRequestBody

    for var in ("RERANK_URL", "RERANK_TOP_K", "RERANK_BUDGET_S"):
        monkeypatch.delenv(f"ESHYBRID_SEARCH_{var}", raising=False)
    parser = build_parser()
    base = ["serve", "search", "--url", "http://es:9200", "--index", "products"]
    plain = serve_search._settings(parser.parse_args(base))
    assert (plain.rerank_url, plain.rerank_top_k, plain.rerank_budget_s) == (None, 50, 2.0)
    args = [*base, "--rerank-url", "http://rr:8000/rerank", "--rerank-top-k", "20", "--rerank-budget-s", "0.5"]
    settings = serve_search._settings(parser.parse_args(args))
    assert (settings.rerank_url, settings.rerank_top_k, settings.rerank_budget_s) == ("http://rr:8000/rerank", 20, 0.5)
    with pytest.raises(ConfigError):
        serve_search._settings(parser.parse_args([*base, "--rerank-budget-s", "0"]))
    assert SearchRequestBody(text="tent", mode="hybrid+rerank").search_request().mode == "hybrid+rerank"
