"""Server-side hybrid search: one request in the cluster's own hybrid form (the cluster fuses)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from connector.search import query_builder as qb
from connector.search.client import _ClientSide
from connector.search.core import Call, ms_since
from connector.search.models import FusionConfig, HitExplanation, SearchHit, SearchResponse
from connector.search.ops import ClusterRequest, ClusterSearch, Flow
from connector.search.passages import best_passage, passage_server_body

__all__ = ["_ServerSide"]


class _ServerSide(_ClientSide):
    """The one-request forms (see :func:`~connector.search.query_builder.pick_server_form`)."""

    _pipelines: set[str]

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

    def _pipeline_setup(self, fusion: FusionConfig) -> ClusterRequest | None:
        """The ``PUT`` of the search pipeline ``fusion`` needs, when this object has not sent it yet."""
        name = qb.os_pipeline_name(fusion)
        if name in self._pipelines:
            return None
        note = "search pipeline for the hybrid query (created once, idempotent)"
        return ClusterRequest("PUT", f"/_search/pipeline/{name}", body=qb.os_pipeline_body(fusion), note=note)

    def _pipeline_flow(self, fusion: FusionConfig) -> Flow[str]:
        setup = self._pipeline_setup(fusion)
        if setup is not None:
            yield setup
            self._pipelines.add(qb.os_pipeline_name(fusion))
        return qb.os_pipeline_name(fusion)

    def _server_flow(self, call: Call, form: str) -> Flow[SearchResponse]:
        assert call.vector is not None
        params: dict[str, str] = {}
        if form == "os_hybrid_query":
            params["search_pipeline"] = yield from self._pipeline_flow(call.fusion)
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
        note = f"server-side hybrid ({form}), fused by the cluster"
        result = yield ClusterSearch(self.index, body, params=params or None, note=note)
        call.timings.search_ms += ms_since(started)
        raw = (result.get("hits") or {}).get("hits") or []
        passages = self.profile.vector_field if self.profile.passages else None
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
                _server_hit(h, call, form, rank=call.first_rank + i, passages=passages)
                for i, h in enumerate(raw, start=1)
            ],
            timings=call.timings,
        )


def _server_hit(hit: Mapping[str, Any], call: Call, form: str, *, rank: int, passages: str | None) -> SearchHit:
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
