"""The default search against the shop's BM25 page, and the embedder killed mid-run (issue 24).

Used by ``bench/search_latency.py`` (``--phases default,fallback,serve``); one cluster at a time.

* **default**: ``HybridSearch.search(text)`` with every default (hybrid, correction auto, page 1, sources),
  its query embedding included with a fresh query-vector cache (``query_cache_size=0`` and an embedder that
  caches nothing: every search embeds), interleaved per query in a seeded order with the raw BM25 page (one
  ``_search`` of the page with its sources over a bare keep-alive HTTP connection: what a BM25-only shop
  sends). Reports ``default_vs_bm25_page`` (p50 / p50), ``default_p99_ms``, ``round_trips`` (the most any
  default search made), ``query_embed_p50_ms`` (one cold ``embed_query``, measured apart) and
  ``early_lexical_gain`` (the same search with every leg waiting for the vector, interleaved: its p50 / the
  default's; the rule that reads it is in :func:`default_figures`).
* **fallback**: the same searches, the embedder killed a third of the way in. The embedder is reached
  through a loopback proxy the bench owns (``--embed-url`` given: the shared service is never touched);
  killing the proxy closes its socket, so the search path sees what a dead service gives: connection
  refused. With the in-process model, a kill switch raises the same error. ``fallback_failed`` counts the
  searches after the kill that raised or came back without ``vector_fallback`` (goal 0);
  ``fallback_vs_bm25_page`` is their p50 over the BM25 page's p50 in the same interleaved run (goal <= 2).
* **serve**: the same kill through ``POST /search`` (a local Ray Serve with the search app whose embedder
  is another killable proxy): ``serve_non_200`` counts answers other than 200 (goal 0),
  ``serve_fallback_failed`` those after the kill without the flag.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from connector.errors import EmbeddingServiceUnavailable
from connector.search import HybridSearch
from connector.search.planner import SearchPlan

__all__ = [
    "KillableProxy",
    "LegsWaitForTheVector",
    "KillSwitch",
    "default_figures",
    "fallback_figures",
    "serve_figures",
    "service_queries_only",
]


class KillableProxy:
    """A loopback HTTP proxy to ``upstream``; :meth:`kill` closes it (then: connection refused)."""

    def __init__(self, upstream: str) -> None:
        target = urlsplit(upstream)
        prefix = target.path.rstrip("/")

        live: set[Any] = set()
        self._live = live

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                live.add(self.connection)

            def finish(self) -> None:
                live.discard(self.connection)
                super().finish()

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port or 80, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                path = self.path[len(prefix) :] if prefix and self.path.startswith(prefix) else self.path
                conn.request(self.command, prefix + path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = _forward  # noqa: N815 - the http.server protocol

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{prefix}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def kill(self) -> None:
        """Stop listening and drop the open keep-alive connections: a dead service, as a client sees it."""
        self.server.shutdown()
        self.server.server_close()
        for sock in list(self._live):
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass


class KillSwitch:
    """The in-process embedder, killable: after :meth:`kill`, every call is refused as by a dead service."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.dead = inner, False

    def embed_query(self, text: str) -> list[float]:
        if self.dead:
            raise EmbeddingServiceUnavailable("connection refused (the bench killed the embedder)", retryable=True)
        return list(self.inner.embed_query(text))

    def kill(self) -> None:
        self.dead = True


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


class LegsWaitForTheVector(HybridSearch):
    """The default search as planned before the lexical leg rode with the suggestion: every leg in the second
    round trip (the planner's ``early_legs`` emptied). The bench's control arm for that choice, same results."""

    def _plan(self, *args: Any, **kwargs: Any) -> SearchPlan:
        return dataclasses.replace(super()._plan(*args, **kwargs), early_legs=())


