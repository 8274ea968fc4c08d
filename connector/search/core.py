"""The sans-IO search core both facades share: options, the index profile, validation and the search flow.

A search is a generator (:data:`~connector.search.ops.Flow`) that yields I/O operations and receives their
results; :mod:`connector.search.drivers` performs them, sync or async. The flow of a default search:

1. **first round trip** (:meth:`_HybridCore._first_trip`): the spelling suggestion, the query embedding, the
   image embedding and the shopper's profile, all at once (:class:`~connector.search.ops.Together`); the
   query is embedded again only when a word was actually corrected;
2. **second round trip**: the legs in one ``_msearch`` (client-side, each leg carrying its hits' sources, so the
   page needs no ``_mget``) or one request in the cluster's own hybrid form (server-side).

A helper that fails or runs over its budget (the query embedder, the image embedder, the profile read) drops
its signal: the search answers from the signals left (at worst the lexical leg), flagged ``vector_fallback``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from connector.cluster.detect import as_cluster
from connector.errors import ClusterError, ConfigError, EmbeddingError, ModelMismatchError
from connector.search import query_builder as qb
from connector.search._profile import IndexProfile, profile_from_mapping
from connector.search.adaptive import QueryEvidence
from connector.search.breaker import CircuitBreaker
from connector.search.correction import (
    Suggester,
    correction_from,
    correction_note,
    evidence_of,
    fuzzy_clause,
    query_evidence,
    suggest_body,
    suggester_of,
    validate_correct_mode,
    with_fuzziness,
    word_counts_body,
)
from connector.search.defaults import resolve_fusion, resolve_lexical
from connector.search.drivers import EmbedGuard
from connector.search.images import EmbedImage
from connector.search.models import (
    CorrectMode,
    FusionConfig,
    LexicalForm,
    QueryCorrection,
    SearchMode,
    SearchTimings,
)
from connector.search.ops import ClusterMsearch, ClusterSearch, Embed, Flow, GetMapping, Op, Rewrite, Together
from connector.search.options import SearchOptions
from connector.search.personal import (
    UserProfile,
    profile_search_body,
    session_events_body,
    session_events_of,
    user_profile_of,
)
from connector.search.query_vectors import QueryVectors
from connector.search.rewrite import RewriteOutcome
from mappings.system import UBI_EVENTS_INDEX

__all__ = ["Call", "EarlyRequests", "FirstTrip", "HelperFailures", "ms_since"]

# The requests that ride in the first round trip beside the suggestion, by what they are ("lexical": the lexical
# leg and its sourced copy; "page": the BM25 page), built from the (rewritten) text; and their answers.
EarlyRequests = dict[str, list[dict[str, Any]]]
EarlyAnswers = dict[str, tuple[list[dict[str, Any]], list[Any]]]

logger = logging.getLogger(__name__)


def ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)


@dataclass
class HelperFailures:
    """The signals a search dropped because their helper failed (``vector_fallback`` and its reason)."""

    reasons: list[str] = field(default_factory=list)

    def note(self, what: str, error: Exception) -> None:
        # An open breaker was logged when it opened: one WARNING per outage, not one per search.
        log = logger.debug if getattr(error, "breaker_open", False) else logger.warning
        log("search falls back without the %s: %s", what, error)
        self.reasons.append(f"{what}: {error}")

    @property
    def reason(self) -> str | None:
        return "; ".join(self.reasons) or None


@dataclass(frozen=True)
class Call:
    """One validated search call, as the client- and server-side paths need it."""

    text: str
    vector: list[float] | None
    mode: SearchMode
    fusion: FusionConfig
    filters: list[dict[str, Any]]
    size: int
    page: int
    source: bool | dict[str, Any]
    explain: bool
    timings: SearchTimings
    # The shopper's profile and the personal signal's effective weight (> 0), when personalized.
    user: UserProfile | None = None
    personal_weight: float = 0.0
    lexical_text: str = ""  # what the lexical leg searches (the text plus corrected words); "" = text
    image_vector: list[float] | None = None
    fallback: str | None = None  # why a vector signal was dropped (its helper failed)
    evidence: QueryEvidence | None = None  # what the adaptive fusion knows of the query (its words' counts)

    @property
    def lexical(self) -> str:
        return self.lexical_text or self.text

    @property
    def first_rank(self) -> int:
        """The 0-based rank of the page's first hit."""
        return (self.page - 1) * self.size


