"""The rewriter hook (budget, fallback), and how a correction is shown, served and logged."""

from __future__ import annotations

import threading
import time

import pytest

from connector.errors import ConfigError
from connector.search.console import render_response
from connector.search.correction import correction_from
from connector.search.explain import format_hits
from connector.search.log import prepare_search_log_doc, record_from_response
from connector.search.models import QueryCorrection, SearchResponse, TermChange
from connector.search.rewrite import TimedRewriter
from connector.search.settings import SearchRequestBody


class _Upper:
    def rewrite(self, text: str) -> str:
        return "  " + text.upper() + "  "


class _Slow:
    def __init__(self) -> None:
        self.release = threading.Event()

    def rewrite(self, text: str) -> str:
        self.release.wait(5)
        return text + " slow"


class _Empty:
    def rewrite(self, text: str) -> str:
        return " "


def test_rewriter_output_is_used_and_normalised() -> None:
    outcome = TimedRewriter(_Upper()).apply("red shoes")
    assert outcome.text == "RED SHOES" and outcome.rewritten and not outcome.fallback


def test_rewriter_over_budget_falls_back_to_the_original() -> None:
    slow = _Slow()
    rewriter = TimedRewriter(slow, timeout_s=0.05)
    started = time.perf_counter()
    outcome = rewriter.apply("red shoes")
    assert time.perf_counter() - started < 1.0
    assert outcome.text == "red shoes" and outcome.fallback and "budget" in (outcome.reason or "")
    slow.release.set()
    rewriter.close()


def test_rewriter_nonsense_falls_back() -> None:
    outcome = TimedRewriter(_Empty()).apply("red shoes")
    assert outcome.fallback and outcome.text == "red shoes" and "not a text" in (outcome.reason or "")


def test_rewriter_needs_a_rewrite_method_and_a_positive_budget() -> None:
    with pytest.raises(ConfigError):
        TimedRewriter(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        TimedRewriter(_Upper(), timeout_s=0)


def test_failed_suggest_request_searches_the_text_as_typed() -> None:
    result = correction_from("adidsa", RuntimeError("boom"), mode="auto", suggester="term")
    assert result.searched == "adidsa" and result.lexical_text == "adidsa" and "boom" in (result.error or "")


def _response() -> SearchResponse:
    correction = QueryCorrection(
        mode="auto",
        suggester="term",
        searched="adidas gym bag",
        lexical_text="adidsa gym bag adidas",
        did_you_mean="adidas gym bag",
        changes=[
            TermChange(
                original="adidsa",
                suggestion="adidas",
                applied=True,
                reason="'adidsa' absent from the index; 'adidas' in 40 docs",
                original_doc_freq=0,
                suggestion_doc_freq=40,
                score=0.83,
            )
        ],
    )
    return SearchResponse(
        index="shop",
        query="adidsa gym bag",
        mode="bm25",
        strategy="single",
        page=1,
        size=10,
        max_depth=100,
        hits=[],
        corrected_query="adidas gym bag",
        did_you_mean="adidas gym bag",
        correction=correction,
    )


def test_table_and_console_show_the_correction() -> None:
    response = _response()
    table = format_hits(response)
    assert "searched for 'adidas gym bag' (typed 'adidsa gym bag')" in table
    assert "lexical leg: 'adidsa gym bag adidas'" in table
    header = render_response(response).splitlines()
    assert "# corrected: 'adidsa gym bag' -> 'adidas gym bag'" in header


def test_search_log_records_the_correction_and_hashing_drops_it() -> None:
    record = record_from_response(_response())
    assert record["corrected_query"] == "adidas gym bag"
    assert record["corrected_terms"] == ["adidsa->adidas"]
    hashed = prepare_search_log_doc(record, hash_queries=True)
    assert not {"query", "corrected_query", "did_you_mean", "corrected_terms"} & set(hashed)


def test_search_log_records_the_adaptive_fusions_weights_for_the_query() -> None:
    from connector.search.models import FusionWeights

    assert not {"lexical_weight", "vector_weight", "coverage"} & set(record_from_response(_response()))
    weights = FusionWeights(lexical=0.0875, vector=0.9125, base_share=0.7, coverage=0.5, summary="lexical 0.09")
    record = record_from_response(_response().model_copy(update={"fusion_weights": weights}))
    assert (record["lexical_weight"], record["vector_weight"], record["coverage"]) == (0.0875, 0.9125, 0.5)


def test_endpoint_body_takes_correct() -> None:
    assert SearchRequestBody(text="x", correct="force").correct == "force"
    with pytest.raises(ValueError):
        SearchRequestBody(text="x", correct="on")  # type: ignore[arg-type]


def test_correct_flag_on_search_eval_and_tune() -> None:
    from connector.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["search", "x", "--index", "i", "--correct", "force"]).correct == "force"
    assert parser.parse_args(["search", "x", "--index", "i"]).correct is None  # the library default
    assert parser.parse_args(["eval", "--index", "i", "--dataset", "d", "--correct", "off"]).correct == "off"
    assert parser.parse_args(["tune", "--index", "i", "--dataset", "d", "--correct", "auto"]).correct == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["search", "x", "--index", "i", "--correct", "on"])


def test_hybrid_search_refuses_an_unknown_correct_mode() -> None:
    from connector.search import HybridSearch

    with pytest.raises(ConfigError) as err:
        HybridSearch(object(), "shop", correct="sometimes")  # type: ignore[arg-type]
    assert err.value.field == "correct"
    assert HybridSearch(object(), "shop").correct == "auto"
