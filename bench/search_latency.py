"""Search latency: bm25 alone, knn alone, client-side hybrid and server-side hybrid, one run.

Same index and queries for every mode (the BEIR data set's queries against its corpus, loaded
with cached embeddings as in bench/hybrid_quality.py). Each query's vector is embedded once
first (that time is reported on its own); the search figures exclude it (``total_ms -
embed_ms`` of each response, i.e. cluster round trips + fusion + source fetch in this process).
Modes are interleaved per query in a seeded random order, after one warm-up round.

Server-side hybrid is the cluster's one-request form: Elasticsearch ``query`` + ``knn``
(boosted sum, ``linear`` with ``normalizer=none``), OpenSearch the ``hybrid`` query with the
default RRF pipeline. Goal: client-side hybrid p50 <= 1.10 x the slower single leg's p50.

The floor: the same leg bodies are also sent at the HTTP level (a bare keep-alive
``http.client`` connection, no client library, no fusion, no source fetch): each leg alone
and both legs in one ``_msearch``. ``raw_msearch / slower raw leg`` is what the server alone
costs for the second leg on this machine; no client-side strategy can go below it.
``raw_lexical_page`` is the request a BM25-only shop sends today (the page with its sources,
one round trip), for reference: the modes above all fetch ``max_depth`` ids and, in the same ``_msearch``, their top hits with sources.

Concurrency (issue 14), on the first cluster (ES 9 when given): N=16 hybrid searches in flight from
one event loop (``AsyncHybridSearch`` over the app's own ``AsyncElasticsearch``/``AsyncOpenSearch``)
vs the same N from 16 threads with the sync API (``HybridSearch`` over the matching official sync
client: same client library and connection pool defaults, so only sync-in-threads vs async differs).
Same index, same queries (their vectors precomputed: no embedding in the figure), trials
interleaved in a seeded order after a warm-up; QPS = searches / wall time of a trial, p50/p99 over
every search's latency. Goal: async_vs_threads >= 1.0.  And the per-search overhead of going
through an official client: sequential client-side hybrid searches, our transport vs the official
sync client, interleaved per query; ``official_overhead = p50(official) / p50(ours) - 1`` (goal <= 0.10).

The default search (issue 24, ``bench/search_default.py``): a default ``HybridSearch.search`` (embedding
included, fresh query-vector cache) vs the raw BM25 page, and the embedder killed mid-run, in the library
and through ``POST /search``: ``default_vs_bm25_page`` (goal <= 4), ``default_p99_ms``, ``round_trips``
(goal <= 2), ``query_embed_p50_ms`` (goal <= 5), ``fallback_failed`` (goal 0), ``fallback_vs_bm25_page``
(goal <= 2), ``serve_non_200`` (goal 0). ``--phases`` picks what runs; ``--queries N`` the first N queries
(a smoke run: ``--queries 5 --rounds 1 --concurrency 0``).

    .venv/bin/python bench/search_latency.py [--rounds 5] [--concurrency 16] [--embed-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import logging
import os
import random
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hybrid_quality as hq  # noqa: E402
import numpy as np  # noqa: E402
import search_default as sd  # noqa: E402

from bench._servers import cluster_args, model_service  # noqa: E402
from bench._servers import clusters as started_clusters  # noqa: E402
from connector import aconnect, connect  # noqa: E402
from connector.quality.load import read_beir  # noqa: E402
from connector.search import AsyncHybridSearch, FusionConfig, HybridSearch  # noqa: E402
from connector.search import query_builder as qb  # noqa: E402

MODES = ("bm25", "knn", "client_hybrid", "server_hybrid")
RAW_MODES = ("raw_lexical_leg", "raw_knn_leg", "raw_msearch", "raw_lexical_page")


class RawHttp:
    """The legs' exact bodies over one bare keep-alive HTTP connection (plain-http clusters only)."""

    def __init__(self, url: str, index: str) -> None:
        host, _, port = url.split("://", 1)[1].rstrip("/").partition(":")
        self.conn = http.client.HTTPConnection(host, int(port or 9200), timeout=30)
        self.index = index

    def requests(self, bodies: dict[str, Any], source: Any) -> dict[str, tuple[str, bytes, str]]:
        ndjson = "".join(
            json.dumps(line) + "\n" for pair in qb.msearch_searches(list(bodies.values())) for line in pair
        )
        return {
            "raw_lexical_leg": (f"/{self.index}/_search", json.dumps(bodies["lexical"]).encode(), "application/json"),
            "raw_knn_leg": (f"/{self.index}/_search", json.dumps(bodies["vector"]).encode(), "application/json"),
            "raw_msearch": (f"/{self.index}/_msearch", ndjson.encode(), "application/x-ndjson"),
            # what a BM25-only shop sends today: the page itself, sources included, one round trip
            "raw_lexical_page": (
                f"/{self.index}/_search",
                json.dumps(dict(bodies["lexical"], size=10, _source=source)).encode(),
                "application/json",
            ),
        }

    def send(self, request: tuple[str, bytes, str]) -> float:
        path, body, content_type = request
        started = time.perf_counter()
        self.conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        response = self.conn.getresponse()
        response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise RuntimeError(f"{path}: HTTP {response.status}")
        return elapsed


