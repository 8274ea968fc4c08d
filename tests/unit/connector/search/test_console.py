"""The console rendering of a whole search response (a plain function of the response)."""

from __future__ import annotations

from connector.search.console import render_console, render_response
from connector.search.models import ExecutedRequest, FusionConfig, SearchResponse


def test_render_response_is_a_header_then_what_ran() -> None:
    requests = [ExecutedRequest(method="GET", path="p/_search", body={"size": 1}, note="server-side")]
    response = SearchResponse(
        index="p",
        query="q",
        mode="hybrid",
        strategy="server",
        server_form="es_rrf_retriever",
        fusion=FusionConfig(),
        page=2,
        size=5,
        max_depth=100,
        hits=[],
        requests=requests,
        round_trips=1,
    )
    text = render_response(response)
    header = (
        "eshybrid search: mode=hybrid strategy=server form=es_rrf_retriever fusion=rrf(k=60, w=1/1) page=2 size=5"
        " round_trips=1"
    )
    assert text.splitlines()[0] == "# " + header
    assert text == render_console(requests, header=header)


def test_render_response_flags_a_vector_fallback() -> None:
    response = SearchResponse(
        index="p", query="q", mode="hybrid", strategy="single", page=1, size=5, max_depth=100, hits=[],
        vector_fallback=True, vector_fallback_reason="query embedder: down",
    )  # fmt: skip
    assert "# vector_fallback: query embedder: down" in render_response(response).splitlines()
