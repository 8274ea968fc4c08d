"""Spelling correction from the index's own vocabulary: the suggest request, the decision, the legs' texts.

One request before the legs (``size: 0``): the term suggester on every lexical field (and the
phrase suggester on a shingle subfield when the mapping has one, see
:func:`connector.search._profile.shingle_fields_of`), plus a ``filters`` aggregation that counts
the documents matching each word of the user's text, so the decision knows whether a word is
absent, rare or common in the index (the term suggester reports the suggestion's frequency,
never the original's). The request runs before the legs because the dense leg must embed the
corrected text (bench/query_typos.py measures what the extra round trip costs).

The decision (:func:`decide`) is pure. A word is changed only when it is confident: the word
matches at most ``max_original_doc_freq`` documents (default 0: absent from every lexical field),
the suggestion is in at least ``min_suggestion_doc_freq`` documents and is similar enough
(``min_score``). Words with a digit anywhere in their whitespace-separated chunk (numbers, sizes,
model codes like ``wh1000xm4``) are never changed, nor words shorter than ``min_word_length``.
A word that is rare rather than absent, whose suggestion is ``min_doc_freq_ratio`` times more
frequent, is offered as ``did_you_mean`` in ``auto`` mode and applied in ``force`` mode.

Real words are left alone (issue 23): in a catalogue of a few hundred products most everyday words
are absent, and "head" is not a typo of "heads". So a word that is a common word of the language
(``wordfreq`` Zipf frequency >= ``common_word_zipf``, about once per million English words) is
never changed even when the index lacks it, and a suggestion that is only a morphological variant
of the word (``head`` -> ``heads``, ``charge`` -> ``charging``) is not a typo correction.

Both legs see a confident correction: the dense leg embeds the corrected text
(:attr:`QueryCorrection.searched`) only when every applied change was confident (``force`` mode's
merely plausible changes reach the lexical leg only); the lexical leg searches the original text
plus the corrected words (:attr:`QueryCorrection.lexical_text`), so the original words keep their
weight and an exact match still wins.

The aggregation also counts the query's other content words (stopwords out, codes in): the
adaptive fusion reads how much of the query the index knows from it (:func:`evidence_of`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from connector.errors import SearchRequestError
from connector.search.adaptive import QueryEvidence
from connector.search.models import CORRECT_MODES, CorrectMode, QueryCorrection, TermChange
from connector.search.words import Word, content_words, is_common_word, is_variant, words_of, zipf_of

__all__ = [
    "DEFAULT_CORRECT",
    "CorrectionSettings",
    "DEFAULT_CORRECTION",
    "Word",
    "words_of",
    "suggest_body",
    "decide",
    "unchanged",
    "suggester_of",
    "correction_note",
    "correction_from",
    "fuzzy_clause",
    "with_fuzziness",
    "validate_correct_mode",
    "doc_freqs_of",
    "query_evidence",
    "evidence_of",
    "is_common_word",
    "is_variant",
]

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]
_WORD = re.compile(r"[^\W_]+")
_AGG = "original_doc_freq"
_PHRASE = "phrase"
_TERM_PREFIX = "term_"
Suggester = Literal["term", "phrase", "none"]


class CorrectionSettings(BaseModel):
    """Thresholds of the spelling correction (and the optional fuzzy lexical clause).

    The defaults were checked on the dev data only (``esci-us-subset``, bench/query_typos.py;
    README "Typo tolerance"): they recover typo'd queries without changing any clean dev query.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_original_doc_freq: int = Field(
        0, ge=0, le=1_000_000, description="auto corrects a word matching at most this many docs (0: absent)"
    )
    min_suggestion_doc_freq: int = Field(2, ge=1, le=1_000_000, description="docs the suggestion must be in")
    min_doc_freq_ratio: float = Field(
        20.0, ge=1.0, le=1e6, description="a rare word's suggestion must be this many times more frequent"
    )
    min_score: float = Field(0.75, ge=0.0, le=1.0, description="term suggester similarity of the suggestion")
    min_word_length: int = Field(4, ge=1, le=100, description="shorter words are never corrected")
    max_edits: int = Field(2, ge=1, le=2, description="edit distance of a suggestion (the suggester allows 1..2)")
    prefix_length: int = Field(1, ge=0, le=10, description="leading characters a suggestion must share")
    max_words: int = Field(8, ge=1, le=32, description="words of one query the correction looks at")
    common_word_zipf: float = Field(
        3.0, ge=0.0, le=8.0, description="wordfreq Zipf frequency from which a word is a real word, never a typo"
    )
    fuzziness: bool = Field(False, description="also add a fuzzy (AUTO) clause to the lexical leg")
    fuzzy_prefix_length: int = Field(1, ge=0, le=10, description="leading characters a fuzzy match must share")
    fuzzy_max_expansions: int = Field(20, ge=1, le=1000, description="terms one fuzzy word may expand to")


