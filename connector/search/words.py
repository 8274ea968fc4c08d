"""The words of a query: spans, content words, and whether two words are one (pure, no cluster).

Shared by the spelling correction (which words may change, and into what) and the adaptive fusion
(how much of the query the index knows).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wordfreq import zipf_frequency

__all__ = ["STOPWORDS", "Word", "content_words", "is_common_word", "is_variant", "words_of", "zipf_of"]

_WORD = re.compile(r"[^\W_]+")
_CHUNK = re.compile(r"\S+")

# English function words: never evidence of what the shopper wants (the English analyzer drops
# most of them, so their document count says nothing; the standard analyzer keeps them, so they
# match everywhere). Lucene's English stop set plus pronouns, auxiliaries and common adverbs.
STOPWORDS: frozenset[str] = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing don down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most my
    myself no nor not now of off on once only or other our ours ourselves out over own same she should so
    some such than that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would you your yours
    yourself yourselves something thing things one ones that's doesn't don't isn't i'm it's can't won't
    get got want need needs looking""".split()
)


@dataclass(frozen=True)
class Word:
    """One word of the user's text: its characters, span and whether it may be corrected."""

    text: str
    start: int
    end: int
    protected: bool  # a number or model code (a digit in its whitespace-separated chunk)

    @property
    def key(self) -> str:
        return self.text.lower()


def words_of(text: str) -> list[Word]:
    """The words of ``text`` (runs of letters and digits) with their spans."""
    words: list[Word] = []
    for chunk in _CHUNK.finditer(text):
        protected = any(c.isdigit() for c in chunk.group())
        for m in _WORD.finditer(chunk.group()):
            start = chunk.start() + m.start()
            words.append(Word(m.group(), start, start + len(m.group()), protected))
    return words


def content_words(text: str) -> tuple[list[str], bool]:
    """The query's content words (lower-cased, stopwords and one-letter words out, no repeats) and
    whether it holds a code or number (a digit in a whitespace-separated chunk)."""
    words: list[str] = []
    has_code = False
    for chunk in _CHUNK.finditer(text):
        if any(c.isdigit() for c in chunk.group()):
            has_code = True
        for m in _WORD.finditer(chunk.group().lower()):
            word = m.group()
            if word not in STOPWORDS and (len(word) > 1 or word.isdigit()) and word not in words:
                words.append(word)
    return words, has_code


# Inflectional endings: a suggestion that differs from the word only by one is the same word.
_SUFFIXES = ("ings", "ing", "ers", "er", "est", "ies", "es", "ed", "s", "ly")


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def is_variant(word: str, suggestion: str) -> bool:
    """Whether ``suggestion`` is only a morphological variant of ``word`` (``head``/``heads``,
    ``charge``/``charging``, ``battery``/``batteries``): not a typo correction."""
    a, b = word.lower(), suggestion.lower()
    return a != b and _stem(a) == _stem(b)


def zipf_of(word: str) -> float:
    """``word``'s ``wordfreq`` Zipf frequency in English (log10 of its count per billion words; 0: unknown)."""
    return float(zipf_frequency(word.lower(), "en"))


def is_common_word(word: str, *, min_zipf: float) -> bool:
    """Whether ``word`` is a common English word (``wordfreq`` Zipf frequency >= ``min_zipf``)."""
    return zipf_of(word) >= min_zipf