def _server_fusion(caps: Any) -> FusionConfig:
    if caps.supports("os_hybrid_query") or caps.supports("es_rrf_retriever"):
        return FusionConfig()
    return FusionConfig(method="linear", normalizer="none")


def _one(search: HybridSearch, text: str, mode: str, server: FusionConfig) -> tuple[float, Any]:
    if mode in ("bm25", "knn"):
        response = search.search(text, mode=mode, size=10)  # type: ignore[arg-type]
    elif mode == "client_hybrid":
        response = search.search(text, size=10, strategy="client")
    else:
        response = search.search(text, size=10, strategy="server", fusion=server)
    return response.timings.total_ms - response.timings.embed_ms, response


class TableEmbedder:
    """Precomputed query vectors: the concurrency figures measure search, not embedding."""

    caches_query_vectors = True

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    def embed_query(self, text: str) -> list[float]:
        return self.table[text]


class AsyncTableEmbedder(TableEmbedder):
    async def embed_query(self, text: str) -> list[float]:  # type: ignore[override]
        return self.table[text]


def _official_clients(url: str, flavor: str) -> tuple[Any, Any]:
    """``(sync factory, async factory)`` of the official client for the flavor."""
    if flavor == "opensearch":
        import opensearchpy

        return (lambda: opensearchpy.OpenSearch(url)), (lambda: opensearchpy.AsyncOpenSearch(url))
    import elasticsearch

    return (lambda: elasticsearch.Elasticsearch(url)), (lambda: elasticsearch.AsyncElasticsearch(url))


def _stats(latencies: list[float], searches: int, wall_s: float) -> dict[str, float]:
    return {
        "qps": searches / wall_s,
        "p50": float(np.percentile(latencies, 50)),
        "p99": float(np.percentile(latencies, 99)),
    }


