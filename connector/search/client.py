"""Client-side hybrid search: the legs in one round trip, fused in Python, the page's sources beside the legs.

Every leg fetches ``max_depth`` candidates whatever the page (pagination is a slice of one ranking). When the
caller wants sources, a copy of each leg in the same ``_msearch`` returns its top hits with their ``_source``
(vectors excluded), so the page is nearly always served without an ``_mget``; only a source still missing
(a hit from deep in both legs, or a reranker's window) is fetched, one more round trip.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from connector.errors import ConfigError, RerankError
from connector.search import query_builder as qb
from connector.search.core import Call, EarlyAnswers, _CoreBase, ms_since
from connector.search.explain import hit_explanation
from connector.search.fusion import FusedDoc, LegHit, fuse_explained, leg_hits, single_leg
from connector.search.images import IMAGE_SIGNAL, with_image_weight
from connector.search.models import PassageMatch, SearchHit, SearchResponse, SearchTimings
from connector.search.ops import ClusterMsearch, ClusterRequest, ClusterSearch, Flow, Score
from connector.search.passages import best_passages
from connector.search.personal import PERSONAL_SIGNAL, PersonalSignal, candidate_values
from connector.search.rerank import RerankConfig, rerank_outcome, rerank_texts
from connector.search.signals import LegContext, leg_signals

__all__ = ["_ClientSide"]

Sources = dict[str, dict[str, Any] | None]


class _ClientSide(_CoreBase):
    """The legs, their fusion, the personal signal, the reranker and the page (sans-IO)."""

    _rerank_with_template: RerankConfig | None = None

    def leg_bodies(
        self,
        text: str,
        vector: Sequence[float] | None,
        *,
        filters: Sequence[Mapping[str, Any]] = (),
        image_vector: Sequence[float] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """The leg search bodies (``lexical``, ``vector``, ``image``) for ``max_depth`` candidates each."""
        ctx = LegContext(
            text=text,
            vector=vector,
            image_vector=image_vector,
            filters=filters,
            depth=self.max_depth,
            num_candidates=self.num_candidates,
            knn_shape=lambda: str(self.cluster.capabilities.knn_leg_shape),
            lexical_query=self._lexical_query,
        )
        bodies = {signal.name: signal.body(ctx) for signal in leg_signals(self.profile, self.image)}
        return {name: body for name, body in bodies.items() if body is not None}

    def leg_requests(
        self, body: Mapping[str, Any], *, source: bool | dict[str, Any], window: int
    ) -> list[dict[str, Any]]:
        """What one leg sends: its body, and with ``source`` and a ``window`` its top hits again with sources."""
        sent = [dict(body)]
        if source is not False and window > 0:
            sent.append({**body, "size": min(window, self.max_depth), "_source": source})
        return sent

    def page_body(
        self, text: str, filters: Sequence[Mapping[str, Any]], *, fetch: int, source: bool | dict[str, Any]
    ) -> dict[str, Any]:
        """The BM25 page of a lexical-only search: ``fetch`` hits with their sources, candidates counted."""
        body = qb.lexical_leg_body(self._lexical_query(text, filters), size=fetch, source=source)
        body["track_total_hits"] = self.max_depth
        return body

    def _legs_flow(
        self,
        bodies: Mapping[str, Mapping[str, Any]],
        timings: SearchTimings,
        *,
        source: bool | dict[str, Any] = False,
        sources: Sources | None = None,
        passages: dict[str, PassageMatch] | None = None,
        window: int = 0,
        answered: EarlyAnswers | None = None,
        riders: Sequence[Mapping[str, Any]] = (),
        answers: list[Any] | None = None,
    ) -> Flow[dict[str, list[LegHit]]]:
        """Run the legs in one round trip (the ones ``answered`` in the first round trip are not sent again).

        With ``source`` and a ``window``, each leg's top ``window`` hits come back with their sources (into
        ``sources``) from a copy of the leg in the same ``_msearch``: the legs' ``max_depth`` candidates travel
        as ids, and the sources only of the hits a page can show (measured on ES 9: 100 sources per leg cost
        more than a round trip; the page's hits are nearly always in a leg's top ranks).
        ``riders``: further searches of the same round trip (after the legs and their copies); ``answers``
        receives every response in the order sent.
        """
        started = time.perf_counter()
        names = list(bodies)
        window = window if sources is not None else 0
        planned = {n: self.leg_requests(bodies[n], source=source, window=window) for n in names}
        known = {n: got for n, (sent, got) in (answered or {}).items() if planned.get(n) == sent}
        todo = [n for n in names if n not in known]
        sent = [planned[n][0] for n in todo] + [line for n in todo for line in planned[n][1:]]
        sent += [dict(rider) for rider in riders]
        responses: list[Any] = []
        if len(sent) == 1:
            responses = [(yield ClusterSearch(self.index, sent[0], note=f"{todo[0]} leg"))]
        elif sent:
            pages = f" + their top {window} with sources" if len(sent) > len(todo) else ""
            note = "legs: " + ", ".join(todo) + pages + " (one round trip)"
            responses = yield ClusterMsearch(self.index, qb.msearch_searches(sent), note=note)
        timings.search_ms += ms_since(started)
        if answers is not None:
            answers.extend(responses)
        by_name = dict(zip(todo, responses, strict=False))
        copies = responses[len(todo) : len(responses) - len(riders)]
        for name, got in known.items():
            by_name[name] = got[0]
            copies = [*got[1:], *copies]
        if sources is not None:
            for response in copies:
                for hit in (response.get("hits") or {}).get("hits") or []:
                    sources.setdefault(str(hit["_id"]), hit.get("_source"))
        if passages is not None and self.profile.passages and "vector" in by_name:
            passages.update(best_passages(by_name["vector"], self.profile.vector_field))
        signals = {signal.name: signal for signal in leg_signals(self.profile, self.image)}
        return {name: signals[name].hits(by_name[name]) for name in names}

    def _page_flow(self, call: Call, early: EarlyAnswers, sources: Sources) -> Flow[tuple[list[LegHit], int] | None]:
        """The lexical leg from the BM25 page sent early (sent again for a corrected text): its hits and candidates.

        ``None`` when the page cannot stand for the leg's ranking (a tie across the page's end, a repeated id):
        the search then runs the lexical leg itself.
        """
        (sent, (response,)) = early["page"]
        body = self.page_body(call.lexical, call.filters, fetch=int(sent[0]["size"]), source=call.source)
        if body != sent[0]:
            started = time.perf_counter()
            response = yield ClusterSearch(self.index, body, note="the BM25 page, for the corrected text")
            call.timings.search_ms += ms_since(started)
        hits = leg_hits(response)
        end, fetch = call.first_rank + call.size, int(body["size"])
        tie = len(hits) == fetch and fetch > end and hits[end - 1].score == hits[end].score
        if tie or len({h.id for h in hits}) != len(hits):
            return None
        for hit in (response.get("hits") or {}).get("hits") or []:
            sources.setdefault(str(hit["_id"]), hit.get("_source"))
        total = ((response.get("hits") or {}).get("total") or {}).get("value", len(hits))
        return hits, min(int(total), self.max_depth)

    def _personal_signal(
        self, call: Call, legs: dict[str, list[LegHit]], answers: Sequence[Mapping[str, Any]]
    ) -> tuple[Call, dict[str, dict[str, float]]]:
        """Add the personal signal's hits to ``legs`` (from the candidates' values the legs returned); the call
        with its fusion weight, and each candidate's affinities that moved it."""
        assert call.user is not None
        values = candidate_values(answers[: len(legs)])
        session = candidate_values(answers[len(answers) - 1 :]) if call.user.session else {}
        signal = PersonalSignal.of(call.user, call.personal_weight, session_values=session)
        rrf = call.fusion.method == "rrf"
        hits = signal.leg([hit for leg in legs.values() for hit in leg], values, rrf=rrf)
        legs[PERSONAL_SIGNAL] = hits
        matched = {h.id: signal.matches(values.get(h.id) or {}) for h in hits if h.score > 0} if call.explain else {}
        return _personalized(call, legs, signal.fusion_weight(hits, rrf=rrf)), matched

    def _signals_flow(
        self,
        call: Call,
        early: EarlyAnswers,
        sources: Sources,
        matches: dict[str, PassageMatch],
        answers: list[Any],
    ) -> Flow[tuple[dict[str, list[LegHit]], int | None]]:
        """The legs' hits (from the BM25 page sent early, else the legs' ``_msearch``) and, from the page, the
        candidates it counted (``None``: as many as the ranking holds).  With the personal signal on, the legs ask
        for the affinity fields' doc values and the session products' lookup rides along (``answers``: the raw
        responses, legs first, the session's last)."""
        paged = (yield from self._page_flow(call, early, sources)) if "page" in early else None
        if paged is not None:
            return {"lexical": paged[0]}, paged[1]
        lexical_on = call.mode != "knn" or call.vector is None
        bodies = self.leg_bodies(
            call.lexical if lexical_on else "", call.vector, filters=call.filters, image_vector=call.image_vector
        )
        riders: list[dict[str, Any]] = []
        if _personal_on(call):
            fields = _affinity_fields(call)
            bodies = {n: {**b, "docvalue_fields": fields} for n, b in bodies.items()}
            riders = _session_riders(call, fields)
        # Twice the page's end: a page's hit may sit past its leg's own page when the other leg lifts it.
        window = call.first_rank + 2 * call.size
        legs = yield from self._legs_flow(
            bodies, call.timings, source=call.source, sources=sources, passages=matches, window=window,
            answered=early, riders=riders, answers=answers,
        )  # fmt: skip
        return legs, None

    def _client_flow(self, call: Call, early: EarlyAnswers | None = None) -> Flow[SearchResponse]:
        matches: dict[str, PassageMatch] = {}
        sources: Sources = {}
        answers: list[Any] = []
        legs, candidates = yield from self._signals_flow(call, early or {}, sources, matches, answers)
        personal = _personal_on(call) and bool(answers)
        tastes: dict[str, dict[str, float]] = {}
        if personal:
            call, tastes = self._personal_signal(call, legs, answers)
        started = time.perf_counter()
        if IMAGE_SIGNAL in legs and self.image is not None:
            call = replace(call, fusion=with_image_weight(call.fusion, self.image))
        signals = [name for name in legs if name not in ("lexical", "vector")]
        weights = None
        if len(legs) >= 2:
            fused, weights = fuse_explained(legs, call.fusion, evidence=call.evidence)
            ranking = fused[: self.max_depth]
        else:
            ((name, only),) = legs.items()
            ranking = single_leg(only, leg=name)[: self.max_depth]
        call.timings.fuse_ms = ms_since(started)
        rerank_scores: dict[str, float] = {}
        fallback: str | None = None
        if call.mode == "hybrid+rerank":
            ranking, rerank_scores, fallback = yield from self._rerank_flow(call, ranking, sources)
        window = ranking[call.first_rank : call.first_rank + call.size]
        missing = [d for d in window if d.id not in sources]
        if call.source is not False and missing:
            sources.update((yield from self._sources_flow(missing, call.source, call.timings)))
        strategy: Literal["client", "single"] = "client" if len(legs) >= 2 else "single"
        page = _Page(window, sources, rerank_scores, matches, signals, strategy, tastes)
        return SearchResponse(
            index=self.index,
            query=call.text,
            mode=call.mode,
            strategy=strategy,
            fusion=call.fusion if len(legs) >= 2 else None,
            fusion_weights=weights.to_model() if weights is not None else None,
            page=call.page,
            size=call.size,
            max_depth=self.max_depth,
            candidates=len(ranking) if candidates is None else candidates,
            hits=page.hits(call),
            reranked=bool(rerank_scores),
            rerank_fallback=fallback is not None,
            rerank_fallback_reason=fallback,
            timings=call.timings,
            user=call.user.user_id if call.user is not None else None,
            personal_weight=call.personal_weight if signals else None,
        )

    def _sources_flow(
        self, docs: Sequence[FusedDoc], source: bool | dict[str, Any], timings: SearchTimings
    ) -> Flow[Sources]:
        started = time.perf_counter()
        body = qb.mget_body([(d.hit.index or self.index, d.id, d.hit.routing) for d in docs])
        # realtime=false: read the same refreshed view the legs searched (and skip the realtime path).
        params: dict[str, str] = {"realtime": "false"}
        if isinstance(source, dict):
            if source.get("excludes"):
                params["_source_excludes"] = ",".join(source["excludes"])
            if source.get("includes"):
                params["_source_includes"] = ",".join(source["includes"])
        note = "sources of the page's hits"
        result = yield ClusterRequest("POST", "/_mget", body=body, params=params, note=note)
        timings.fetch_ms += ms_since(started)
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
        self, call: Call, ranking: list[FusedDoc], sources: Sources
    ) -> Flow[tuple[list[FusedDoc], dict[str, float], str | None]]:
        """Reorder the fixed top ``top_k`` by the reranker (``apply_rerank``'s steps); fused order on failure.

        Returns:
            The new ranking, rerank scores by id, and the fallback reason (``None``: reranked).
        """
        config = self._rerank_config()
        window = ranking[: config.top_k]
        missing = [d for d in window if d.id not in sources]
        fetch_spec = call.source if call.source is not False else {"excludes": self.source_excludes}
        if missing:
            sources.update((yield from self._sources_flow(missing, fetch_spec, call.timings)))
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


