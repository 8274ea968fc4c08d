"""Observability overhead: search p50 with Prometheus metrics and OpenTelemetry tracing on vs off, interleaved.

The rule, written before any run: the same index (the BEIR dev set, loaded as in bench/hybrid_quality.py), the same
queries, client-side hybrid searches (``strategy="client"``, the path with the most stages and cluster requests)
with each query's vector precomputed (no embedding in the figure). Two states, switched before every search:

- ``on``: the search metrics record every response (``default_search_metrics().enabled``) and eshybrid's spans go
  to an OpenTelemetry SDK ``TracerProvider`` with a ``BatchSpanProcessor`` (spans built, sampled and exported off
  the search's thread, to an exporter that drops them: what a production exporter costs the search itself);
- ``off``: metrics not recorded, OpenTelemetry's no-op provider.

One warm-up round, then ``--rounds`` rounds over the queries; each query runs in both states, in a seeded random
order. ``observe_overhead = p50(on) / p50(off)`` per cluster; the goal is ``<= 1.03`` on each (issue 30).

    .venv/bin/python bench/observe_overhead.py [--rounds 5] [--queries 103]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hybrid_quality as hq  # noqa: E402
import numpy as np  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult  # noqa: E402
from opentelemetry.trace import NoOpTracerProvider  # noqa: E402

from bench._servers import cluster_args  # noqa: E402
from bench._servers import clusters as started_clusters  # noqa: E402
from connector.observe import tracing  # noqa: E402
from connector.observe.metrics import default_search_metrics  # noqa: E402
from connector.quality.load import read_beir  # noqa: E402
from connector.search import HybridSearch  # noqa: E402

STATES = ("on", "off")


class _TableEmbedder:
    """Precomputed query vectors: the figure measures search, not embedding."""

    caches_query_vectors = True

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    def embed_query(self, text: str) -> list[float]:
        return self.table[text]


class _DropExporter(SpanExporter):
    """Counts the spans it is handed and drops them."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class _Switch:
    """Turns metrics and tracing on or off for the next search."""

    def __init__(self) -> None:
        self.exporter = _DropExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(BatchSpanProcessor(self.exporter))
        self.noop = NoOpTracerProvider()
        self.metrics = default_search_metrics()

    def set(self, state: str) -> None:
        self.metrics.enabled = state == "on" and self.metrics.available
        tracing.set_tracer_provider(self.provider if state == "on" else self.noop)

    def close(self) -> None:
        self.provider.shutdown()
        tracing.set_tracer_provider(None)


def _requests_total() -> float:
    from prometheus_client import REGISTRY

    total = 0.0
    for family in REGISTRY.collect():
        if family.name == "eshybrid_search_requests":
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


def measure(
    key: str, url: str, table: dict[str, list[float]], vectors: dict[str, list[float]], *, rounds: int, seed: int
) -> dict[str, float]:
    queries = list(table)
    switch = _Switch()
    with hq.bench_connect(url) as cluster:
        print(f"\n## {key}: {cluster.capabilities}", flush=True)
        index = hq.load_index(cluster, hq.DEFAULT_DATASET, vectors, prefix=f"bench-observe-{key}", analyzer="english")
        try:
            search = HybridSearch(cluster, index, embedder=_TableEmbedder(table), max_depth=100)
            for text in queries:  # warm-up round, both states
                for state in STATES:
                    switch.set(state)
                    search.search(text, size=10, strategy="client")
            samples: dict[str, list[float]] = {state: [] for state in STATES}
            switch.provider.force_flush()  # the warm-up's spans are counted before, not during, the timed rounds
            recorded_before, spans_before = _requests_total(), switch.exporter.spans
            rng = random.Random(seed)
            for _ in range(rounds):
                for text in queries:
                    order = list(STATES)
                    rng.shuffle(order)
                    for state in order:
                        switch.set(state)
                        started = time.perf_counter()
                        search.search(text, size=10, strategy="client")
                        samples[state].append((time.perf_counter() - started) * 1000.0)
            switch.provider.force_flush()
            recorded = _requests_total() - recorded_before
            spans = switch.exporter.spans - spans_before
        finally:
            switch.close()
            cluster.delete_index(index)
    stats = {f"{state}_p50": float(np.percentile(v, 50)) for state, v in samples.items()}
    stats.update({f"{state}_p99": float(np.percentile(v, 99)) for state, v in samples.items()})
    stats["ratio"] = stats["on_p50"] / stats["off_p50"]
    searches_on = len(samples["on"])
    # the "on" state did record: one count per search, and spans per search
    stats["recorded_per_search"] = recorded / searches_on
    stats["spans_per_search"] = spans / searches_on
    print(f"{len(queries)} queries x {rounds} rounds per state (client-side hybrid)")
    print(f"{'state':<8}{'p50 ms':>10}{'p99 ms':>10}")
    for state in STATES:
        print(f"{state:<8}{stats[state + '_p50']:>10.2f}{stats[state + '_p99']:>10.2f}")
    print(f"on: {stats['recorded_per_search']:.2f} metric records and {stats['spans_per_search']:.1f} spans per search")
    print(f"observe_overhead = p50(on) / p50(off) = {stats['ratio']:.3f} (goal <= 1.03)")
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cluster_args(parser, ("es9", "os3"))
    parser.add_argument("--embed-url", default=None, help="embedding service (default: in-process model)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--queries", type=int, default=0, help="use the first N queries (0: all)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with started_clusters({"es9": args.es9_url, "os3": args.os3_url}, label="bench-observe") as clusters:
        if not clusters:
            parser.error("every cluster was skipped ('none'); give at least one")
        return run(args, clusters)


def run(args: argparse.Namespace, clusters: dict[str, str]) -> int:
    """The bench on ``clusters`` (key -> URL), given or started by :mod:`bench._servers`."""
    embedder = hq.make_embedder(args.embed_url)
    vectors = hq.corpus_embeddings(hq.DEFAULT_DATASET, embedder, source=args.embed_url or "in-process model")
    queries = list(read_beir(hq.DEFAULT_DATASET).queries.values())
    queries = queries[: args.queries] if args.queries else queries
    table = {text: embedder.embed_query(text) for text in queries}
    parts: list[str] = []
    worst = 0.0
    for key, url in clusters.items():
        stats = measure(key, url, table, vectors, rounds=args.rounds, seed=args.seed)
        worst = max(worst, stats["ratio"])
        parts += [
            f"{key}_on_p50_ms={stats['on_p50']:.2f}",
            f"{key}_off_p50_ms={stats['off_p50']:.2f}",
            f"{key}_on_p99_ms={stats['on_p99']:.2f}",
            f"{key}_off_p99_ms={stats['off_p99']:.2f}",
            f"{key}_observe_overhead={stats['ratio']:.3f}",
            f"{key}_spans_per_search={stats['spans_per_search']:.1f}",
        ]
    load = os.getloadavg()
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("RESULT " + " ".join([f"observe_overhead={worst:.3f}", *parts, f"load1={load[0]:.2f}"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