@dataclass
class FirstTrip:
    """What the first round trip found: the correction, the vectors and the shopper's profile."""

    correction: QueryCorrection | None = None
    vector: list[float] | None = None
    image_vector: list[float] | None = None
    user: UserProfile | None = None
    failures: HelperFailures = field(default_factory=HelperFailures)
    evidence: QueryEvidence | None = None
    early: EarlyAnswers = field(default_factory=dict)  # what was sent early (sent bodies, their responses)


class _CoreBase:
    """Options, index profile and the first round trip (the legs and forms are in the subclasses)."""

    def __init__(self, cluster: Any, index: str, options: SearchOptions) -> None:
        if not index or not isinstance(index, str):
            raise ConfigError("index must be a non-empty index or alias name", field="index")
        self.cluster: Any = as_cluster(cluster)  # the app's official sync client wrapped; a cluster as is
        self.index = index
        self.options = options
        self.embedder = options.embedder
        self.strategy = options.strategy
        self.max_depth = options.max_depth
        self.num_candidates = options.hnsw_candidates
        self.rerank = options.rerank
        self.profiles_index = options.profiles_index_of(index)
        self.correct: CorrectMode = options.correct_mode
        self.correction = options.correction_settings
        self.rewriter = options.timed_rewriter()
        self.image = options.image
        self._profile: IndexProfile | None = None
        self._query_vectors = (
            QueryVectors(options.embedder, cache_size=options.query_cache_size, check_model=options.check_model)
            if options.embedder is not None
            else None
        )
        self._guards = {
            name: EmbedGuard(
                label,
                budget_s=options.embed_budget_s,
                breaker=CircuitBreaker(failures_to_open=options.breaker_failures, open_s=options.breaker_open_s),
            )
            for name, label in (("query", "query embedder"), ("image", "image embedder"))
        }

    # -- index profile -------------------------------------------------------------
    @property
    def profile(self) -> IndexProfile:
        """The index's resolved vector and text fields (read from the mapping once)."""
        if self._profile is None:
            self._profile = self._read_profile()
        return self._profile

    def _read_profile(self) -> IndexProfile:  # the driver reads the mapping (sync) or says how to (async)
        raise NotImplementedError

    def _profile_flow(self) -> Flow[IndexProfile]:
        if self._profile is None:
            mapping = yield GetMapping(self.index)
            self._set_profile(mapping)
        assert self._profile is not None
        return self._profile

    def _set_profile(self, mapping: Mapping[str, Any]) -> IndexProfile:
        if self._profile is None:
            self._profile = profile_from_mapping(
                mapping,
                index=self.index,
                vector_field=self.options.vector_field,
                lexical_fields=self.options.lexical_fields,
            )
            logger.debug(
                "index %s: vector field %s, lexical fields %s",
                self.index,
                self._profile.vector_field,
                self._profile.lexical_fields,
            )
        return self._profile

    @property
    def fusion(self) -> FusionConfig:
        """The fusion of a search that names none: the argument, else the index's recommendation, else ours."""
        return resolve_fusion(self.options.fusion, self.profile)

    @property
    def lexical_form(self) -> tuple[LexicalForm, float | None]:
        """The lexical form and tie breaker (argument, else the index's recommendation, else ours)."""
        try:
            caps = self.cluster.capabilities
        except ConfigError:  # a Cluster(url) never detected: bm25 still works, with the portable form
            caps = None
        return resolve_lexical(caps, self.profile, form=self.options.lexical_form, tie_breaker=self.options.tie_breaker)

    @property
    def source_excludes(self) -> list[str]:
        if self.options.source_excludes is not None:
            return list(self.options.source_excludes)
        return [self.profile.vector_field, *([self.image.field] if self.image is not None else [])]

    def _lexical_query(self, text: str, filters: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        form, tie_breaker = self.lexical_form
        query = qb.lexical_query(
            text, fields=self.profile.lexical_fields, filters=filters, form=form, tie_breaker=tie_breaker
        )
        if self.correction.fuzziness:
            clause = fuzzy_clause(text, fields=self.profile.lexical_fields, settings=self.correction)
            query = with_fuzziness(query, clause)
        return query

    # -- the first round trip: correction, embeddings and the profile at once --------------------
    def _suggestion_request(self, text: str, *, wanted: bool) -> tuple[dict[str, Any] | None, Suggester]:
        """The correction's suggest body for ``text`` (None when not ``wanted``) and the suggester it uses."""
        fields = list(self.profile.lexical_fields)
        shingle = next((self.profile.shingle_fields[f] for f in fields if f in self.profile.shingle_fields), None)
        body = suggest_body(text, fields=fields, shingle_field=shingle, settings=self.correction) if wanted else None
        return body, suggester_of(shingle)

    def _counts_request(self, text: str) -> dict[str, Any] | None:
        """The words' document counts alone (the adaptive fusion's evidence with the correction off)."""
        return word_counts_body(text, fields=list(self.profile.lexical_fields), settings=self.correction)

    def _trip_vectors(
        self, answers: dict[str, Any], trip: FirstTrip, base: str, *, example_image: bool, guarded: bool
    ) -> Flow[None]:
        """The query and image vectors of the searched text (re-embedded when a correction changed it)."""
        searched = trip.correction.searched if trip.correction is not None else base
        trip.vector = yield from self._vector_of(answers, "vector", searched, base, trip.failures, guarded=guarded)
        trip.image_vector = yield from self._vector_of(
            answers, "image", searched, base, trip.failures, example_image=example_image
        )

    def _first_trip(
        self,
        text: str,
        *,
        mode: str,
        correct: CorrectMode | None,
        timings: SearchTimings,
        image: bytes | None = None,
        user: str | None = None,
        guarded: bool = True,
        setup: Op | None = None,
        session: str | None = None,
        early: Callable[[str], EarlyRequests] | None = None,
        count_words: bool = False,
    ) -> Flow[FirstTrip]:
        """Ask every helper the legs need in one round trip; re-embed only a corrected text.

        ``setup``: a request the search needs once before its legs (OpenSearch's search pipeline) rides along.
        ``session``: the shopper's session id: its recent events are read with the profile (one ``_msearch``).
        ``early``: the searches that need no vector (the lexical leg, the BM25 page) for the text: they ride in the
        suggestion's ``_msearch`` (the search checks they still match the corrected text before it uses them).
        ``count_words``: the plan asks the words' document counts alone in this round trip (beside the embedding):
        the adaptive fusion's evidence when no suggestion carries it (the correction off).
        """
        started = time.perf_counter()
        correct_mode = validate_correct_mode(correct or self.correct)
        rewrite: RewriteOutcome | None = None
        if text and self.rewriter is not None:
            rewrite = yield Rewrite(self.rewriter, text)
        base = rewrite.text if rewrite is not None else text
        suggest, suggester = self._suggestion_request(base, wanted=bool(text) and correct_mode != "off")
        counts = self._counts_request(base) if text and count_words else None
        note = correction_note(suggester) if suggest else _COUNTS_NOTE
        planned = early(base) if early is not None and text else {}
        ops: dict[str, Op | None] = {
            "cluster": self._first_cluster_op(suggest or counts, planned, note),
            "vector": Embed(base, self.profile.vector_meta, guarded=guarded) if text and mode != "bm25" else None,
            "image": self._image_op(base, image) if mode != "bm25" else None,
            "setup": setup,
            "user": self._user_op(user, session) if user is not None else None,
        }
        asked = {name: op for name, op in ops.items() if op is not None}
        answers: dict[str, Any] = {}
        if asked:
            answers = dict(zip(asked, (yield Together(tuple(asked.values()))), strict=True))
        if "page" in planned:  # a lexical-only search's page rode here: its legs stage is this round trip
            timings.search_ms += ms_since(started)
        trip = FirstTrip()
        answer = _split_first(answers.get("cluster"), bool(suggest or counts), planned, trip)
        counted, answer = (answer, {}) if counts is not None else ({}, answer)
        if text and (correct_mode != "off" or rewrite is not None):
            result = correction_from(base, answer, mode=correct_mode, suggester=suggester if suggest is not None
                                     else "none", settings=self.correction)  # fmt: skip
            timings.correct_ms = ms_since(started)
            trip.correction = result.model_copy(update=_correction_update(timings.correct_ms, rewrite))
        # The adaptive fusion's evidence: the word counts the correction's request already carried, or (correction
        # off) the counts asked alone beside the embedding; a failed count leaves the fusion its base weights.
        trip.evidence = query_evidence(base, counted) if counts is not None else evidence_of(base, trip.correction)
        yield from self._trip_vectors(answers, trip, base, example_image=image is not None, guarded=guarded)
        if "vector" in answers:
            timings.embed_ms = ms_since(started)
        if user is not None:
            trip.user = self._user_of(answers["user"], user, trip.failures)
        if isinstance(answers.get("setup"), BaseException):
            raise answers["setup"]
        return trip

    def _first_cluster_op(
        self, suggest: dict[str, Any] | None, planned: EarlyRequests, note: str
    ) -> ClusterSearch | ClusterMsearch | None:
        """The first round trip's cluster request: the suggestion (or the word counts alone), and the early
        searches in its ``_msearch``."""
        bodies = ([suggest] if suggest else []) + [body for sent in planned.values() for body in sent]
        notes = ([note] if suggest else []) + [_EARLY_NOTES[name] for name in planned]
        if not bodies:
            return None
        if len(bodies) == 1:
            return ClusterSearch(self.index, bodies[0], note=notes[0])
        return ClusterMsearch(self.index, qb.msearch_searches(bodies), note=" + ".join(notes) + " (one round trip)")

    def _image_op(self, text: str, image: bytes | None) -> EmbedImage | None:
        if self.image is None:
            return None
        return EmbedImage(image=image) if image is not None else EmbedImage(text=text)

    def _user_op(self, user: str, session: str | None = None) -> ClusterSearch | ClusterMsearch:
        note = "personal signal: the shopper's profile"
        params = {"ignore_unavailable": "true"}
        if session is None:
            return ClusterSearch(self.profiles_index, profile_search_body(user), params=params, note=note)
        events = self.options.ubi.events_index if self.options.ubi is not None else UBI_EVENTS_INDEX
        searches = [
            ({"index": self.profiles_index, "ignore_unavailable": True}, profile_search_body(user)),
            ({"index": events, "ignore_unavailable": True}, session_events_body(user, session)),
        ]
        return ClusterMsearch(self.profiles_index, searches, note=f"{note} and the session's recent events")

    def _vector_of(
        self,
        answers: Mapping[str, Any],
        name: str,
        searched: str,
        base: str,
        failures: HelperFailures,
        *,
        example_image: bool = False,
        guarded: bool = True,
    ) -> Flow[list[float] | None]:
        """The vector ``name`` answered, embedded again for a corrected text; ``None`` when its helper failed."""
        if name not in answers:
            return None
        answer = answers[name]
        if searched != base and not example_image and not isinstance(answer, BaseException):
            meta = self.profile.vector_meta
            op: Op = Embed(searched, meta, guarded=guarded) if name == "vector" else EmbedImage(text=searched)
            try:
                answer = yield op
            except EmbeddingError as e:
                answer = e
        # Any embedder failure drops the signal (a shop's search must not go down with its helper), except a
        # model mismatch: that is a misconfiguration to fix, not an outage.
        if guarded and isinstance(answer, EmbeddingError) and not isinstance(answer, ModelMismatchError):
            failures.note(self._guards["image" if name == "image" else "query"].name, answer)
            return None
        if isinstance(answer, BaseException):
            raise answer
        return list(answer)

    def _user_of(self, answer: Any, user: str, failures: HelperFailures) -> UserProfile | None:
        if isinstance(answer, ClusterError):
            failures.note("profile read", answer)
            return None
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, list):  # the profile and the session's events
            profile = self._checked(user_profile_of(answer[0], user))
            return replace(profile, session=session_events_of(answer[1])) if profile is not None else None
        return self._checked(user_profile_of(answer, user))

    def _checked(self, profile: UserProfile | None) -> UserProfile | None:
        if profile is not None:
            profile.check_model((self.profile.vector_meta or {}).get("model_id"))
        return profile