DEFAULT_CORRECTION = CorrectionSettings()
# The correction mode of a search that names none (HybridSearch(correct=...), --correct).
DEFAULT_CORRECT: CorrectMode = "auto"


def validate_correct_mode(mode: Any) -> CorrectMode:
    """``mode`` if it is ``off`` | ``auto`` | ``force``.

    Raises:
        SearchRequestError: any other value (``field="correct"``).
    """
    if mode not in CORRECT_MODES:
        raise SearchRequestError(f"correct must be one of {', '.join(CORRECT_MODES)}, got {mode!r}", field="correct")
    return mode  # type: ignore[no-any-return]


def _counted(text: str, settings: CorrectionSettings) -> list[str]:
    """The words the aggregation counts: the candidates, then the other content words (the adaptive
    fusion's coverage evidence), at most ``2 * max_words``."""
    keys = _candidates(text, settings)
    keys += [w for w in content_words(text)[0] if w not in keys]
    return keys[: 2 * settings.max_words]


def _candidates(text: str, settings: CorrectionSettings) -> list[str]:
    """Lower-cased words the correction may change (first ``max_words``, no duplicates)."""
    keys: list[str] = []
    for word in words_of(text):
        if not word.protected and len(word.text) >= settings.min_word_length and word.key not in keys:
            keys.append(word.key)
    return keys[: settings.max_words]


def suggest_body(
    text: str,
    *,
    fields: Sequence[str],
    shingle_field: str | None = None,
    settings: CorrectionSettings = DEFAULT_CORRECTION,
) -> JsonDict | None:
    """The suggest request for ``text`` (``None`` when no word may be corrected: nothing to ask).

    The same body on Elasticsearch 8/9 and OpenSearch 2/3 (the suggesters and the ``filters``
    aggregation are common to both).

    Args:
        text: the user's text (the suggesters analyze it with each field's search analyzer).
        fields: the lexical fields (term suggester candidates; the aggregation counts over them).
        shingle_field: a shingle subfield for the phrase suggester (``None``: term suggester only).
        settings: thresholds.
    """
    words = _candidates(text, settings)
    if not words or not fields:
        return None
    suggest: JsonDict = {"text": text}
    for field in fields:
        suggest[f"{_TERM_PREFIX}{field}"] = {
            "term": {
                "field": field,
                # always: suggestions for every word; the aggregation tells absent from rare from common.
                "suggest_mode": "always",
                "size": 3,
                "sort": "score",
                "max_edits": settings.max_edits,
                "prefix_length": settings.prefix_length,
                "min_word_length": settings.min_word_length,
            }
        }
    if shingle_field:
        suggest[_PHRASE] = {
            "phrase": {
                "field": shingle_field,
                "size": 1,
                "max_errors": 2,
                "confidence": 1.0,
                "direct_generator": [
                    {
                        "field": shingle_field,
                        "suggest_mode": "always",
                        "max_edits": settings.max_edits,
                        "prefix_length": settings.prefix_length,
                        "min_word_length": settings.min_word_length,
                    }
                ],
            }
        }
    return {
        "size": 0,
        "track_total_hits": False,
        "suggest": suggest,
        "aggs": {_AGG: {"filters": {"filters": _count_filters(_counted(text, settings), fields)}}},
    }


