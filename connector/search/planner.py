"""The search plan: what each round trip of a search sends, decided before any I/O (pure, golden-tested).

A search takes one of three shapes:

* ``page``: the lexical leg alone (``mode="bm25"``, or the query embedder skipped by its open breaker): ONE
  ``_msearch`` of the spelling suggestion and the page itself (its hits with their sources, one more hit to see a
  tie at the page's end, the candidates counted up to ``max_depth``). The single-leg ranking is the lexical
  order with ties by ``_id``: the page is that slice exactly unless a tie crosses its end, then the search falls
  back to the lexical leg of ``max_depth`` candidates (one more round trip, rare).
* ``legs`` (client-side fusion): the lexical leg and its sourced copy ride in the first round trip beside the
  suggestion, while the query is embedded; the second round trip sends only the legs that waited for a vector.
  Without a suggestion (correction off) every leg waits for the vector; the adaptive fusion's word counts
  (``count_words``: asked alone then) are the first round trip's only cluster request.
  A correction that changes the lexical text sends the lexical leg again in the second round trip.
* ``server``: the first round trip asks the suggestion (and the vector beside it); the second is the one request
  in the cluster's own hybrid form.

Measured on ES 9 (the dev machine, raw HTTP): the lexical leg costs about as much as the suggestion beside it, and
both hide behind the query embedding; the BM25 page with the suggestion is about the page alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from connector.search.models import CorrectMode, SearchMode

__all__ = ["PlanShape", "SearchPlan", "plan_search"]

PlanShape = Literal["page", "legs", "server"]


@dataclass(frozen=True)
class SearchPlan:
    """What the round trips of one search send (see the module docstring)."""

    shape: PlanShape
    suggest: bool  # the spelling suggestion rides in the first round trip
    embed: bool  # the query vector is asked beside the first round trip
    early_legs: tuple[str, ...]  # leg signals sent in the first round trip (their text needs no vector)
    sourced: int  # hits of each leg returned with their sources (0: ids only)
    page_fetch: int  # shape ``page``: the hits the one lexical search returns (the page's end + 1, <= max_depth)
    server_form: str | None  # shape ``server``: the cluster's hybrid form
    count_words: bool = False  # no suggestion, but the adaptive fusion's word counts ride in the first round trip

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON (what the golden files hold)."""
        return {**asdict(self), "early_legs": list(self.early_legs)}


def plan_search(
    *,
    mode: SearchMode,
    has_text: bool,
    correct: CorrectMode,
    likely_form: str | None,
    vector_refused: bool,
    personal: bool,
    image_signal: bool,
    first_rank: int,
    size: int,
    max_depth: int,
    source: bool,
    adaptive: bool = False,
) -> SearchPlan:
    """The plan of one validated search.

    Args:
        mode: the search mode.
        has_text: the query has text (an example-image search may have none).
        correct: the spelling correction mode in force (``off``: no suggestion).
        likely_form: the server-side form the search takes when its vector comes (``None``: client-side).
        vector_refused: the query embedder's breaker is open (its answer is known: none).
        personal: the personal signal runs (from the legs' doc values: no lexical leg sent early).
        image_signal: the search object has an image signal (its leg may run without the text's vector).
        first_rank: the 0-based rank of the page's first hit.
        size: hits per page.
        max_depth: the candidates each leg fetches.
        source: the page's hits carry their sources.
        adaptive: the legs are fused by the adaptive fusion, whose evidence is the query's words' document counts
            (the suggestion carries them; without one they are asked alone).
    """
    suggest = has_text and correct != "off"
    embed = has_text and mode != "bm25"
    sourced = min(first_rank + 2 * size, max_depth) if source else 0  # a page's hit may sit past its leg's own page
    lexical_only = has_text and (mode == "bm25" or (vector_refused and not image_signal))
    if lexical_only and not personal and mode != "hybrid+rerank":
        fetch = min(first_rank + size + 1, max_depth)
        return SearchPlan("page", suggest, embed, (), sourced, fetch, None)
    if likely_form is not None and not vector_refused:
        return SearchPlan("server", suggest, embed, (), 0, 0, likely_form)
    # The lexical leg rides with a suggestion sent anyway: without one it would add a round trip of its own.  Not
    # with the personal signal: its legs ask for the affinity fields' doc values beside the session's lookup.
    two_legs = mode in ("hybrid", "hybrid+rerank")
    early = ("lexical",) if suggest and two_legs and not personal else ()
    count_words = adaptive and has_text and two_legs and not suggest
    return SearchPlan("legs", suggest, embed, early, sourced, 0, None, count_words)