def concurrency(
    url: str, flavor: str, index: str, table: dict[str, list[float]], *, rounds: int, seed: int, n: int
) -> dict[str, float]:
    """N concurrent searches: one event loop (async API) vs N threads (sync API); and the official-client overhead."""
    queries = list(table)
    make_sync, make_async = _official_clients(url, flavor)
    sync_client = make_sync()
    threads_search = HybridSearch(connect(sync_client), index, embedder=TableEmbedder(table), max_depth=100)
    pool = ThreadPoolExecutor(max_workers=n)
    loop = asyncio.new_event_loop()
    async_client = loop.run_until_complete(_make(make_async))
    async_search = AsyncHybridSearch(
        loop.run_until_complete(aconnect(async_client)), index, embedder=AsyncTableEmbedder(table), max_depth=100
    )

    def one_sync(text: str) -> float:
        started = time.perf_counter()
        threads_search.search(text, size=10, strategy="client")
        return (time.perf_counter() - started) * 1000

    async def one_async(text: str, slots: asyncio.Semaphore) -> float:
        async with slots:
            started = time.perf_counter()
            await async_search.search(text, size=10, strategy="client")
            return (time.perf_counter() - started) * 1000

    async def async_trial() -> list[float]:
        slots = asyncio.Semaphore(n)  # N in flight, from one event loop
        return list(await asyncio.gather(*(one_async(text, slots) for text in queries)))

    def trial(mode: str) -> tuple[list[float], float]:
        started = time.perf_counter()
        latencies = loop.run_until_complete(async_trial()) if mode == "async" else list(pool.map(one_sync, queries))
        return latencies, time.perf_counter() - started

    samples: dict[str, list[float]] = {"async": [], "threads": []}
    walls: dict[str, float] = {"async": 0.0, "threads": 0.0}
    rng = random.Random(seed)
    try:
        trial("async"), trial("threads")  # warm-up: connections open, JIT-free paths warm
        for _ in range(rounds):
            order = ["async", "threads"]
            rng.shuffle(order)
            for mode in order:
                latencies, wall = trial(mode)
                samples[mode] += latencies
                walls[mode] += wall
        overhead = _official_overhead(url, index, table, threads_search, rounds=rounds, seed=seed)
    finally:
        pool.shutdown()
        loop.run_until_complete(async_client.close())
        loop.close()
        sync_client.close()
    result = {f"async_{k}": v for k, v in _stats(samples["async"], len(samples["async"]), walls["async"]).items()}
    result.update(
        {f"threads_{k}": v for k, v in _stats(samples["threads"], len(samples["threads"]), walls["threads"]).items()}
    )
    result["async_vs_threads"] = result["async_qps"] / result["threads_qps"]
    result.update(overhead)
    print(f"\n## concurrency {n}: {len(queries)} hybrid searches per trial x {rounds} trials per API ({flavor})")
    print(f"{'api':<28}{'QPS':>8}{'p50 ms':>10}{'p99 ms':>10}")
    for name, label in (("async", "async, one event loop"), ("threads", f"sync, {n} threads")):
        print(f"{label:<28}{result[name + '_qps']:>8.1f}{result[name + '_p50']:>10.2f}{result[name + '_p99']:>10.2f}")
    print(f"async / threads QPS = {result['async_vs_threads']:.3f} (goal >= 1.0)")
    print(
        f"sequential p50: our transport {result['ours_p50']:.2f} ms, official client {result['official_p50']:.2f} ms; "
        f"overhead {result['official_overhead']:+.3f} (goal <= 0.10)"
    )
    return result


async def _make(factory: Any) -> Any:
    return factory()  # an async client is built inside the loop that will run it


def _official_overhead(
    url: str, index: str, table: dict[str, list[float]], official: HybridSearch, *, rounds: int, seed: int
) -> dict[str, float]:
    """Sequential searches, our transport vs the official sync client, interleaved per query."""
    with connect(url) as cluster:
        ours = HybridSearch(cluster, index, embedder=TableEmbedder(table), max_depth=100)
        searches = {"ours": ours, "official": official}
        samples: dict[str, list[float]] = {"ours": [], "official": []}
        rng = random.Random(seed + 1)
        for text in table:  # warm-up
            for search in searches.values():
                search.search(text, size=10, strategy="client")
        for _ in range(rounds):
            for text in table:
                order = list(searches)
                rng.shuffle(order)
                for name in order:
                    started = time.perf_counter()
                    searches[name].search(text, size=10, strategy="client")
                    samples[name].append((time.perf_counter() - started) * 1000)
    stats = {f"{name}_p50": float(np.percentile(v, 50)) for name, v in samples.items()}
    stats["official_overhead"] = stats["official_p50"] / stats["ours_p50"] - 1.0
    return stats


