"""The search flow end to end: validate, the first round trip, choose the form, then client- or server-side.

Pagination holds by construction: every page of a query is a slice of the same ranking of at most
``max_depth`` documents (each leg always fetches ``max_depth``, whatever the page), ties broken by ``_id``;
a page beyond ``max_depth`` raises :class:`~connector.errors.PaginationDepthError` instead of silently
returning less.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from connector.errors import ConfigError, PaginationDepthError, SearchRequestError
from connector.search import query_builder as qb
from connector.search.core import Call, EarlyRequests, FirstTrip, ms_since
from connector.search.correction import validate_correct_mode
from connector.search.filters import validate_filters
from connector.search.fusion import LegHit
from connector.search.images import check_query_image
from connector.search.models import (
    SEARCH_MODES,
    CorrectMode,
    FusionConfig,
    SearchMode,
    SearchResponse,
    SearchTimings,
)
from connector.search.ops import Flow
from connector.search.options import SearchOptions, options_signature
from connector.search.personal import DEFAULT_PERSONAL_WEIGHT, UserProfile, effective_weight, profile_search_body
from connector.search.planner import SearchPlan, plan_search
from connector.search.query_builder import os_missing_policy
from connector.search.request import SearchRequest
from connector.search.server import _ServerSide
from connector.ubi.records import query_record_from_response

__all__ = ["MAX_TEXT_CHARS", "_HybridCore"]

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 4096


class _HybridCore(_ServerSide):
    """What both facades share: the constructor, the search flow over validated options (sans-IO)."""

    def __init__(self, cluster: Any, index: str, *, options: SearchOptions | None = None, **kwargs: Any) -> None:
        """Validate the options: ``options``, or its fields as keyword arguments (see ``HybridSearch``).

        The full signature (every option) is built from :class:`~connector.search.options.SearchOptions` below.
        """
        if options is not None and kwargs:
            raise ConfigError(
                f"give options=SearchOptions(...) or keyword options, not both (got {', '.join(kwargs)})",
                field="options",
            )
        super().__init__(cluster, index, options if options is not None else SearchOptions(**kwargs))
        self._pipelines = set()
        self.ubi = self.options.ubi

    def _record_query(self, request: SearchRequest, response: SearchResponse) -> None:
        """Queue the UBI query record of a shopper's search (a ``ubi`` logger and a ``client_id``); never raises."""
        if self.ubi is not None and request.client_id:
            try:
                record = query_record_from_response(
                    response, client_id=request.client_id, session_id=request.session_id
                )
            except Exception:  # a record must never fail the search it describes
                logger.warning("ubi query record of %s not built", response.query_id, exc_info=True)
                return
            self.ubi.log_query(record)

    def _closeables(self) -> list[Any]:
        """What close/aclose close: the rewriter's pool and the embedders (the cluster belongs to the caller)."""
        return [self.rewriter, self.embedder, self.image.embedder if self.image is not None else None]

    def _search_flow(self, request: SearchRequest) -> Flow[SearchResponse]:
        started = time.perf_counter()
        r = request
        yield from self._profile_flow()
        clean_filters = self._validate(r.text, r.mode, r.size, r.page, r.filters, image=r.image)
        fusion = r.fusion or self.fusion
        strategy = r.strategy or self.strategy
        timings = SearchTimings()
        wanted, user_id = self._personal_request(r)
        # The form this search takes unless a helper fails or the shopper's profile makes it client-side: its
        # one-time setup (OpenSearch's search pipeline) rides in the first round trip.
        likely = self._choose_form(r.mode, fusion, strategy, r.explain or self.image is not None)
        source = qb.source_spec(r.source, excludes=self.source_excludes)
        plan = self._plan(r, likely, fusion, personal=wanted > 0 and r.user is not None, source=source is not False)
        setup = self._pipeline_setup(fusion) if plan.shape == "server" and likely == "os_hybrid_query" else None
        early = partial(self._early_requests, plan, clean_filters, source)
        trip = yield from self._first_trip(
            r.text, mode=r.mode, correct=r.correct, timings=timings, image=r.image, user=user_id, setup=setup,
            session=r.session_id if user_id is not None else None,
            early=early, count_words=plan.count_words,
        )  # fmt: skip
        if setup is not None:
            self._pipelines.add(qb.os_pipeline_name(fusion))
        given = self._checked(given_profile(r.user)) if wanted > 0 else None
        profile = trip.user if user_id is not None else given
        weight = effective_weight(profile, wanted)
        vector_on = trip.vector is not None
        form = self._choose_form(r.mode, fusion, strategy, r.explain or trip.image_vector is not None, vector_on)
        if weight > 0 and form is not None:  # the personal signal is fused client-side
            if strategy == "server":
                raise SearchRequestError(
                    "a personalized search fuses client-side; use strategy=auto or client", field="strategy"
                )
            form = None
        call = Call(
            r.text,
            trip.vector,
            r.mode,
            fusion,
            clean_filters,
            r.size,
            r.page,
            source,
            r.explain,
            timings,
            user=profile,
            personal_weight=weight,
            lexical_text=trip.correction.lexical_text if trip.correction is not None else "",
            image_vector=trip.image_vector,
            evidence=trip.evidence,
        )
        if form is not None:
            response = yield from self._server_flow(call, form)
        else:
            response = yield from self._client_flow(call, trip.early)
        return self._finished(response, trip, r.text, started)

    @staticmethod
    def _personal_request(r: SearchRequest) -> tuple[float, str | None]:
        """The personal weight asked for and the profile id to read in the first trip (None: none to read)."""
        wanted = DEFAULT_PERSONAL_WEIGHT if r.personal_weight is None else r.personal_weight
        effective_weight(None, wanted)  # validates personal_weight whoever the user is
        if isinstance(r.user, str):
            profile_search_body(r.user)  # validates the id before any request
        return wanted, (r.user if isinstance(r.user, str) and wanted > 0 else None)

    @staticmethod
    def _finished(response: SearchResponse, trip: FirstTrip, text: str, started: float) -> SearchResponse:
        """The first trip's correction and fallback flags on the response, and its total time."""
        if trip.correction is not None:
            response.correction = trip.correction
            response.corrected_query = trip.correction.searched if trip.correction.searched != text else None
            response.did_you_mean = trip.correction.did_you_mean
        response.vector_fallback = trip.failures.reason is not None
        response.vector_fallback_reason = trip.failures.reason
        response.timings.total_ms = ms_since(started)
        return response

    def _retrieve_legs_flow(
        self,
        text: str,
        *,
        mode: SearchMode,
        filters: Sequence[Mapping[str, Any]] | None,
        timings: SearchTimings | None,
        correct: CorrectMode | None = None,
    ) -> Flow[dict[str, list[LegHit]]]:
        timings = timings or SearchTimings()
        yield from self._profile_flow()
        clean = self._validate(text, mode if mode != "hybrid+rerank" else "hybrid", 1, 1, filters)
        # unguarded: an evaluation must not score a fallback as the vector leg (a failure raises)
        trip = yield from self._first_trip(text, mode=mode, correct=correct, timings=timings, guarded=False)
        lexical = trip.correction.lexical_text if trip.correction is not None else text
        bodies = self.leg_bodies(lexical if mode != "knn" else "", trip.vector, filters=clean)
        return (yield from self._legs_flow(bodies, timings))

    # -- validation and planning -----------------------------------------------------
    def _plan(
        self, r: SearchRequest, likely: str | None, fusion: FusionConfig, *, personal: bool, source: bool
    ) -> SearchPlan:
        return plan_search(
            mode=r.mode,
            has_text=bool(r.text),
            correct=validate_correct_mode(r.correct or self.correct),
            likely_form=likely,
            vector_refused=self._guards["query"].breaker.state == "open",
            personal=personal,
            image_signal=self.image is not None,
            first_rank=(r.page - 1) * r.size,
            size=r.size,
            max_depth=self.max_depth,
            source=source,
            adaptive=fusion.method == "adaptive",
        )

    def _early_requests(
        self, plan: SearchPlan, filters: Sequence[Mapping[str, Any]], source: bool | dict[str, Any], text: str
    ) -> EarlyRequests:
        """The plan's searches that ride in the first round trip, for ``text`` (the rewritten query)."""
        if plan.shape == "page":
            return {"page": [self.page_body(text, filters, fetch=plan.page_fetch, source=source)]}
        lexical = self.leg_bodies(text, None, filters=filters) if plan.early_legs else {}
        return {
            name: self.leg_requests(lexical[name], source=source, window=plan.sourced)
            for name in plan.early_legs
            if name in lexical
        }

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

    def _choose_form(
        self, mode: str, fusion: FusionConfig, strategy: str, explain: bool, vector_on: bool = True
    ) -> str | None:
        """The server-side form of this search, or ``None`` (client-side); a fallback search is client-side."""
        if mode not in ("hybrid", "hybrid+rerank") or not vector_on:
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


# help(HybridSearch) and inspect show every option, from the one declaration (SearchOptions).
_HybridCore.__init__.__signature__ = options_signature(inspect.signature(_HybridCore.__init__))  # type: ignore[attr-defined]


def given_profile(user: UserProfile | str | None) -> UserProfile | None:
    return user if isinstance(user, UserProfile) else None
