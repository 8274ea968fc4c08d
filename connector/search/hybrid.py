"""``HybridSearch``: one call takes the user's text, filters and page and returns fused hits.

Client-side strategy (works on every cluster): both legs in one ``_msearch``
round trip, each fetching ``max_depth`` candidate ids (no ``_source``), fused
in Python, then one ``_mget`` for the page's sources. Server-side strategy:
one request in the cluster's own hybrid form (see
:func:`~connector.search.query_builder.pick_server_form`).

The search logic is written once, as a sans-IO core: generators that yield
I/O operations (:class:`GetMapping`, :class:`Embed`, :class:`ClusterSearch`,
:class:`ClusterMsearch`, :class:`ClusterRequest`, :class:`Score`) and receive
their results. Two thin drivers perform them: :class:`HybridSearch` (sync,
``search(...)``) and :class:`AsyncHybridSearch` (``await search(...)``), so
both have the same options, results, explain output and errors.

Pagination holds by construction: every page of a query is a slice of the
same ranking of at most ``max_depth`` documents (each leg always fetches
``max_depth``, whatever the page), ties broken by ``_id``; a page beyond
``max_depth`` raises :class:`~connector.errors.PaginationDepthError` instead
of silently returning less.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from connector.cluster.detect import as_cluster
from connector.errors import (
    ClusterError,
    ConfigError,
    PaginationDepthError,
    RerankError,
    RerankTimeout,
    SearchRequestError,
)
from connector.search import query_builder as qb
from connector.search._profile import IndexProfile, profile_from_mapping
from connector.search.correction import (
    DEFAULT_CORRECT,
    DEFAULT_CORRECTION,
    CorrectionSettings,
    correction_from,
    correction_note,
    fuzzy_clause,
    suggest_body,
    suggester_of,
    validate_correct_mode,
    with_fuzziness,
)
from connector.search.defaults import resolve_fusion, resolve_lexical
from connector.search.explain import hit_explanation
from connector.search.filters import validate_filters
from connector.search.fusion import FusedDoc, LegHit, fuse, leg_hits, single_leg
from connector.search.images import IMAGE_SIGNAL, EmbedImage, ImageSignal, check_query_image, with_image_weight
from connector.search.models import (
    SEARCH_MODES,
    CorrectMode,
    ExecutedRequest,
    FusionConfig,
    HitExplanation,
    LexicalForm,
    PassageMatch,
    QueryCorrection,
    SearchHit,
    SearchMode,
    SearchResponse,
    SearchTimings,
    Strategy,
)
from connector.search.passages import best_passage, best_passages, passage_knn_leg_body, passage_server_body
from connector.search.personal import (
    DEFAULT_PERSONAL_WEIGHT,
    PERSONAL_SIGNAL,
    UserProfile,
    effective_weight,
    personal_body,
    personal_leg,
    profile_search_body,
    user_profile_of,
)
from connector.search.query_builder import os_missing_policy
from connector.search.query_vectors import Embedder, QueryVectors
from connector.search.rerank import RerankConfig, rerank_outcome, rerank_texts, score_texts
from connector.search.rewrite import QueryRewriter, RewriteOutcome, TimedRewriter
from mappings.system import profiles_index_name

__all__ = [
    "AsyncHybridSearch",
    "ClusterMsearch",
    "ClusterRequest",
    "ClusterSearch",
    "Embed",
    "Embedder",
    "GetMapping",
    "HybridSearch",
    "Reranker",
    "Rewrite",
    "Score",
    "os_missing_policy",
]

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 4096


@runtime_checkable
class Reranker(Protocol):
    """A reranker: one score per document for ``query`` (higher is better)."""

    def score(self, query: str, documents: Sequence[str]) -> list[float]: ...


@dataclass(frozen=True)
class _Call:
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
    # A user id whose profile is read inside the legs' _msearch (then ``user``/``personal_weight`` are set).
    pending_user: str | None = None
    lexical_text: str = ""  # what the lexical leg searches (the text plus corrected words); "" = text

    @property
    def lexical(self) -> str:
        return self.lexical_text or self.text

    image_vector: list[float] | None = None

    @property
    def first_rank(self) -> int:
        """The 0-based rank of the page's first hit."""
        return (self.page - 1) * self.size


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)


# -- the I/O operations the core yields; a driver performs each and sends back its result ----------
@dataclass(frozen=True)
class GetMapping:
    """``GET <index>/_mapping``; result: the mapping response body."""

    index: str


@dataclass(frozen=True)
class Embed:
    """The query vector of ``text`` (cached, model checked once); result: ``list[float]``."""

    text: str
    vector_meta: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ClusterSearch:
    """``GET <index>/_search``; result: the response body."""

    index: str
    body: Mapping[str, Any]
    params: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ClusterMsearch:
    """``GET <index>/_msearch``; result: the list of responses, in order."""

    index: str
    searches: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]


@dataclass(frozen=True)
class ClusterRequest:
    """Any other cluster request; result: the response body."""

    method: str
    path: str
    body: Any = None
    params: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Score:
    """Rerank scores of ``texts`` within the config's budget; result: ``list[float]``.

    A driver lets ``RerankError``/``ConfigError`` reach the core, which falls back to fused order.
    """

    config: RerankConfig
    query: str
    texts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Rewrite:
    """The query rewriter's text within its budget; result: a :class:`RewriteOutcome` (never raises)."""

    rewriter: TimedRewriter
    text: str


Op = GetMapping | Embed | ClusterSearch | ClusterMsearch | ClusterRequest | Score | Rewrite | EmbedImage
T = TypeVar("T")
Flow = Generator[Op, Any, T]