def measure(
    key: str,
    url: str,
    dataset: Path,
    vectors: dict[str, list[float]],
    embedder: Any,
    *,
    rounds: int,
    seed: int,
    analyzer: str = "english",
    concurrency_n: int = 0,
) -> dict[str, float]:
    queries = list(read_beir(dataset).queries.values())
    with hq.bench_connect(url) as cluster:
        print(f"\n## {key}: {cluster.capabilities}", flush=True)
        index = hq.load_index(cluster, dataset, vectors, prefix=f"bench-latency-{key}", analyzer=analyzer)
        try:
            search = HybridSearch(cluster, index, embedder=embedder, max_depth=100)
            embed_ms = []
            for text in queries:  # cold query embedding (no cache), measured apart
                started = time.perf_counter()
                embedder.embed_query(text + " ")
                embed_ms.append((time.perf_counter() - started) * 1000)
            server = _server_fusion(cluster.capabilities)
            form = search.search(queries[0], size=10, strategy="server", fusion=server).server_form
            raw = RawHttp(url, index) if url.startswith("http://") else None
            source = qb.source_spec(True, excludes=search.source_excludes)
            raw_requests = (
                {text: raw.requests(search.leg_bodies(text, embedder.embed_query(text)), source) for text in queries}
                if raw
                else {}
            )
            modes = MODES + (RAW_MODES if raw else ())
            for text in queries:  # warm-up round
                for mode in modes:
                    if mode in RAW_MODES:
                        raw.send(raw_requests[text][mode])  # type: ignore[union-attr]
                    else:
                        _one(search, text, mode, server)
            samples: dict[str, list[float]] = {m: [] for m in modes}
            parts: dict[str, list[float]] = {"search": [], "fetch": [], "fuse": []}
            rng = random.Random(seed)
            for _ in range(rounds):
                for text in queries:
                    order = list(modes)
                    rng.shuffle(order)
                    for mode in order:
                        if mode in RAW_MODES:
                            samples[mode].append(raw.send(raw_requests[text][mode]))  # type: ignore[union-attr]
                            continue
                        ms, response = _one(search, text, mode, server)
                        samples[mode].append(ms)
                        if mode == "client_hybrid":
                            parts["search"].append(response.timings.search_ms)
                            parts["fetch"].append(response.timings.fetch_ms)
                            parts["fuse"].append(response.timings.fuse_ms)
            figures: dict[str, float] = {}
            if concurrency_n:
                table = {text: embedder.embed_query(text) for text in queries}
                flavor = cluster.capabilities.flavor
                figures = concurrency(url, flavor, index, table, rounds=rounds, seed=seed, n=concurrency_n)
        finally:
            cluster.delete_index(index)
    stats = {f"{m}_p50": float(np.percentile(v, 50)) for m, v in samples.items()}
    stats.update({f"{m}_p99": float(np.percentile(v, 99)) for m, v in samples.items()})
    stats["embed_p50"] = float(np.percentile(embed_ms, 50))
    stats["embed_p99"] = float(np.percentile(embed_ms, 99))
    stats.update(figures)
    slower_leg = max(stats["bm25_p50"], stats["knn_p50"])
    stats["ratio"] = stats["client_hybrid_p50"] / slower_leg
    if "raw_msearch" in samples:
        stats["raw_ratio"] = stats["raw_msearch_p50"] / max(stats["raw_lexical_leg_p50"], stats["raw_knn_leg_p50"])
    print(f"{len(queries)} queries x {rounds} rounds per mode; server-side form: {form}")
    print(f"{'mode':<16}{'p50 ms':>10}{'p99 ms':>10}")
    for mode in samples:
        print(f"{mode:<16}{stats[mode + '_p50']:>10.2f}{stats[mode + '_p99']:>10.2f}")
    print(f"{'query embed':<16}{stats['embed_p50']:>10.2f}{stats['embed_p99']:>10.2f}  (cold, apart from the above)")
    print(
        f"client hybrid p50 parts: legs (_msearch) {np.percentile(parts['search'], 50):.2f} ms, "
        f"fuse {np.percentile(parts['fuse'], 50):.2f} ms, sources (an _mget, rarely needed) {np.percentile(parts['fetch'], 50):.2f} ms"
    )
    print(f"client hybrid p50 / slower single leg p50 = {stats['ratio']:.3f} (goal <= 1.10)")
    if "raw_ratio" in stats:
        print(f"floor, HTTP level: raw _msearch p50 / slower raw leg p50 = {stats['raw_ratio']:.3f}")
    return stats


