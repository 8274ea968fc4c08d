"""A small async search API over eshybrid, with the app's own ``AsyncElasticsearch`` client.

Run it (``pip install 'eshybrid[elasticsearch]' fastapi uvicorn``)::

    ES_URL=http://127.0.0.1:9200 ES_API_KEY=... EMBED_URL=http://127.0.0.1:8000/embed INDEX=products \\
        uvicorn examples.fastapi_app:app --port 8080
    curl -s 'http://127.0.0.1:8080/search?q=waterproof+tent&size=5&explain=true'

The app keeps what it already has: its configured client (cloud id, API key, node pool, retries) is
handed to :func:`connector.aconnect`, which detects what the cluster can do once at start-up; every
search then goes through that client.  Bad input answers 400/422 naming the field; an unreachable
cluster or embedding service answers 503.  Build the app with :func:`create_app` to pass your own
client and embedder (the test does).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from connector import AsyncEmbeddingClient, AsyncHybridSearch, aconnect
from connector.errors import ClusterError, EmbeddingError, SearchRequestError

__all__ = ["create_app"]


def create_app(
    make_client: Callable[[], Any],
    index: str,
    *,
    make_embedder: Callable[[], Any] | None = None,
    **search_options: Any,
) -> FastAPI:
    """The search API.

    Args:
        make_client: builds the app's ``AsyncElasticsearch`` / ``AsyncOpenSearch`` (called at start-up,
            inside the server's event loop); closed at shutdown.
        index: the index or alias searched.
        make_embedder: builds the query embedder (default: none, BM25 only).
        search_options: further :class:`connector.search.HybridSearch` options (``max_depth``...).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = make_client()
        embedder = make_embedder() if make_embedder else None
        cluster = await aconnect(client)  # detects the capabilities once, through the app's client
        app.state.search = AsyncHybridSearch(cluster, index, embedder=embedder, **search_options)
        try:
            yield
        finally:
            await app.state.search.aclose()  # closes the embedder
            await client.close()

    api = FastAPI(title="eshybrid search", lifespan=lifespan)

    @api.exception_handler(SearchRequestError)
    async def bad_request(request: Request, err: SearchRequestError) -> JSONResponse:
        return JSONResponse({"error": str(err), "field": getattr(err, "field", None)}, status_code=400)

    @api.get("/search")
    async def search(
        request: Request,
        q: str = Query(..., min_length=1, description="the user's text"),
        mode: str = Query("hybrid", description="bm25 | knn | hybrid | hybrid+rerank"),
        size: int = Query(10, ge=1, le=100),
        page: int = Query(1, ge=1),
        explain: bool = False,
    ) -> dict[str, Any]:
        engine: AsyncHybridSearch = request.app.state.search
        try:
            response = await engine.search(q, mode=mode, size=size, page=page, explain=explain)  # type: ignore[arg-type]
        except (ClusterError, EmbeddingError) as e:
            raise HTTPException(status_code=503, detail=f"search is unavailable: {type(e).__name__}") from e
        return response.model_dump(mode="json", exclude={"requests"})

    return api


def _from_env() -> FastAPI:
    from elasticsearch import AsyncElasticsearch

    def client() -> AsyncElasticsearch:
        return AsyncElasticsearch(
            os.environ.get("ES_URL", "http://127.0.0.1:9200"), api_key=os.environ.get("ES_API_KEY")
        )

    embed_url = os.environ.get("EMBED_URL")
    return create_app(
        client,
        os.environ.get("INDEX", "products"),
        make_embedder=(lambda: AsyncEmbeddingClient(embed_url)) if embed_url else None,
    )


def __getattr__(name: str) -> Any:
    # ``uvicorn examples.fastapi_app:app``: built on first access, so importing the module for
    # create_app needs no environment.
    if name == "app":
        return _from_env()
    raise AttributeError(name)