class _HybridCore:
    """What both drivers share: options, validation, planning and the search flows (sans-IO).

    The constructor's arguments are documented on :class:`HybridSearch`.
    """

    def __init__(
        self,
        cluster: Any,
        index: str,
        *,
        embedder: Embedder | None = None,
        vector_field: str | None = None,
        lexical_fields: Mapping[str, float] | None = None,
        lexical_form: LexicalForm | None = None,
        tie_breaker: float | None = None,
        fusion: FusionConfig | None = None,
        strategy: Strategy = "auto",
        max_depth: int = 100,
        num_candidates: int | None = None,
        source_excludes: Sequence[str] | None = None,
        rerank: RerankConfig | None = None,
        reranker: Reranker | None = None,
        rerank_window: int | None = None,
        query_cache_size: int = 1024,
        check_model: bool = True,
        profiles_index: str | None = None,
        correct: CorrectMode | None = None,
        correction: CorrectionSettings | None = None,
        rewriter: QueryRewriter | None = None,
        rewriter_timeout_s: float | None = 0.5,
        image: ImageSignal | None = None,
    ) -> None:
        if not index or not isinstance(index, str):
            raise ConfigError("index must be a non-empty index or alias name", field="index")
        if not 1 <= max_depth <= 10_000:
            raise ConfigError(f"max_depth must be within 1..10000, got {max_depth}", field="max_depth")
        if strategy not in ("auto", "client", "server"):
            raise ConfigError(f"strategy must be auto, client or server, got {strategy!r}", field="strategy")
        rerank_window = min(50, max_depth) if rerank_window is None else rerank_window
        if not 1 <= rerank_window <= max_depth:
            raise ConfigError(f"rerank_window must be within 1..max_depth ({max_depth})", field="rerank_window")
        if rerank is not None and reranker is not None:
            raise ConfigError("give rerank= (a RerankConfig) or reranker=, not both", field="rerank")
        if reranker is not None:
            rerank = RerankConfig(reranker=reranker, top_k=rerank_window, cache_size=0)
        if rerank is not None and rerank.top_k > max_depth:
            raise ConfigError(f"rerank top_k {rerank.top_k} exceeds max_depth {max_depth}", field="rerank")
        self.cluster: Any = as_cluster(cluster)  # the app's official sync client wrapped; a cluster as is
        self.index = index
        self.embedder = embedder
        self._fusion = fusion
        self.strategy: Strategy = strategy
        self.max_depth = max_depth
        self.num_candidates = num_candidates or max(2 * max_depth, 100)
        self._lexical_form = lexical_form
        self._tie_breaker = tie_breaker
        self.rerank = rerank
        self._rerank_with_template: RerankConfig | None = None
        self._vector_field = vector_field
        self._lexical_fields = dict(lexical_fields) if lexical_fields else None
        self._source_excludes = list(source_excludes) if source_excludes is not None else None
        self._profile: IndexProfile | None = None
        self._query_vectors = (
            QueryVectors(embedder, cache_size=query_cache_size, check_model=check_model)
            if embedder is not None
            else None
        )
        self._pipelines: set[str] = set()
        self.profiles_index = profiles_index or profiles_index_name(index)
        try:
            self.correct: CorrectMode = validate_correct_mode(correct or DEFAULT_CORRECT)
        except SearchRequestError as e:
            raise ConfigError(str(e), field="correct") from e
        self.correction = correction or DEFAULT_CORRECTION
        self.rewriter = TimedRewriter(rewriter, timeout_s=rewriter_timeout_s) if rewriter is not None else None
        self.image = image

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
                mapping, index=self.index, vector_field=self._vector_field, lexical_fields=self._lexical_fields
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
        return resolve_fusion(self._fusion, self.profile)

    @property
    def lexical_form(self) -> tuple[LexicalForm, float | None]:
        """The lexical form and tie breaker (argument, else the index's recommendation, else ours)."""
        try:
            caps = self.cluster.capabilities
        except ConfigError:  # a Cluster(url) never detected: bm25 still works, with the portable form
            caps = None
        return resolve_lexical(caps, self.profile, form=self._lexical_form, tie_breaker=self._tie_breaker)

    @property
    def source_excludes(self) -> list[str]:
        if self._source_excludes is not None:
            return self._source_excludes
        return [self.profile.vector_field, *([self.image.field] if self.image is not None else [])]

    # -- the search flow (sans-IO) ------------------------------------------------------
    def _search_flow(
        self,
        text: str,
        *,
        mode: SearchMode,
        filters: Sequence[Mapping[str, Any]] | None,
        size: int,
        page: int,
        explain: bool,
        fusion: FusionConfig | None,
        strategy: Strategy | None,
        source: bool | Sequence[str],
        user: UserProfile | str | None = None,
        personal_weight: float | None = None,
        correct: CorrectMode | None = None,
        image: bytes | None = None,
    ) -> Flow[SearchResponse]:
        started = time.perf_counter()
        yield from self._profile_flow()
        clean_filters = self._validate(text, mode, size, page, filters, image=image)
        fusion = fusion or self.fusion
        timings = SearchTimings()
        wanted = DEFAULT_PERSONAL_WEIGHT if personal_weight is None else personal_weight
        effective_weight(None, wanted)  # validates personal_weight whoever the user is
        early: list[ExecutedRequest] = []
        understood = (yield from self._understand_flow(text, correct, timings, early)) if text else None
        dense_text = understood.searched if understood is not None else text
        vector = None if mode == "bm25" or not text else (yield from self._embed_flow(dense_text, timings))
        image_vector = yield from self._image_flow(dense_text, image, mode)
        form = self._choose_form(mode, fusion, strategy or self.strategy, explain or image_vector is not None)
        # A user id is read inside the legs' _msearch when the search fuses client-side anyway; before
        # choosing a server-side form it is read first, so a cold start keeps that form.
        if isinstance(user, str):
            profile_search_body(user)  # validates the id before any request
        pending = user if isinstance(user, str) and form is None and wanted > 0 else None
        profile = None
        if pending is None and wanted > 0:
            profile = yield from self._user_flow(user)
        # A pending user carries the weight asked for; the profile read in the _msearch scales it.
        weight = wanted if pending is not None else effective_weight(profile, wanted)
        if weight > 0 and form is not None:  # the personal signal is fused client-side
            if (strategy or self.strategy) == "server":
                raise SearchRequestError(
                    "a personalized search fuses client-side; use strategy=auto or client", field="strategy"
                )
            form = None
        spec = qb.source_spec(source, excludes=self.source_excludes)
        lexical_text = understood.lexical_text if understood is not None else ""
        call = _Call(
            text,
            vector,
            mode,
            fusion,
            clean_filters,
            size,
            page,
            spec,
            explain,
            timings,
            user=profile,
            personal_weight=weight,
            pending_user=pending,
            lexical_text=lexical_text,
            image_vector=image_vector,
        )
        if form is not None:
            response = yield from self._server_flow(call, form)
        else:
            response = yield from self._client_flow(call)
        if understood is not None:
            response.requests[:0] = early
            response.correction = understood
            response.corrected_query = understood.searched if understood.searched != text else None
            response.did_you_mean = understood.did_you_mean
        response.timings.total_ms = _ms(started)
        return response

    def _user_flow(self, user: UserProfile | str | None) -> Flow[UserProfile | None]:
        """The shopper's profile: given, or read by id from the profiles index (unknown: ``None``)."""
        if user is None or isinstance(user, UserProfile):
            return self._checked(user)
        result = yield ClusterSearch(
            self.profiles_index, profile_search_body(user), params={"ignore_unavailable": "true"}
        )
        return self._checked(user_profile_of(result, user))

    def _checked(self, profile: UserProfile | None) -> UserProfile | None:
        if profile is not None:
            profile.check_model((self.profile.vector_meta or {}).get("model_id"))
        return profile

    def _understand_flow(
        self, text: str, correct: CorrectMode | None, timings: SearchTimings, requests: list[ExecutedRequest]
    ) -> Flow[QueryCorrection | None]:
        """The optional rewriter, then the spelling correction (one request; ``None``: neither is on).

        The correction runs before the legs because the dense leg embeds the corrected text.
        """
        mode = validate_correct_mode(correct or self.correct)
        if mode == "off" and self.rewriter is None:
            return None
        started = time.perf_counter()
        rewrite: RewriteOutcome | None = None
        if self.rewriter is not None:
            rewrite = yield Rewrite(self.rewriter, text)
        base = rewrite.text if rewrite is not None else text
        fields = list(self.profile.lexical_fields)
        shingle = next((self.profile.shingle_fields[f] for f in fields if f in self.profile.shingle_fields), None)
        suggester = suggester_of(shingle)
        body = (
            None
            if mode == "off"
            else suggest_body(base, fields=fields, shingle_field=shingle, settings=self.correction)
        )
        answer: Mapping[str, Any] | BaseException = {}
        if body is not None:
            try:
                answer = yield ClusterSearch(self.index, body)
                requests.append(
                    ExecutedRequest(
                        method="GET", path=f"{self.index}/_search", body=body, note=correction_note(suggester)
                    )
                )
            except ClusterError as e:
                answer = e
        result = correction_from(
            base, answer, mode=mode, suggester=suggester if body is not None else "none", settings=self.correction
        )
        timings.correct_ms = _ms(started)
        update: dict[str, Any] = {"took_ms": timings.correct_ms}
        if rewrite is not None:
            update.update(
                rewritten=rewrite.text if rewrite.rewritten else None,
                rewrite_fallback=rewrite.fallback,
                rewrite_fallback_reason=rewrite.reason,
            )
        return result.model_copy(update=update)

    # -- validation and planning -----------------------------------------------------
    def _validate(
        self,
        text: Any,
        mode: Any,
        size: Any,
        page: Any,
        filters: Sequence[Mapping[str, Any]] | None,
        *,
        image: bytes | None = None,
    ) -> list[dict[str, Any]]:
        if image is not None:
            check_query_image(image)
            if self.image is None or mode == "bm25":
                raise SearchRequestError(
                    "search by image needs an image signal (HybridSearch(image=ImageSignal(...))) and a mode "
                    "other than bm25",
                    field="image",
                )
        if not isinstance(text, str) or (not text.strip() and image is None):
            raise SearchRequestError("text must be a non-empty string", field="text")
        if len(text) > MAX_TEXT_CHARS:
            raise SearchRequestError(f"text is longer than {MAX_TEXT_CHARS} characters", field="text")
        if mode not in SEARCH_MODES:
            raise SearchRequestError(f"mode must be one of {', '.join(SEARCH_MODES)}, got {mode!r}", field="mode")
        if mode == "hybrid+rerank" and self.rerank is None:
            raise SearchRequestError(
                "mode hybrid+rerank needs a reranker (HybridSearch(rerank=RerankConfig(...)))", field="mode"
            )
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= self.max_depth:
            raise SearchRequestError(f"size must be an integer within 1..{self.max_depth}, got {size!r}", field="size")
        if isinstance(page, bool) or not isinstance(page, int) or page < 1:
            raise SearchRequestError(f"page must be an integer >= 1, got {page!r}", field="page")
        if page * size > self.max_depth:
            raise PaginationDepthError(
                f"page {page} of size {size} reaches rank {page * size}, beyond the maximum fused depth "
                f"{self.max_depth} (each leg fetches {self.max_depth} candidates); raise max_depth or "
                "narrow the query with filters",
                field="page",
                page=page,
                size=size,
                max_depth=self.max_depth,
            )
        if mode != "bm25" and self.embedder is None:
            raise SearchRequestError(f"mode {mode} needs an embedder (HybridSearch(embedder=...))", field="mode")
        if mode != "bm25" and not self.profile.has_vector_field:
            raise SearchRequestError(
                f"index {self.index!r} has no vector field {self.profile.vector_field!r}; add and fill it "
                "(eshybrid migrate / backfill) or search with mode=bm25",
                field="mode",
            )
        return validate_filters(filters)

    def _choose_form(self, mode: str, fusion: FusionConfig, strategy: Strategy, explain: bool) -> str | None:
        if mode not in ("hybrid", "hybrid+rerank"):
            return None
        if strategy == "client" or (strategy == "auto" and (explain or mode == "hybrid+rerank")):
            return None
        caps = self.cluster.capabilities
        form = qb.pick_server_form(caps, fusion, os_missing_policy=os_missing_policy(caps))
        if form is None and strategy == "server":
            raise SearchRequestError(
                f"{caps.display_name} has no one-request form computing {fusion.describe()} "
                f"(available: {', '.join(sorted(caps.hybrid_forms)) or 'none'}); use strategy=client",
                field="strategy",
            )
        if strategy == "server" and mode == "hybrid+rerank":
            raise SearchRequestError("hybrid+rerank fuses client-side; use strategy=auto or client", field="strategy")
        return form

    def _image_flow(self, text: str, image: bytes | None, mode: str) -> Flow[list[float] | None]:
        """The query's image-space vector: the example image, else the text (text-to-image); None without a signal."""
        if self.image is None or mode == "bm25":
            return None
        vector: list[float] = yield (EmbedImage(image=image) if image is not None else EmbedImage(text=text))
        return vector

    def _embed_flow(self, text: str, timings: SearchTimings) -> Flow[list[float]]:
        started = time.perf_counter()
        vector: list[float] = yield Embed(text, self.profile.vector_meta)
        timings.embed_ms = _ms(started)
        return vector

    def _lexical_query(self, text: str, filters: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        form, tie_breaker = self.lexical_form
        query = qb.lexical_query(
            text, fields=self.profile.lexical_fields, filters=filters, form=form, tie_breaker=tie_breaker
        )
        if self.correction.fuzziness:
            clause = fuzzy_clause(text, fields=self.profile.lexical_fields, settings=self.correction)
            query = with_fuzziness(query, clause)
        return query

    # -- client-side ---------------------------------------------------------------------
    def leg_bodies(
        self,
        text: str,
        vector: Sequence[float] | None,
        *,
        filters: Sequence[Mapping[str, Any]] = (),
        image_vector: Sequence[float] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """The leg search bodies (``lexical``, ``vector``, ``image``) for ``max_depth`` candidates each."""
        bodies: dict[str, dict[str, Any]] = {}
        if text:
            bodies["lexical"] = qb.lexical_leg_body(self._lexical_query(text, filters), size=self.max_depth)
        if vector is not None:
            # A passages field is searched with nested kNN: the best passage scores the document (issue 17).
            shape, name = self.cluster.capabilities.knn_leg_shape, self.profile.vector_field
            options: dict[str, Any] = {"k": self.max_depth, "num_candidates": self.num_candidates, "filters": filters}
            bodies["vector"] = (
                passage_knn_leg_body(vector, knn_shape=shape, path=name, **options)
                if self.profile.passages
                else qb.knn_leg_body(vector, knn_shape=shape, field=name, **options)
            )
        if image_vector is not None and self.image is not None:
            bodies[IMAGE_SIGNAL] = qb.knn_leg_body(
                image_vector,
                knn_shape=self.cluster.capabilities.knn_leg_shape,
                field=self.image.field,
                k=self.max_depth,
                num_candidates=self.num_candidates,
                filters=filters,
            )
        return bodies

    def _retrieve_legs_flow(
        self,
        text: str,
        *,
        mode: SearchMode,
        filters: Sequence[Mapping[str, Any]] | None,
        requests: list[ExecutedRequest] | None,
        timings: SearchTimings | None,
        correct: CorrectMode | None = None,
    ) -> Flow[dict[str, list[LegHit]]]:
        timings = timings or SearchTimings()
        requests = requests if requests is not None else []
        yield from self._profile_flow()
        clean = self._validate(text, mode if mode != "hybrid+rerank" else "hybrid", 1, 1, filters)
        understood = yield from self._understand_flow(text, correct, timings, requests)
        dense_text, lexical_text = (understood.searched, understood.lexical_text) if understood else (text, text)
        vector = None if mode == "bm25" else (yield from self._embed_flow(dense_text, timings))
        bodies = self.leg_bodies(lexical_text if mode != "knn" else "", vector, filters=clean)
        return (yield from self._legs_flow(bodies, requests, timings))

    def _legs_flow(
        self,
        bodies: Mapping[str, Mapping[str, Any]],
        requests: list[ExecutedRequest],
        timings: SearchTimings,
        extra: list[Any] | None = None,
        passages: dict[str, PassageMatch] | None = None,
    ) -> Flow[dict[str, list[LegHit]]]:
        """Run the legs in one round trip; ``extra`` (``[header, body]``) rides along in the ``_msearch``
        and is replaced by its response."""
        started = time.perf_counter()
        names = list(bodies)
        responses: list[Any]
        if len(names) == 1 and not extra:
            body = dict(bodies[names[0]])
            responses = [(yield ClusterSearch(self.index, body))]
            requests.append(
                ExecutedRequest(method="GET", path=f"{self.index}/_search", body=body, note=f"{names[0]} leg")
            )
        else:
            searches = qb.msearch_searches([bodies[n] for n in names])
            if extra:
                searches.append((extra[0], extra[1]))
            responses = yield ClusterMsearch(self.index, searches)
            if extra:
                extra[:] = [responses[-1]]
            lines = [line for pair in searches for line in pair]
            requests.append(
                ExecutedRequest(
                    method="GET",
                    path=f"{self.index}/_msearch",
                    ndjson=lines,
                    note="legs: "
                    + ", ".join(names)
                    + (" + the shopper's profile" if extra else "")
                    + " (one round trip)",
                )
            )
        timings.search_ms += _ms(started)
        if passages is not None and self.profile.passages and "vector" in names:
            passages.update(best_passages(responses[names.index("vector")], self.profile.vector_field))
        return {name: leg_hits(resp) for name, resp in zip(names, responses)}

    def _personal_flow(
        self, call: _Call, legs: Mapping[str, Sequence[LegHit]], requests: list[ExecutedRequest]
    ) -> Flow[list[LegHit]]:
        """The personal signal: the profile's kNN search over exactly the legs' candidates."""
        assert call.user is not None
        ids = [hit.id for leg in legs.values() for hit in leg]
        if not ids:
            return []
        started = time.perf_counter()
        body = personal_body(
            call.user, ids, knn_shape=self.cluster.capabilities.knn_leg_shape, field=self.profile.vector_field
        )
        result = yield ClusterSearch(self.index, body)
        call.timings.search_ms += _ms(started)
        requests.append(
            ExecutedRequest(
                method="GET",
                path=f"{self.index}/_search",
                body=body,
                note=f"personal signal: the shopper's profile over the {body['size']} candidates (exact: ids filter)",
            )
        )
        return personal_leg(leg_hits(result), ids)

    def _client_flow(self, call: _Call) -> Flow[SearchResponse]:
        requests: list[ExecutedRequest] = []
        bodies = self.leg_bodies(
            call.lexical if call.mode != "knn" else "",
            call.vector,
            filters=call.filters,
            image_vector=call.image_vector,
        )
        matches: dict[str, PassageMatch] = {}
        extra: list[Any] | None = None
        if call.pending_user is not None:
            header = {"index": self.profiles_index, "ignore_unavailable": True}
            extra = [header, profile_search_body(call.pending_user)]
        legs = yield from self._legs_flow(bodies, requests, call.timings, extra, passages=matches)
        if extra is not None and call.pending_user is not None:
            user = self._checked(user_profile_of(extra[0], call.pending_user))
            call = replace(call, user=user, personal_weight=effective_weight(user, call.personal_weight))
        if call.user is not None and call.personal_weight > 0:
            legs[PERSONAL_SIGNAL] = yield from self._personal_flow(call, legs, requests)
            call = _personalized(call, legs)
        started = time.perf_counter()
        if IMAGE_SIGNAL in legs and self.image is not None:
            call = replace(call, fusion=with_image_weight(call.fusion, self.image))
        signals = [name for name in legs if name not in ("lexical", "vector")]
        if len(legs) >= 2:
            ranking = fuse(legs, call.fusion)[: self.max_depth]
        else:
            ((name, only),) = legs.items()
            ranking = single_leg(only, leg=name)[: self.max_depth]
        call.timings.fuse_ms = _ms(started)
        sources: dict[str, dict[str, Any] | None] = {}
        rerank_scores: dict[str, float] = {}
        fallback: str | None = None
        if call.mode == "hybrid+rerank":
            ranking, rerank_scores, fallback = yield from self._rerank_flow(call, ranking, sources, requests)
        window = ranking[call.first_rank : call.first_rank + call.size]
        missing = [d for d in window if d.id not in sources]
        if call.source is not False and missing:
            sources.update((yield from self._sources_flow(missing, call.source, requests, call.timings)))
        strategy: Literal["client", "single"] = "client" if len(legs) >= 2 else "single"
        hits = [
            SearchHit(
                id=doc.id,
                index=doc.hit.index,
                rank=call.first_rank + i,
                score=rerank_scores.get(doc.id, doc.score),
                source=sources.get(doc.id),
                explanation=hit_explanation(
                    doc,
                    mode=call.mode,
                    strategy=strategy,
                    fusion=call.fusion,
                    rerank_score=rerank_scores.get(doc.id),
                    passage=matches.get(doc.id),
                    signals=signals,
                )
                if call.explain
                else None,
            )
            for i, doc in enumerate(window, start=1)
        ]
        return SearchResponse(
            index=self.index,
            query=call.text,
            mode=call.mode,
            strategy=strategy,
            fusion=call.fusion if len(legs) >= 2 else None,
            page=call.page,
            size=call.size,
            max_depth=self.max_depth,
            candidates=len(ranking),
            hits=hits,
            reranked=bool(rerank_scores),
            rerank_fallback=fallback is not None,
            rerank_fallback_reason=fallback,
            timings=call.timings,
            requests=requests,
            user=call.user.user_id if call.user is not None else None,
            personal_weight=call.personal_weight if signals else None,
        )

    def _sources_flow(
        self,
        docs: Sequence[FusedDoc],
        source: bool | dict[str, Any],
        requests: list[ExecutedRequest],
        timings: SearchTimings,
    ) -> Flow[dict[str, dict[str, Any] | None]]:
        started = time.perf_counter()
        body = qb.mget_body([(d.hit.index or self.index, d.id, d.hit.routing) for d in docs])
        # realtime=false: read the same refreshed view the legs searched (and skip the realtime path).
        params: dict[str, str] = {"realtime": "false"}
        if isinstance(source, dict):
            if source.get("excludes"):
                params["_source_excludes"] = ",".join(source["excludes"])
            if source.get("includes"):
                params["_source_includes"] = ",".join(source["includes"])
        result = yield ClusterRequest("POST", "/_mget", body=body, params=params)
        requests.append(
            ExecutedRequest(method="GET", path="_mget", params=params, body=body, note="sources of the page's hits")
        )
        timings.fetch_ms += _ms(started)
        return {str(d["_id"]): d.get("_source") for d in result.get("docs", []) if d.get("found")}

    def _rerank_config(self) -> RerankConfig:
        """The rerank config; without a template or fields of its own, the index ``_meta`` template."""
        assert self.rerank is not None
        if self._rerank_with_template is None:
            config = self.rerank
            if config.template is None and config.fields is None and self.profile.template:
                config.backend()  # built once here, so the copy below shares it
                config = config.model_copy(update={"template": self.profile.template})
            self._rerank_with_template = config
        return self._rerank_with_template

    def _rerank_flow(
        self,
        call: _Call,
        ranking: list[FusedDoc],
        sources: dict[str, dict[str, Any] | None],
        requests: list[ExecutedRequest],
    ) -> Flow[tuple[list[FusedDoc], dict[str, float], str | None]]:
        """Reorder the fixed top ``top_k`` by the reranker (``apply_rerank``'s steps); fused order on failure.

        Returns:
            The new ranking, rerank scores by id, and the fallback reason (``None``: reranked).
        """
        config = self._rerank_config()
        window = ranking[: config.top_k]
        fetch_spec = call.source if call.source is not False else {"excludes": self.source_excludes}
        sources.update((yield from self._sources_flow(window, fetch_spec, requests, call.timings)))
        started = time.perf_counter()
        scores: list[float] | BaseException = []
        if window:
            try:
                scores = yield Score(config, call.text, rerank_texts(ranking, config, sources=sources))
            except (RerankError, ConfigError) as e:
                scores = e
        outcome = rerank_outcome(ranking, config, scores, started=started)
        call.timings.rerank_ms = outcome.took_ms
        if outcome.fallback:
            return ranking, {}, outcome.reason or "the reranker failed"
        return list(outcome.hits), dict(outcome.scores_by_id), None

    # -- server-side ---------------------------------------------------------------------
    def server_body(
        self,
        text: str,
        vector: Sequence[float],
        *,
        form: str,
        fusion: FusionConfig,
        filters: Sequence[Mapping[str, Any]] = (),
        size: int = 10,
        page: int = 1,
        source: bool | dict[str, Any] = False,
    ) -> dict[str, Any]:
        """The one-request body of ``form`` for one page (pure given the index profile)."""
        query = self._lexical_query(text, filters)
        options: dict[str, Any] = {
            "fusion": fusion,
            "depth": self.max_depth,
            "num_candidates": self.num_candidates,
            "filters": filters,
            "size": size,
            "from_": (page - 1) * size,
            "source": source,
        }
        if self.profile.passages:
            return passage_server_body(form, query, vector, path=self.profile.vector_field, **options)
        return qb.server_body(form, query, vector, field=self.profile.vector_field, **options)

    @property
    def _passage_path(self) -> str | None:
        return self.profile.vector_field if self.profile.passages else None

    def _pipeline_flow(self, fusion: FusionConfig, requests: list[ExecutedRequest]) -> Flow[str]:
        name = qb.os_pipeline_name(fusion)
        if name not in self._pipelines:
            body = qb.os_pipeline_body(fusion)
            yield ClusterRequest("PUT", f"/_search/pipeline/{name}", body=body)
            requests.append(
                ExecutedRequest(
                    method="PUT",
                    path=f"_search/pipeline/{name}",
                    body=body,
                    note="search pipeline for the hybrid query (created once, idempotent)",
                )
            )
            self._pipelines.add(name)
        return name

    def _server_flow(self, call: _Call, form: str) -> Flow[SearchResponse]:
        assert call.vector is not None
        requests: list[ExecutedRequest] = []
        params: dict[str, str] = {}
        if form == "os_hybrid_query":
            params["search_pipeline"] = yield from self._pipeline_flow(call.fusion, requests)
        body = self.server_body(
            call.lexical,
            call.vector,
            form=form,
            fusion=call.fusion,
            filters=call.filters,
            size=call.size,
            page=call.page,
            source=call.source,
        )
        started = time.perf_counter()
        result = yield ClusterSearch(self.index, body, params=params or None)
        call.timings.search_ms += _ms(started)
        requests.append(
            ExecutedRequest(
                method="GET",
                path=f"{self.index}/_search",
                params=params,
                body=body,
                note=f"server-side hybrid ({form}), fused by the cluster",
            )
        )
        raw = (result.get("hits") or {}).get("hits") or []
        return SearchResponse(
            index=self.index,
            query=call.text,
            mode=call.mode,
            strategy="server",
            server_form=form,
            fusion=call.fusion,
            page=call.page,
            size=call.size,
            max_depth=self.max_depth,
            candidates=None,
            hits=[
                _server_hit(h, call, form, rank=call.first_rank + i, passages=self._passage_path)
                for i, h in enumerate(raw, start=1)
            ],
            timings=call.timings,
            requests=requests,
        )


class HybridSearch(_HybridCore):
    """Hybrid (BM25 + kNN) search over one index or alias.

    Args:
        cluster: a :class:`connector.cluster.client.Cluster` (see :func:`connector.connect`); for
            :class:`AsyncHybridSearch`, a cluster with async ``request``/``search``/``msearch``/``get_mapping``.
        index: index or alias name.
        embedder: turns the query text into a vector (an ``EmbeddingClient``); needed for
            ``knn`` and ``hybrid`` modes.
        vector_field: the vector field (default: from ``_meta``, else ``embedding``).
        lexical_fields: field -> boost for the lexical leg (default: the index's recommendation
            in ``_meta`` (``eshybrid tune``), else the vector field's ``source_fields``, else every text field).
        lexical_form: ``combined_fields`` | ``best_fields`` | ``most_fields`` | ``cross_fields``
            (default: the index's recommendation, else ``combined_fields`` where the engine has it,
            see :mod:`connector.search.defaults`).
        tie_breaker: ``multi_match`` tie breaker.
        fusion: default :class:`FusionConfig` (default: the index's recommendation, else
            :data:`~connector.search.models.DEFAULT_FUSION`).
        strategy: ``auto`` | ``client`` | ``server`` (default for every search).
        max_depth: candidates each leg fetches; the deepest rank a page may reach.
        num_candidates: Elasticsearch's HNSW candidate list (default ``max(2 * max_depth, 100)``);
            OpenSearch searches with ``k = max_depth``.
        source_excludes: ``_source`` fields never returned (default: the vector field).
        rerank: a :class:`connector.search.rerank.RerankConfig` (reranker, ``top_k``, document text,
            time budget) used by ``mode="hybrid+rerank"``.
        reranker: shortcut for ``rerank``: any object with ``score(query, documents)``; wrapped in a
            ``RerankConfig(top_k=rerank_window)``.
        rerank_window: ``top_k`` for ``reranker`` (default ``min(50, max_depth)``); the reranked window is
            fixed whatever the page, so pages stay consistent.
        query_cache_size: query vectors kept in memory, for an embedder without a cache of its own
            (0: none). An ``EmbeddingClient`` caches with its own ``query_cache_size``, and the search
            does not cache its vectors a second time.
        check_model: compare the embedder's model with the index ``_meta`` once (when both tell).
        profiles_index: where ``search(user="id")`` reads shopper profiles (default
            ``eshybrid-profiles-<index>``, as ``eshybrid profiles build`` writes them).
        correct: spelling correction of every search that names none: ``off`` | ``auto`` (confident
            changes only) | ``force`` (default :data:`~connector.search.correction.DEFAULT_CORRECT`).
        correction: its thresholds and the optional fuzzy clause (:class:`CorrectionSettings`).
        rewriter: an optional query rewriter (anything with ``rewrite(text) -> str``), run first.
        rewriter_timeout_s: the rewriter's budget per call; over it, the original text is searched.

    Raises:
        ConfigError: bad options.
    """

    # -- public API ------------------------------------------------------------------
    def search(
        self,
        text: str,
        *,
        mode: SearchMode = "hybrid",
        filters: Sequence[Mapping[str, Any]] | None = None,
        size: int = 10,
        page: int = 1,
        explain: bool = False,
        fusion: FusionConfig | None = None,
        strategy: Strategy | None = None,
        source: bool | Sequence[str] = True,
        user: UserProfile | str | None = None,
        personal_weight: float | None = None,
        correct: CorrectMode | None = None,
        image: bytes | None = None,
    ) -> SearchResponse:
        """Run one search and return one page of hits.

        Args:
            text: the user's text (used in ``multi_match`` and embedded; never parsed as a query).
            mode: ``bm25`` | ``knn`` | ``hybrid`` | ``hybrid+rerank``.
            filters: query-DSL filter clauses, applied to both legs (inside kNN as a pre-filter).
            size: hits per page (1..max_depth).
            page: 1-based page number.
            explain: attach each hit's per-leg raw score, rank, normalized value, weight and fused score.
            fusion: override the instance's :class:`FusionConfig` for this call.
            strategy: override ``auto`` | ``client`` | ``server`` for this call.
            source: ``True`` (all but the vector), ``False`` (ids only) or fields to include.
            user: the shopper: a :class:`~connector.search.personal.UserProfile`, or a user id read from
                ``profiles_index`` (unknown id: no personalization). Adds the ``personal`` signal over the
                legs' candidates (it reorders, never adds); fused client-side.
            personal_weight: the personal signal's weight beside the legs' (default
                :data:`~connector.search.personal.DEFAULT_PERSONAL_WEIGHT`), scaled by the profile's
                concentration; 0 below :data:`~connector.search.personal.MIN_EVENTS` events.
            correct: override the instance's spelling correction (``off`` | ``auto`` | ``force``).
            image: an example image (the bytes of its file): the image signal searches with its vector instead
                of the text's (needs ``image=ImageSignal(...)``); ``text`` may then be empty.

        Returns:
            A :class:`SearchResponse` (:func:`connector.search.console.render_response` renders what ran).

        Raises:
            SearchRequestError: invalid text, mode, filters, size or page (``field`` says which).
            PaginationDepthError: ``page * size`` exceeds ``max_depth``.
            EmbeddingError: the embedding service failed (knn/hybrid modes).
            ClusterError: the cluster failed.
        """
        flow = self._search_flow(
            text,
            mode=mode,
            filters=filters,
            size=size,
            page=page,
            explain=explain,
            fusion=fusion,
            strategy=strategy,
            source=source,
            user=user,
            personal_weight=personal_weight,
            correct=correct,
            image=image,
        )
        return self._drive(flow)

    def retrieve_legs(
        self,
        text: str,
        *,
        mode: SearchMode = "hybrid",
        filters: Sequence[Mapping[str, Any]] | None = None,
        requests: list[ExecutedRequest] | None = None,
        timings: SearchTimings | None = None,
        correct: CorrectMode | None = None,
    ) -> dict[str, list[LegHit]]:
        """Run the legs of ``mode`` once (one round trip) and return their candidates.

        Used by :meth:`search` and by fusion tuning (fuse the same legs many ways).
        """
        flow = self._retrieve_legs_flow(
            text, mode=mode, filters=filters, requests=requests, timings=timings, correct=correct
        )
        return self._drive(flow)

    def close(self) -> None:
        """Close the embedders when they can be closed (the cluster belongs to the caller)."""
        if self.rewriter is not None:
            self.rewriter.close()
        for embedder in (self.embedder, self.image.embedder if self.image else None):
            close = getattr(embedder, "close", None)
            if callable(close):
                close()

    # -- the sync driver -------------------------------------------------------------
    def _read_profile(self) -> IndexProfile:
        return self._drive(self._profile_flow())

    def _drive(self, flow: Flow[T]) -> T:
        """Run a flow to its end, performing each operation it yields (errors are thrown back in)."""
        result: Any = None
        error: Exception | None = None
        while True:
            try:
                op = flow.throw(error) if error is not None else flow.send(result)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            result, error = None, None
            try:
                result = self._perform(op)
            except Exception as e:  # noqa: BLE001 - the flow sees it where it asked, and re-raises or handles it
                error = e

    def _perform(self, op: Op) -> Any:
        if isinstance(op, ClusterSearch):
            return self.cluster.search(op.index, op.body, params=op.params)
        if isinstance(op, ClusterMsearch):
            return self.cluster.msearch(op.index, op.searches)
        if isinstance(op, ClusterRequest):
            return self.cluster.request(op.method, op.path, body=op.body, params=op.params).body
        if isinstance(op, Embed):
            assert self._query_vectors is not None
            return self._query_vectors.vector(op.text, vector_meta=op.vector_meta)
        if isinstance(op, Score):
            return score_texts(op.config, op.query, op.texts)
        if isinstance(op, Rewrite):
            return op.rewriter.apply(op.text)
        if isinstance(op, GetMapping):
            return self.cluster.get_mapping(op.index)
        if isinstance(op, EmbedImage):
            assert self.image is not None
            return self.image.vector(op)
        raise TypeError(f"unknown search operation {op!r}")


class AsyncHybridSearch(_HybridCore):
    """:class:`HybridSearch` for async application code: the same options, search logic, results,
    explain output and errors; every round trip is awaited.

    ``cluster`` is an async cluster (``await connector.aconnect(...)``, e.g. over the application's own
    ``AsyncElasticsearch`` or ``AsyncOpenSearch``). The embedder's ``embed_query`` and a reranker's
    ``score`` are awaited when they are coroutine functions, and run in a worker thread otherwise.

    ::

        search = AsyncHybridSearch(cluster, "products", embedder=AsyncEmbeddingClient(url))
        response = await search.search("red running shoes", size=10)
    """

    async def search(
        self,
        text: str,
        *,
        mode: SearchMode = "hybrid",
        filters: Sequence[Mapping[str, Any]] | None = None,
        size: int = 10,
        page: int = 1,
        explain: bool = False,
        fusion: FusionConfig | None = None,
        strategy: Strategy | None = None,
        source: bool | Sequence[str] = True,
        user: UserProfile | str | None = None,
        personal_weight: float | None = None,
        correct: CorrectMode | None = None,
        image: bytes | None = None,
    ) -> SearchResponse:
        """:meth:`HybridSearch.search`, awaited: the same arguments, result and errors."""
        flow = self._search_flow(
            text,
            mode=mode,
            filters=filters,
            size=size,
            page=page,
            explain=explain,
            fusion=fusion,
            strategy=strategy,
            source=source,
            user=user,
            personal_weight=personal_weight,
            correct=correct,
            image=image,
        )
        return await self._adrive(flow)

    async def retrieve_legs(
        self,
        text: str,
        *,
        mode: SearchMode = "hybrid",
        filters: Sequence[Mapping[str, Any]] | None = None,
        requests: list[ExecutedRequest] | None = None,
        timings: SearchTimings | None = None,
        correct: CorrectMode | None = None,
    ) -> dict[str, list[LegHit]]:
        """:meth:`HybridSearch.retrieve_legs`, awaited."""
        flow = self._retrieve_legs_flow(
            text, mode=mode, filters=filters, requests=requests, timings=timings, correct=correct
        )
        return await self._adrive(flow)

    async def load_profile(self) -> IndexProfile:
        """Read the index mapping once (``search`` does it; call it before reading ``profile`` or ``fusion``)."""
        return await self._adrive(self._profile_flow())

    async def aclose(self) -> None:
        """Close the embedder when it can be closed (awaited when its ``aclose``/``close`` is async)."""
        for name in ("aclose", "close"):
            close = getattr(self.embedder, name, None)
            if callable(close):
                result = close()
                if inspect.isawaitable(result):
                    await result
                return

    async def __aenter__(self) -> AsyncHybridSearch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the async driver ------------------------------------------------------------
    def _read_profile(self) -> IndexProfile:
        raise ConfigError(
            f"the mapping of {self.index!r} is not read yet: await search.load_profile() first "
            "(search() reads it on its own)",
            field="index",
        )

    async def _adrive(self, flow: Flow[T]) -> T:
        """:meth:`HybridSearch._drive`, awaiting each operation."""
        result: Any = None
        error: Exception | None = None
        while True:
            try:
                op = flow.throw(error) if error is not None else flow.send(result)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            result, error = None, None
            try:
                result = await self._aperform(op)
            except Exception as e:  # noqa: BLE001 - see HybridSearch._drive
                error = e

    async def _aperform(self, op: Op) -> Any:
        if isinstance(op, ClusterSearch):
            return await self.cluster.search(op.index, op.body, params=op.params)
        if isinstance(op, ClusterMsearch):
            return await self.cluster.msearch(op.index, op.searches)
        if isinstance(op, ClusterRequest):
            return (await self.cluster.request(op.method, op.path, body=op.body, params=op.params)).body
        if isinstance(op, Embed):
            assert self._query_vectors is not None
            return await self._query_vectors.avector(op.text, vector_meta=op.vector_meta)
        if isinstance(op, Score):
            return await _ascore(op)
        if isinstance(op, Rewrite):
            return await asyncio.to_thread(op.rewriter.apply, op.text)
        if isinstance(op, GetMapping):
            return await self.cluster.get_mapping(op.index)
        if isinstance(op, EmbedImage):
            assert self.image is not None
            return await asyncio.to_thread(self.image.vector, op)
        raise TypeError(f"unknown search operation {op!r}")


async def _ascore(op: Score) -> list[float]:
    """Rerank scores for the async driver: an async ``score`` awaited within the budget; a sync one in a thread."""
    reranker = op.config.reranker
    score = getattr(reranker, "score", None)
    if reranker is None or not inspect.iscoroutinefunction(score):
        return await asyncio.to_thread(score_texts, op.config, op.query, op.texts)
    budget = op.config.timeout_s
    try:
        if "timeout_s" in inspect.signature(score).parameters:
            coro = score(op.query, op.texts, timeout_s=budget)
        else:
            coro = score(op.query, op.texts)
        return [float(s) for s in await asyncio.wait_for(coro, timeout=budget)]
    except TimeoutError as e:
        raise RerankTimeout(f"the reranker took over its {budget:g}s budget", timeout_s=budget) from e
    except RerankError:
        raise
    except Exception as e:  # noqa: BLE001 - a reranker failure is a fallback, never an error page
        raise RerankError(f"the reranker failed: {type(e).__name__}: {e}") from e


def _personalized(call: _Call, legs: Mapping[str, Sequence[LegHit]]) -> _Call:
    """The call with the personal signal's weight in its fusion (a lone leg weighs 1 beside it)."""
    weights = {PERSONAL_SIGNAL: call.personal_weight}
    if len(legs) == 2:  # one leg + personal
        weights.update({name: 1.0 for name in legs if name != PERSONAL_SIGNAL})
    return replace(call, fusion=call.fusion.with_weights(weights))


def _server_hit(hit: Mapping[str, Any], call: _Call, form: str, *, rank: int, passages: str | None) -> SearchHit:
    """One hit of a server-side answer (the cluster fused it: no per-leg explanation; the best passage when
    ``passages`` names the passages field and the form returns ``inner_hits``)."""
    score = float(hit.get("_score") or 0.0)
    explanation = None
    if call.explain:
        explanation = HitExplanation(
            mode=call.mode,
            strategy="server",
            fusion=call.fusion.describe(),
            server_form=form,
            fused_score=score,
            passage=best_passage(hit, passages) if passages else None,
        )
    return SearchHit(
        id=str(hit["_id"]),
        index=str(hit.get("_index", "")),
        rank=rank,
        score=score,
        source=hit.get("_source") if call.source is not False else None,
        explanation=explanation,
    )