def word_counts_body(
    text: str, *, fields: Sequence[str], settings: CorrectionSettings = DEFAULT_CORRECTION
) -> JsonDict | None:
    """The adaptive fusion's evidence alone, for a search with the correction off: the suggest request's
    aggregation (documents matching each content word) without a suggester; ``None`` when no word is counted."""
    words = _counted(text, settings)
    if not words or not fields:
        return None
    return {
        "size": 0,
        "track_total_hits": False,
        "aggs": {_AGG: {"filters": {"filters": _count_filters(words, fields)}}},
    }


def _count_filters(words: Sequence[str], fields: Sequence[str]) -> JsonDict:
    return {w: {"multi_match": {"query": w, "fields": list(fields), "operator": "and"}} for w in words}


# -- the decision (pure) ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Option:
    text: str
    score: float | None
    doc_freq: int | None


def doc_freqs_of(response: Mapping[str, Any]) -> dict[str, int]:
    """Lower-cased word -> documents matching it, from the suggest request's aggregation."""
    buckets = (((response.get("aggregations") or {}).get(_AGG) or {}).get("buckets")) or {}
    return {str(k): int(v.get("doc_count", 0)) for k, v in buckets.items() if isinstance(v, Mapping)}


def _term_options(response: Mapping[str, Any]) -> dict[tuple[int, int], tuple[str, _Option]]:
    """(offset, length) of a suggest token -> (its analyzed text, the best option over all fields)."""
    best: dict[tuple[int, int], tuple[str, _Option]] = {}
    freq_by_text: dict[str, int] = {}
    suggest = response.get("suggest") or {}
    for name, entries in suggest.items():
        if not str(name).startswith(_TERM_PREFIX):
            continue
        for entry in entries or []:
            for option in entry.get("options") or []:
                key = str(option["text"])
                freq_by_text[key] = max(freq_by_text.get(key, 0), int(option.get("freq", 0)))
    for name, entries in suggest.items():
        if not str(name).startswith(_TERM_PREFIX):
            continue
        for entry in entries or []:
            span = (int(entry["offset"]), int(entry["length"]))
            for option in entry.get("options") or []:
                candidate = _Option(str(option["text"]), float(option.get("score", 0.0)), freq_by_text[option["text"]])
                held = best.get(span)
                if held is None or (candidate.score or 0.0, candidate.doc_freq or 0) > (
                    held[1].score or 0.0,
                    held[1].doc_freq or 0,
                ):
                    best[span] = (str(entry.get("text", "")), candidate)
    return best


def _surface(word: str, analyzed: str, option: str) -> str:
    """The replacement as the user would type it: a stemmed field suggests a stem (``airpod`` for
    ``airpoxds``), so the inflection the analyzer stripped from the typed word is carried over."""
    lowered = word.lower()
    if analyzed and lowered != analyzed and lowered.startswith(analyzed):
        return option + lowered[len(analyzed) :]
    return option


def _judge(
    word: Word, option: _Option, original_df: int | None, settings: CorrectionSettings
) -> tuple[bool, bool, str]:
    """(confident, plausible, reason) for replacing ``word`` with ``option``."""
    if word.protected:
        return False, False, "a number or model code: never corrected"
    if len(word.text) < settings.min_word_length:
        return False, False, f"shorter than min_word_length {settings.min_word_length}"
    if original_df is None:
        return False, False, "not counted (beyond max_words)"
    if is_variant(word.text, option.text):
        return False, False, f"{option.text!r} is a form of {word.text!r}, not a spelling correction: kept"
    if original_df <= settings.max_original_doc_freq and is_common_word(word.text, min_zipf=settings.common_word_zipf):
        zipf = zipf_of(word.key)
        return False, False, f"{word.text!r} is a common English word (Zipf {zipf:.1f}), not a typo: kept"
    if option.score is not None and option.score < settings.min_score:
        return False, False, f"similarity {option.score:.2f} below min_score {settings.min_score:g}"
    freq = option.doc_freq
    if freq is not None and freq < settings.min_suggestion_doc_freq:
        return False, False, f"suggestion in {freq} docs, below min_suggestion_doc_freq"
    if original_df <= settings.max_original_doc_freq:
        where = "absent from the index" if original_df == 0 else f"in only {original_df} docs"
        seen = f" in {freq} docs" if freq is not None else " (phrase suggester)"
        return True, True, f"{word.text!r} {where}; {option.text!r}{seen}"
    if freq is not None and freq >= settings.min_doc_freq_ratio * original_df:
        return False, True, f"{word.text!r} is rare ({original_df} docs); {option.text!r} in {freq} docs"
    return False, False, f"{word.text!r} is in the index ({original_df} docs): kept"


