"""Spelling correction: golden suggest bodies per engine, the pure decision, the fuzzy clause.

Regenerate the golden files after an intended change with
``ESHYBRID_UPDATE_GOLDEN=1 pytest tests/unit/connector/search/test_correction.py`` and review the diff.
"""

from __future__ import annotations

from typing import Any

import pytest

from connector.cluster.capabilities import Capabilities
from connector.errors import SearchRequestError
from connector.search import query_builder as qb
from connector.search._profile import profile_from_mapping, shingle_fields_of
from connector.search.correction import (
    CorrectionSettings,
    correction_from,
    decide,
    evidence_of,
    fuzzy_clause,
    is_variant,
    query_evidence,
    suggest_body,
    validate_correct_mode,
    with_fuzziness,
    words_of,
)
from tests.unit._golden import GoldenFiles

GOLDEN = GoldenFiles(prefix="correction_")
ENGINES = {
    "es9": ("elasticsearch", "9.5.4"),
    "es8": ("elasticsearch", "8.19.9"),
    "os3": ("opensearch", "3.6.0"),
    "os2": ("opensearch", "2.19.1"),
}


def _entry(text: str, offset: int, options: list[tuple[str, float, int]]) -> dict[str, Any]:
    return {
        "text": text,
        "offset": offset,
        "length": len(text),
        "options": [{"text": t, "score": s, "freq": f} for t, s, f in options],
    }


def _response(
    term: dict[str, list[dict[str, Any]]], counts: dict[str, int], phrase: str | None = None
) -> dict[str, Any]:
    suggest: dict[str, Any] = {f"term_{field}": entries for field, entries in term.items()}
    if phrase is not None:
        suggest["phrase"] = [{"text": "", "offset": 0, "length": 0, "options": [{"text": phrase, "score": 0.01}]}]
    buckets = {k: {"doc_count": v} for k, v in counts.items()}
    return {"suggest": suggest, "aggregations": {"original_doc_freq": {"buckets": buckets}}}


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_suggest_body_term_golden_on_each_engine(engine: str) -> None:
    # The body does not depend on the engine: one golden file, checked for all four.
    Capabilities.from_version(*ENGINES[engine])
    body = suggest_body("adidsa gym bag wh1000xm4 for men", fields=["title", "text"])
    GOLDEN.check("term", body)


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_suggest_body_phrase_golden_on_each_engine(engine: str) -> None:
    Capabilities.from_version(*ENGINES[engine])
    body = suggest_body("adidsa gym bag", fields=["title", "text"], shingle_field="title.shingle")
    GOLDEN.check("phrase", body)


def test_no_request_when_no_word_may_change() -> None:
    assert suggest_body("wh1000xm4 2 pk", fields=["title"]) is None
    assert suggest_body("usb c", fields=["title"]) is None


def test_words_protect_numbers_and_model_codes() -> None:
    words = {w.text: w.protected for w in words_of("Sony WH-1000XM4 headphones 2 pack")}
    assert words == {"Sony": False, "WH": True, "1000XM4": True, "headphones": False, "2": True, "pack": False}


def test_absent_word_with_frequent_suggestion_is_corrected() -> None:
    response = _response(
        {"title": [_entry("adidsa", 0, [("adidas", 0.83, 40)]), _entry("gym", 7, [])]},
        {"adidsa": 0, "gym": 12},
    )
    result = decide("Adidsa gym bag", response, mode="auto")
    assert result.searched == "adidas gym bag"
    assert result.lexical_text == "Adidsa gym bag adidas"
    assert result.did_you_mean == "adidas gym bag"
    (change,) = result.changes
    assert change.applied and change.original_doc_freq == 0 and change.suggestion_doc_freq == 40
    assert "absent" in change.reason


def test_word_in_the_index_is_never_corrected() -> None:
    response = _response({"title": [_entry("bags", 0, [("bass", 0.9, 500)])]}, {"bags": 30})
    for mode in ("auto", "force"):
        result = decide("bags", response, mode=mode)  # type: ignore[arg-type]
        assert result.searched == "bags" and result.did_you_mean is None
        assert not result.changes[0].applied and "in the index" in result.changes[0].reason