def default_figures(
    search: HybridSearch, embedder: Any, page: Callable[[str], float], queries: Sequence[str], *, rounds: int, seed: int
) -> dict[str, float]:
    """Default search vs the raw BM25 page, interleaved; round trips; one cold query embedding.

    A third arm, interleaved too: the same search with its legs waiting for the vector
    (:class:`LegsWaitForTheVector`): ``early_lexical_gain`` = its p50 / the default's (above 1: riding with the
    suggestion pays). Rule written before the idle run: the early lexical leg stays the default while this is
    >= 1.0 on both engines; below 1.0 on either, the planner's ``early_legs`` goes back to empty.
    """
    waiting = LegsWaitForTheVector(search.cluster, search.index, options=search.options)
    embed_ms = [_timed(lambda t=text: embedder.embed_query(t + " "))[0] for text in queries]
    for text in queries:  # warm-up: connections open
        search.search(text)
        waiting.search(text)
        page(text)
    samples: dict[str, list[float]] = {"default": [], "page": [], "waiting": []}
    trips: list[int] = []
    rng = random.Random(seed)
    for _ in range(rounds):
        for text in queries:
            order = ["default", "page", "waiting"]
            rng.shuffle(order)
            for mode in order:
                if mode == "page":
                    samples["page"].append(page(text))
                    continue
                ms, response = _timed(lambda t=text, m=mode: (search if m == "default" else waiting).search(t))
                samples[mode].append(ms)
                if mode == "default":
                    trips.append(response.round_trips)
    p50 = {m: float(np.percentile(v, 50)) for m, v in samples.items()}
    figures = {
        "default_p50_ms": p50["default"],
        "default_p99_ms": float(np.percentile(samples["default"], 99)),
        "bm25_page_p50_ms": p50["page"],
        "default_vs_bm25_page": p50["default"] / p50["page"],
        "round_trips": float(max(trips)),
        "query_embed_p50_ms": float(np.percentile(embed_ms, 50)),
        "early_lexical_gain": p50["waiting"] / p50["default"],
    }
    print(f"default search p50 {p50['default']:.2f} ms, p99 {figures['default_p99_ms']:.2f} ms; raw BM25 page p50 "
          f"{p50['page']:.2f} ms; ratio {figures['default_vs_bm25_page']:.2f} (goal <= 4); round trips <= "
          f"{max(trips)} (goal <= 2); query embedding p50 {figures['query_embed_p50_ms']:.2f} ms (goal <= 5); "
          f"legs waiting for the vector p50 {p50['waiting']:.2f} ms (early lexical gain "
          f"{figures['early_lexical_gain']:.3f})")  # fmt: skip
    return figures


def fallback_figures(
    search: HybridSearch, kill: Callable[[], None], page: Callable[[str], float], queries: Sequence[str], *, seed: int
) -> dict[str, float]:
    """Searches with the embedder killed a third of the way in: failures, and the degraded p50 vs the page."""
    cut = max(1, len(queries) // 3)
    failed, degraded, pages = 0, [], []
    rng = random.Random(seed)
    for i, text in enumerate(queries):
        if i == cut:
            kill()
        order = ["search", "page"]
        rng.shuffle(order)
        for mode in order:
            if mode == "page":
                pages.append(page(text))
                continue
            try:
                ms, response = _timed(lambda t=text: search.search(t))
            except Exception as e:  # noqa: BLE001 - a failed search is what this phase counts
                failed += int(i >= cut)
                print(f"# search {text!r} failed: {type(e).__name__}: {e}")
                continue
            if i >= cut:
                degraded.append(ms)
                failed += int(not response.vector_fallback)
    ratio = float(np.percentile(degraded, 50)) / float(np.percentile(pages[cut:], 50)) if degraded else float("nan")
    print(f"embedder killed after {cut} of {len(queries)} searches: {failed} failed or unflagged (goal 0); "
          f"degraded p50 / BM25 page p50 = {ratio:.2f} (goal <= 2)")  # fmt: skip
    return {"fallback_failed": float(failed), "fallback_vs_bm25_page": ratio}


def serve_figures(
    cluster_url: str, index: str, embed_url: str, queries: Sequence[str], *, budget_s: float
) -> dict[str, float]:
    """``POST /search`` on a local Ray Serve, the embedder (a killable proxy) killed a third of the way in."""
    import httpx
    import ray
    from ray import serve

    from connector.search.app import build_search_app
    from connector.search.settings import SearchServiceSettings

    proxy = KillableProxy(embed_url)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        port = _free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        settings = SearchServiceSettings(
            cluster_url=cluster_url, index=index, embed_url=proxy.url, embed_budget_s=budget_s, num_cpus_per_replica=0.1
        )
        serve.run(build_search_app(settings), name="bench-search", route_prefix="/bench-search")
        base = f"http://127.0.0.1:{port}/bench-search"
        cut = max(1, len(queries) // 3)
        non_200 = unflagged = 0
        with httpx.Client(timeout=30) as client:
            client.post(f"{base}/search", json={"text": queries[0]})  # warm-up: the replica's first search
            for i, text in enumerate(queries):
                if i == cut:
                    proxy.kill()
                answer = client.post(f"{base}/search", json={"text": text})
                non_200 += int(answer.status_code != 200)
                if answer.status_code == 200 and i >= cut:
                    unflagged += int(not answer.json().get("vector_fallback"))
        print(f"/search with the embedder killed after {cut} of {len(queries)}: {non_200} answers not 200, "
              f"{unflagged} unflagged (goal 0, 0)")  # fmt: skip
        return {"serve_non_200": float(non_200), "serve_fallback_failed": float(unflagged)}
    finally:
        serve.shutdown()
        ray.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def service_queries_only() -> Iterator[None]:
    """``ESHYBRID_QUERY_ENCODER_ENABLED=false`` for the block (queries go to the embedding service)."""
    before = os.environ.get("ESHYBRID_QUERY_ENCODER_ENABLED")
    os.environ["ESHYBRID_QUERY_ENCODER_ENABLED"] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("ESHYBRID_QUERY_ENCODER_ENABLED", None)
        else:
            os.environ["ESHYBRID_QUERY_ENCODER_ENABLED"] = before