def _phrase_changes(
    text: str, response: Mapping[str, Any], words: Sequence[Word]
) -> list[tuple[Word, str, str]] | None:
    """(word, analyzed, suggestion) per word the phrase suggester changed; ``None``: no phrase answer."""
    entries = (response.get("suggest") or {}).get(_PHRASE)
    if not entries:
        return None
    options = entries[0].get("options") or []
    if not options:
        return []
    proposed = _WORD.findall(str(options[0]["text"]))
    if len(proposed) != len(words):
        return []  # the suggester merged or split words: nothing aligned to change
    return [(w, w.key, new) for w, new in zip(words, proposed) if new.lower() != w.key]


def unchanged(text: str, mode: CorrectMode, *, suggester: Suggester = "none", took_ms: float = 0.0) -> QueryCorrection:
    """A correction that changed nothing."""
    return QueryCorrection(
        mode=mode,
        suggester=suggester,
        searched=text,
        lexical_text=text,
        took_ms=took_ms,
    )


def _apply(text: str, replacements: Mapping[Word, str]) -> str:
    out, last = [], 0
    for word in sorted(replacements, key=lambda w: w.start):
        out.append(text[last : word.start])
        out.append(replacements[word])
        last = word.end
    out.append(text[last:])
    return "".join(out)


def decide(
    text: str,
    response: Mapping[str, Any],
    *,
    mode: CorrectMode,
    settings: CorrectionSettings = DEFAULT_CORRECTION,
) -> QueryCorrection:
    """Read the suggest response and decide which words change (``auto``: confident ones only).

    The phrase suggester's answer is used when there is one (it weighs the words together);
    otherwise each word's best term suggestion over the lexical fields.

    Returns:
        A :class:`QueryCorrection` (``searched``: the corrected text; ``lexical_text``: the original
        text plus the corrected words; ``changes``: every word with a suggestion and the reason).
    """
    words = words_of(text)
    doc_freqs = doc_freqs_of(response)
    term = _term_options(response)
    freq_by_text = {opt.text: opt.doc_freq for _, opt in term.values()}
    pairs: list[tuple[Word, str, _Option]] = []
    phrase = _phrase_changes(text, response, words)
    if phrase is not None:
        for word, analyzed, new in phrase:
            pairs.append((word, analyzed, _Option(new, None, freq_by_text.get(new))))
    else:
        by_start = {w.start: w for w in words}
        for (offset, _length), (analyzed, option) in sorted(term.items()):
            found = by_start.get(offset)
            if found is not None and option.text != found.key:
                pairs.append((found, analyzed, option))
    applied: dict[Word, str] = {}
    sure: dict[Word, str] = {}
    offered: dict[Word, str] = {}
    changes: list[TermChange] = []
    for word, analyzed, option in pairs:
        original_df = doc_freqs.get(word.key)
        confident, plausible, reason = _judge(word, option, original_df, settings)
        replacement = _surface(word.text, analyzed, option.text)
        use = confident or (mode == "force" and plausible)
        if use:
            applied[word] = replacement
        if confident:
            sure[word] = replacement
        if plausible:
            offered[word] = replacement
        changes.append(
            TermChange(
                original=word.text,
                suggestion=replacement,
                applied=use,
                reason=reason,
                original_doc_freq=original_df,
                suggestion_doc_freq=option.doc_freq,
                score=option.score,
            )
        )
    added = [applied[w] for w in sorted(applied, key=lambda w: w.start)]
    suggestion = _apply(text, offered)
    return QueryCorrection(
        mode=mode,
        suggester="phrase" if phrase is not None else "term",
        # The dense leg embeds the user's own text unless every change was confident: the model copes
        # with a doubtful word itself, a wrong "correction" would move the whole vector.
        searched=_apply(text, applied) if len(sure) == len(applied) else text,
        lexical_text=f"{text} {' '.join(added)}" if added else text,
        did_you_mean=suggestion if suggestion != text else None,
        changes=changes,
    )