_COUNTS_NOTE = "document counts of the query's words (the adaptive fusion's evidence; correction off)"
_EARLY_NOTES = {
    "lexical": "lexical leg (+ its top hits with sources), sent before the vector is known",
    "page": "the BM25 page (lexical leg alone: its hits with sources, candidates counted)",
}


def _split_first(answer: Any, suggested: bool, planned: EarlyRequests, trip: FirstTrip) -> Any:
    """The suggestion's answer (``{}``: none asked); the early searches' answers go to ``trip.early``.

    A failed first request (a bad suggester, say) fails no search: the correction reports it, and the early
    searches are sent again where they would have gone without this plan.
    """
    if answer is None:
        return {}
    if isinstance(answer, BaseException):
        if not isinstance(answer, ClusterError) or not suggested:
            raise answer
        return answer
    responses = answer if isinstance(answer, list) else [answer]
    at = 1 if suggested else 0
    for name, sent in planned.items():
        trip.early[name] = (sent, responses[at : at + len(sent)])
        at += len(sent)
    return responses[0] if suggested else {}


def _correction_update(took_ms: float, rewrite: RewriteOutcome | None) -> dict[str, Any]:
    update: dict[str, Any] = {"took_ms": took_ms}
    if rewrite is not None:
        update.update(
            rewritten=rewrite.text if rewrite.rewritten else None,
            rewrite_fallback=rewrite.fallback,
            rewrite_fallback_reason=rewrite.reason,
        )
    return update
