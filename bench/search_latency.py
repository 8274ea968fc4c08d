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
one round trip), for reference: the modes above all fetch ``max_depth`` ids, then the page.

    .venv/bin/python bench/search_latency.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hybrid_quality as hq  # noqa: E402
import numpy as np  # noqa: E402

from connector.quality.load import read_beir  # noqa: E402
from connector.search import FusionConfig, HybridSearch  # noqa: E402
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


def measure(
    key: str, url: str, dataset: Path, vectors: dict[str, list[float]], embedder: Any, *, rounds: int, seed: int
) -> dict[str, float]:
    queries = list(read_beir(dataset).queries.values())
    with hq.bench_connect(url) as cluster:
        print(f"\n## {key}: {cluster.capabilities}", flush=True)
        index = hq.load_index(cluster, dataset, vectors, prefix=f"bench-latency-{key}")
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
        finally:
            cluster.delete_index(index)
    stats = {f"{m}_p50": float(np.percentile(v, 50)) for m, v in samples.items()}
    stats.update({f"{m}_p99": float(np.percentile(v, 99)) for m, v in samples.items()})
    stats["embed_p50"] = float(np.percentile(embed_ms, 50))
    stats["embed_p99"] = float(np.percentile(embed_ms, 99))
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
        f"fuse {np.percentile(parts['fuse'], 50):.2f} ms, sources (_mget) {np.percentile(parts['fetch'], 50):.2f} ms"
    )
    print(f"client hybrid p50 / slower single leg p50 = {stats['ratio']:.3f} (goal <= 1.10)")
    if "raw_ratio" in stats:
        print(f"floor, HTTP level: raw _msearch p50 / slower raw leg p50 = {stats['raw_ratio']:.3f}")
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=hq.DEFAULT_DATASET)
    parser.add_argument("--es9-url", default=os.environ.get("ESHYBRID_TEST_ES9_URL"))
    parser.add_argument("--os3-url", default=os.environ.get("ESHYBRID_TEST_OS3_URL"))
    parser.add_argument("--embed-url", default=None, help="embedding service (default: in-process model)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    clusters = {k: u for k, u in (("es9", args.es9_url), ("os3", args.os3_url)) if u}
    if not clusters:
        parser.error("give --es9-url and/or --os3-url (or source /tmp/eshybrid-dev-clusters.env)")
    embedder = hq.make_embedder(args.embed_url)
    vectors = hq.corpus_embeddings(args.dataset, embedder, source=args.embed_url or "in-process sentence-transformers")
    parts = []
    for key, url in clusters.items():
        stats = measure(key, url, args.dataset, vectors, embedder, rounds=args.rounds, seed=args.seed)
        for name in (
            "bm25_p50",
            "bm25_p99",
            "knn_p50",
            "knn_p99",
            "client_hybrid_p50",
            "client_hybrid_p99",
            "server_hybrid_p50",
            "server_hybrid_p99",
            "embed_p50",
            "embed_p99",
        ):
            parts.append(f"{key}_{name}_ms={stats[name]:.2f}")
        parts.append(f"{key}_client_vs_slower_leg_p50_ratio={stats['ratio']:.3f}")
        if "raw_ratio" in stats:
            parts.append(f"{key}_raw_msearch_vs_slower_raw_leg_p50_ratio={stats['raw_ratio']:.3f}")
    print("RESULT " + " ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