def test_model_code_is_never_corrected() -> None:
    response = _response({"title": [_entry("wh1000xm3", 5, [("wh1000xm4", 0.89, 80)])]}, {})
    for mode in ("auto", "force"):
        result = decide("sony wh1000xm3", response, mode=mode)  # type: ignore[arg-type]
        assert result.searched == "sony wh1000xm3"
        assert result.changes[0].reason == "a number or model code: never corrected"


def test_rare_word_is_offered_in_auto_and_applied_in_force() -> None:
    response = _response({"title": [_entry("addidas", 0, [("adidas", 0.85, 60)])]}, {"addidas": 1})
    auto = decide("addidas", response, mode="auto")
    assert auto.searched == "addidas" and auto.did_you_mean == "adidas"
    forced = decide("addidas", response, mode="force")
    assert forced.changes[0].applied and forced.lexical_text == "addidas adidas"
    # a merely plausible change reaches the lexical leg only: the dense leg embeds the user's text
    assert forced.searched == "addidas"


def test_common_word_absent_from_the_index_is_not_a_typo() -> None:
    # issue 23: "head" is absent from a small catalogue, "heads" is in it (the dumbbells' word)
    response = _response({"text": [_entry("wear", 0, [("weak", 0.75, 9)])]}, {"wear": 0})
    result = decide("wear", response, mode="auto")
    assert result.searched == "wear" and result.did_you_mean is None
    assert "common English word" in result.changes[0].reason and not result.changes[0].applied


def test_morphological_variant_is_not_a_correction() -> None:
    text = "flashlight you wear on your head"
    response = _response({"text": [_entry("head", text.index("head"), [("heads", 0.75, 12)])]}, {"head": 0})
    for mode in ("auto", "force"):
        result = decide(text, response, mode=mode)  # type: ignore[arg-type]
        assert result.searched == text and result.did_you_mean is None
    assert "is a form of 'head'" in result.changes[0].reason
    assert is_variant("charge", "charging") and is_variant("battery", "batteries") and not is_variant("tent", "tint")


def test_uncommon_absent_word_is_still_corrected() -> None:
    response = _response({"title": [_entry("headphnes", 0, [("headphones", 0.89, 40)])]}, {"headphnes": 0})
    result = decide("headphnes", response, mode="auto")
    assert result.searched == "headphones" and result.changes[0].applied


def test_query_evidence_reads_the_counts_of_every_content_word() -> None:
    body = suggest_body("flashlight you wear on your head 4k", fields=["title", "text"])
    assert body is not None
    counted = body["aggs"]["original_doc_freq"]["filters"]["filters"]
    assert {"flashlight", "wear", "head", "4k"} <= set(counted) and "you" not in counted
    answer = {
        "aggregations": {"original_doc_freq": {"buckets": {"flashlight": {"doc_count": 0}, "head": {"doc_count": 3}}}}
    }
    evidence = query_evidence("flashlight head", answer)
    assert evidence.doc_freqs == {"flashlight": 0, "head": 3}
    assert query_evidence("x", RuntimeError("down")).doc_freqs is None and query_evidence("x", {}).doc_freqs is None


def test_unconfident_suggestions_are_not_applied() -> None:
    settings = CorrectionSettings(min_suggestion_doc_freq=5, min_score=0.8)
    rare = _response({"title": [_entry("zorbel", 0, [("zorbex", 0.9, 2)])]}, {"zorbel": 0})
    assert not decide("zorbel", rare, mode="auto", settings=settings).changes[0].applied
    far = _response({"title": [_entry("zorbel", 0, [("sorbet", 0.6, 90)])]}, {"zorbel": 0})
    result = decide("zorbel", far, mode="auto", settings=settings)
    assert result.searched == "zorbel" and "similarity" in result.changes[0].reason