def evidence_of(text: str, correction: QueryCorrection | None) -> QueryEvidence:
    """The adaptive fusion's evidence from what the correction already read (``None``: it did not run)."""
    return QueryEvidence(text=text, doc_freqs=correction.word_doc_freqs if correction is not None else None)


def query_evidence(text: str, answer: Mapping[str, Any] | BaseException | None) -> QueryEvidence:
    """What the suggest request's answer tells the adaptive fusion (:mod:`connector.search.adaptive`):
    the documents matching each word; ``doc_freqs=None`` when nothing was counted (no request, or it failed)."""
    if not answer or isinstance(answer, BaseException):
        return QueryEvidence(text=text)
    freqs = doc_freqs_of(answer)
    return QueryEvidence(text=text, doc_freqs=freqs or None)


# -- the one request (sent by the search core: connector.search.hybrid) ---------------------------


def suggester_of(shingle_field: str | None) -> Suggester:
    """The suggester a request with (or without) a shingle field asks."""
    return "phrase" if shingle_field else "term"


def correction_note(suggester: Suggester) -> str:
    """The console comment above the suggest request."""
    return f"spelling correction ({suggester} suggester + document counts of the words)"


def correction_from(
    text: str,
    answer: Mapping[str, Any] | BaseException,
    *,
    mode: CorrectMode,
    suggester: Suggester,
    settings: CorrectionSettings = DEFAULT_CORRECTION,
    took_ms: float = 0.0,
) -> QueryCorrection:
    """The correction from the suggest request's answer, or the text unchanged when it failed.

    A failed suggest request never fails the search: the text is searched as typed, the reason is
    in ``error`` and a WARNING is logged.
    """
    if isinstance(answer, BaseException):
        logger.warning("spelling correction failed, searching the original text: %s", answer)
        result = unchanged(text, mode, suggester=suggester, took_ms=took_ms)
        return result.model_copy(update={"error": f"{type(answer).__name__}: {answer}"})
    if not answer:  # nothing was asked (correction off, or no word that may change)
        return unchanged(text, mode, suggester=suggester, took_ms=took_ms)
    decision = decide(text, answer, mode=mode, settings=settings)
    freqs = doc_freqs_of(answer)
    for change in decision.changes:
        # the lexical leg also searched the correction: the word counts as what it was corrected to
        if change.applied and change.original.lower() in freqs:
            freqs[change.original.lower()] = max(1, change.suggestion_doc_freq or 0)
    return decision.model_copy(update={"took_ms": took_ms, "word_doc_freqs": freqs or None})


# -- fuzziness (a separate switch) ---------------------------------------------------------------


def fuzzy_clause(
    text: str, *, fields: Mapping[str, float], settings: CorrectionSettings = DEFAULT_CORRECTION
) -> JsonDict:
    """A ``multi_match`` ``best_fields`` clause with ``fuzziness: AUTO`` (bounded expansions).

    A separate clause because ``combined_fields`` and ``cross_fields`` take no fuzziness.
    """
    names = [n if b == 1 else f"{n}^{b:g}" for n, b in fields.items()]
    return {
        "multi_match": {
            "query": text,
            "fields": names,
            "type": "best_fields",
            "fuzziness": "AUTO",
            "prefix_length": settings.fuzzy_prefix_length,
            "max_expansions": settings.fuzzy_max_expansions,
        }
    }


def with_fuzziness(query: Mapping[str, Any], clause: Mapping[str, Any]) -> JsonDict:
    """``query`` (``bool{must, filter}`` of the query builder) with its ``must`` clauses and the
    fuzzy ``clause`` as alternatives (``should``, one must match): a document only the fuzzy
    clause finds is found, and one both match scores higher."""
    body = {k: v for k, v in (query.get("bool") or {}).items() if k != "must"}
    body["should"] = [*(query.get("bool") or {}).get("must", []), dict(clause)]
    body["minimum_should_match"] = 1
    return {"bool": body}