def _personal_on(call: Call) -> bool:
    return call.user is not None and call.personal_weight > 0


def _affinity_fields(call: Call) -> list[str]:
    return sorted(call.user.affinity_fields) if call.user is not None else []


def _session_riders(call: Call, fields: Sequence[str]) -> list[dict[str, Any]]:
    """The search of the session products' affinity values, riding in the legs' ``_msearch``."""
    assert call.user is not None
    if not call.user.session:
        return []
    ids = list(dict.fromkeys(product for product, _ in call.user.session))
    body = {"query": {"ids": {"values": ids}}, "size": len(ids), "_source": False, "docvalue_fields": list(fields)}
    return [{**body, "track_total_hits": False}]


def _personalized(call: Call, legs: Mapping[str, Sequence[LegHit]], weight: float) -> Call:
    """The call with the personal signal's weight in its fusion (a lone leg weighs 1 beside it)."""
    weights = {PERSONAL_SIGNAL: weight}
    if len(legs) == 2:  # one leg + personal
        weights.update({name: 1.0 for name in legs if name != PERSONAL_SIGNAL})
    return replace(call, fusion=call.fusion.with_weights(weights))


@dataclass(frozen=True)
class _Page:
    """One page of a client-side ranking, with what its hits show."""

    window: Sequence[FusedDoc]
    sources: Sources
    rerank_scores: Mapping[str, float]
    matches: Mapping[str, PassageMatch]
    signals: list[str]
    strategy: Literal["client", "single"]
    tastes: Mapping[str, dict[str, float]]

    def hits(self, call: Call) -> list[SearchHit]:
        return [
            SearchHit(
                id=doc.id,
                index=doc.hit.index,
                rank=call.first_rank + i,
                score=self.rerank_scores.get(doc.id, doc.score),
                source=self.sources.get(doc.id),
                explanation=hit_explanation(
                    doc,
                    mode=call.mode,
                    strategy=self.strategy,
                    fusion=call.fusion,
                    rerank_score=self.rerank_scores.get(doc.id),
                    passage=self.matches.get(doc.id),
                    signals=self.signals,
                    affinities=self.tastes.get(doc.id),
                )
                if call.explain
                else None,
            )
            for i, doc in enumerate(self.window, start=1)
        ]