def test_best_option_over_fields_and_its_highest_frequency() -> None:
    response = _response(
        {
            "title": [_entry("airpoxds", 0, [("airpods", 0.86, 3)])],
            "text": [_entry("airpoxds", 0, [("airpods", 0.86, 9), ("airpots", 0.7, 50)])],
        },
        {"airpoxds": 0},
    )
    change = decide("airpoxds", response, mode="auto").changes[0]
    assert change.suggestion == "airpods" and change.suggestion_doc_freq == 9


def test_stemmed_suggestion_keeps_the_typed_inflection() -> None:
    # english-analyzed field: the token is the stem "airpoxd" and the suggestion the stem "airpod"
    response = _response({"title": [_entry("airpoxd", 0, [("airpod", 0.83, 7)])]}, {"airpoxds": 0})
    result = decide("airpoxds pro", response, mode="auto")
    assert result.searched == "airpods pro"


def test_phrase_suggestion_is_used_word_by_word() -> None:
    response = _response(
        {"title": [_entry("adidsa", 0, [("adidas", 0.83, 40)])]},
        {"adidsa": 0, "sony": 8},
        phrase="adidas gym bag sony wh1000xm4",
    )
    result = decide("adidsa gym bag Sony wh1000xm3", response, mode="auto")
    assert result.suggester == "phrase"
    assert result.searched == "adidas gym bag Sony wh1000xm3"
    assert [c.original for c in result.changes] == ["adidsa", "wh1000xm3"]


def test_empty_phrase_answer_changes_nothing() -> None:
    response = _response({"title": [_entry("adidsa", 0, [("adidas", 0.83, 40)])]}, {"adidsa": 0})
    response["suggest"]["phrase"] = [{"text": "adidsa", "offset": 0, "length": 6, "options": []}]
    assert decide("adidsa", response, mode="auto").searched == "adidsa"


def test_correct_mode_is_validated() -> None:
    assert validate_correct_mode("auto") == "auto"
    with pytest.raises(SearchRequestError) as err:
        validate_correct_mode("on")
    assert err.value.field == "correct"


def test_fuzziness_golden() -> None:
    query = qb.lexical_query("adidsa bag", fields={"title": 3.0, "text": 1.0}, form="combined_fields")
    clause = fuzzy_clause("adidsa bag", fields={"title": 3.0, "text": 1.0})
    GOLDEN.check("fuzzy_lexical", with_fuzziness(query, clause))


def test_shingle_subfield_is_found_in_the_mapping() -> None:
    mapping = {
        "properties": {
            "title": {
                "type": "text",
                "fields": {"keyword": {"type": "keyword"}, "trigram": {"type": "text", "analyzer": "my_shingles"}},
            },
            "text": {"type": "text", "fields": {"std": {"type": "text", "analyzer": "standard"}}},
        }
    }
    assert shingle_fields_of(mapping["properties"]) == {"title": "title.trigram"}
    assert profile_from_mapping(mapping, index="i").shingle_fields == {"title": "title.trigram"}


def test_the_correction_hands_the_word_counts_to_the_adaptive_fusion() -> None:
    answer = _response({"text": [_entry("head", 0, [("heads", 0.75, 12)])]}, {"head": 0, "lamp": 4})
    result = correction_from("head lamp", answer, mode="auto", suggester="term")
    assert result.word_doc_freqs == {"head": 0, "lamp": 4}
    assert evidence_of("head lamp", result).doc_freqs == {"head": 0, "lamp": 4}
    assert evidence_of("head lamp", None).doc_freqs is None


def test_a_corrected_word_counts_as_its_correction_in_the_evidence() -> None:
    answer = _response({"title": [_entry("headphnes", 0, [("headphones", 0.89, 40)])]}, {"headphnes": 0})
    result = correction_from("headphnes", answer, mode="auto", suggester="term")
    assert result.changes[0].applied and result.word_doc_freqs == {"headphnes": 40}