def _query_encoder(args: Any, cluster: Any, index: str) -> Any:
    """The in-process query encoder for the index's vector field, or None (then the service or the model)."""
    if args.query_encoder == "off":
        return None
    from connector.search._profile import profile_from_mapping
    from connector.services.query_encoder import local_query_encoder

    meta = profile_from_mapping(cluster.get_mapping(index), index=index).vector_meta
    encoder = local_query_encoder(meta)
    print(f"# query vectors: {'in process, ' + repr(encoder) if encoder else 'the embedding service / model'}")
    return encoder


def measure_default(
    key: str, url: str, args: Any, vectors: dict[str, list[float]], phases: set[str], local: Any
) -> dict[str, float]:
    """The default-search phases on one cluster (see ``bench/search_default.py``)."""
    from connector.search.options import DEFAULT_EMBED_BUDGET_S
    from connector.services.embedding import EmbeddingClient

    queries = list(read_beir(args.dataset).queries.values())[: args.queries or None]
    figures: dict[str, float] = {}

    def embedder_for(embed_url: str | None) -> tuple[Any, Any]:
        """A search-path embedder that caches nothing, and how to kill it."""
        if embed_url is None:  # the in-process model (the one that embedded the corpus)
            switch = sd.KillSwitch(local)
            return switch, switch.kill
        proxy = sd.KillableProxy(embed_url)
        client = EmbeddingClient(proxy.url, query_cache_size=0, timeout_s=5.0, max_retries=0)
        return client, proxy.kill

    with hq.bench_connect(url) as cluster:
        print(f"\n## {key}, the default search: {cluster.capabilities}", flush=True)
        index = hq.load_index(cluster, args.dataset, vectors, prefix=f"bench-default-{key}", analyzer=args.analyzer)
        try:
            raw = RawHttp(url, index)
            probe = HybridSearch(cluster, index, max_depth=100)
            source = qb.source_spec(True, excludes=probe.source_excludes)

            def page(text: str) -> float:
                body = dict(probe.leg_bodies(text, None)["lexical"], size=10, _source=source)
                return raw.send((f"/{index}/_search", json.dumps(body).encode(), "application/json"))

            if "default" in phases:
                service = EmbeddingClient(args.embed_url, query_cache_size=0, max_retries=0) if args.embed_url else None
                direct = _query_encoder(args, cluster, index) or service or local
                with HybridSearch(cluster, index, embedder=direct, query_cache_size=0) as search:
                    figures.update(
                        sd.default_figures(search, direct, page, queries, rounds=args.rounds, seed=args.seed)
                    )
            # The outage phases kill the embedding SERVICE: the search path must talk to it, not swap its client for
            # the in-process encoder (which an outage of the service would not touch). The /search app's Ray
            # inherits this environment when the phase starts it.
            with sd.service_queries_only():
                if "fallback" in phases:
                    embedder, kill = embedder_for(args.embed_url)
                    with HybridSearch(cluster, index, embedder=embedder, query_cache_size=0) as search:
                        search.search(queries[0])  # the first call checks the model (its own, longer budget)
                        figures.update(sd.fallback_figures(search, kill, page, queries, seed=args.seed))
                if "serve" in phases and args.embed_url:
                    figures.update(
                        sd.serve_figures(url, index, args.embed_url, queries, budget_s=DEFAULT_EMBED_BUDGET_S)
                    )
                elif "serve" in phases:
                    print("# /search phase skipped: it needs --embed-url (the search app embeds over HTTP)")
        finally:
            cluster.delete_index(index)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=hq.DEFAULT_DATASET)
    cluster_args(parser, ("es9", "os3"))
    parser.add_argument("--embed-url", default=None, help="embedding service (default: in-process model)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=16, help="searches in flight (0: skip that figure)")
    parser.add_argument("--analyzer", choices=("english", "standard"), default="english")
    parser.add_argument("--phases", default="modes,default,fallback,serve", help="comma-separated phases to run")
    parser.add_argument("--queries", type=int, default=0, help="only the first N queries (0: all)")
    parser.add_argument(
        "--query-encoder",
        choices=("auto", "off"),
        default="auto",
        help="default phase: embed queries in process (connector.services.query_encoder) when a compatible export "
        "is found (auto), else through --embed-url / the in-process model",
    )
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    logging.basicConfig(level=logging.WARNING)
    # A cluster or the embedding service not given is started here and removed afterwards (bench/_servers.py).
    service = "serve" in phases and not args.embed_url
    with started_clusters({"es9": args.es9_url, "os3": args.os3_url}, label="bench-latency") as clusters:
        with model_service("embed", args.embed_url) if service else nullcontext(args.embed_url) as embed_url:
            args.embed_url = embed_url
            return run(args, clusters, phases)


def run(args: argparse.Namespace, clusters: Mapping[str, str], phases: set[str]) -> int:
    """The bench on ``clusters`` (key -> URL), given or started by :mod:`bench._servers`."""
    embedder = hq.make_embedder(args.embed_url)
    vectors = hq.corpus_embeddings(args.dataset, embedder, source=args.embed_url or "in-process sentence-transformers")
    parts: list[str] = []
    head: list[str] = []
    for i, (key, url) in enumerate(clusters.items()):
        if phases & {"default", "fallback", "serve"}:
            figures = measure_default(key, url, args, vectors, phases, embedder)
            parts += [f"{key}_{name}={value:.3f}" for name, value in figures.items()]
        if "modes" not in phases:
            continue
        stats = measure(
            key,
            url,
            args.dataset,
            vectors,
            embedder,
            rounds=args.rounds,
            seed=args.seed,
            analyzer=args.analyzer,
            concurrency_n=args.concurrency if i == 0 else 0,  # the concurrency figure: on the first cluster
        )
        if "async_vs_threads" in stats:
            head = [
                f"async_qps={stats['async_qps']:.1f}",
                f"sync_threads_qps={stats['threads_qps']:.1f}",
                f"async_vs_threads={stats['async_vs_threads']:.3f}",
                f"official_overhead={stats['official_overhead']:.3f}",
                f"async_p50_ms={stats['async_p50']:.2f}",
                f"async_p99_ms={stats['async_p99']:.2f}",
                f"sync_threads_p50_ms={stats['threads_p50']:.2f}",
                f"sync_threads_p99_ms={stats['threads_p99']:.2f}",
                f"concurrency={args.concurrency}",
                f"concurrency_cluster={key}",
            ]
        for name in [
            f"{m}_{q}" for m in ("bm25", "knn", "client_hybrid", "server_hybrid", "embed") for q in ("p50", "p99")
        ]:
            parts.append(f"{key}_{name}_ms={stats[name]:.2f}")
        parts.append(f"{key}_client_vs_slower_leg_p50_ratio={stats['ratio']:.3f}")
        if "raw_ratio" in stats:
            parts.append(f"{key}_raw_msearch_vs_slower_raw_leg_p50_ratio={stats['raw_ratio']:.3f}")
    load = os.getloadavg()
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("RESULT " + " ".join(head + parts + [f"load1={load[0]:.2f}"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
