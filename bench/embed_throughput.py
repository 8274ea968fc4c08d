"""Embedding throughput: the raw model in-process vs the Ray Serve service (handle and HTTP).

Not a test. One run, same machine, same texts (title + text of BEIR corpus docs):
  1. raw: the best in-process way (length-sorted batches of --batch-size, 1 and 2 torch threads,
     this package's Embedder and sentence-transformers) -> the best docs/s;
  2. service via the Python deployment handle (requests of --batch-size, --handle-concurrency in flight);
  3. service via HTTP with EmbeddingClient (--http-concurrency requests in flight);
  4. p50/p99 latency of a 1-query request while an HTTP bulk load runs.
Ends with one line ``RESULT key=value ...``.

    .venv/bin/python bench/embed_throughput.py --docs 2000
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

logger = logging.getLogger("bench.embed_throughput")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_texts(corpus: Path, limit: int) -> list[str]:
    """Title + text of the first ``limit`` docs of a BEIR ``corpus.jsonl``."""
    texts = []
    with corpus.open(encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            texts.append(f"{doc.get('title') or ''}\n{doc.get('text') or ''}".strip())
            if len(texts) >= limit:
                break
    return texts


def timed(label: str, count: int, run: Callable[[], Any]) -> float:
    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    rate = count / elapsed
    print(f"  {label:<44} {rate:8.1f} docs/s  ({elapsed:.1f}s)", flush=True)
    return rate


def measure_raw(texts: list[str], *, batch_size: int) -> float:
    """The best in-process docs/s: length-sorted batches, 1 and 2 torch threads, two implementations."""
    import torch
    from sentence_transformers import SentenceTransformer

    from embedding_service.model import Embedder
    from embedding_service.model_spec import build_model_spec
    from embedding_service.settings import EmbeddingServiceSettings

    spec = build_model_spec(EmbeddingServiceSettings())
    embedder = Embedder.load(spec, device="cpu", dtype="float32")
    st_model = SentenceTransformer(str(spec.folder), device="cpu")
    warm = texts[:batch_size]
    print("raw model, in process:", flush=True)
    rates: dict[str, float] = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        embedder.encode(warm, max_rows=batch_size, max_batch_tokens=10**9)
        rates[f"embedder_{threads}t"] = timed(
            f"Embedder, sorted batches of {batch_size}, {threads} thread(s)",
            len(texts),
            lambda: embedder.encode(texts, max_rows=batch_size, max_batch_tokens=10**9),
        )
    best_threads = 1 if rates["embedder_1t"] >= rates["embedder_2t"] else 2
    torch.set_num_threads(best_threads)
    st_model.encode(warm, batch_size=batch_size)
    rates[f"st_{best_threads}t"] = timed(
        f"sentence-transformers encode, {best_threads} thread(s)",
        len(texts),
        lambda: st_model.encode(texts, batch_size=batch_size),
    )
    best = max(rates, key=rates.__getitem__)
    print(f"  best raw: {best} = {rates[best]:.1f} docs/s", flush=True)
    return rates[best]


def start_service(args: argparse.Namespace) -> tuple[str, Any]:
    """Local Ray (2 CPUs) + Serve on a free port + the embedding app; returns (base URL, handle)."""
    os.environ.update(
        {
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
    )
    os.environ.pop("RAY_ADDRESS", None)
    import ray
    from ray import serve

    from embedding_service.deployment import build_app
    from embedding_service.settings import EmbeddingServiceSettings

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=200 * 1024 * 1024,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    port = free_port()
    serve.start(
        http_options={"host": "127.0.0.1", "port": port},
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
    )
    settings = EmbeddingServiceSettings(
        device="cpu",
        dtype="float32",
        replicas=args.replicas,
        num_cpus_per_replica=2 / args.replicas,
        torch_threads=args.threads_per_replica,
        max_batch_size=args.batch_size,
        max_batch_tokens=args.max_batch_tokens,
        route_prefix="/embed",
    )
    handle = serve.run(build_app(settings, cluster_gpus=0), name="embed", route_prefix="/embed")
    return f"http://127.0.0.1:{port}/embed", handle


def measure_handle(handle: Any, texts: list[str], *, batch_size: int, window: int) -> float:
    """Requests of ``batch_size`` through the deployment handle, ``window`` in flight (like a backfill)."""
    chunks = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]

    def run() -> None:
        in_flight: deque[Any] = deque()
        done = 0
        for chunk in chunks:
            if len(in_flight) >= window:
                done += len(in_flight.popleft().result())
            in_flight.append(handle.embed.remote(chunk, "document"))
        while in_flight:
            done += len(in_flight.popleft().result())
        assert done == len(texts)

    run()  # warm up every replica (first calls build the batch queues)
    return timed(f"service via handle, {window} requests in flight", len(texts), run)


def measure_http(url: str, texts: list[str], *, batch_size: int, concurrency: int) -> float:
    from connector.services.embedding import EmbeddingClient

    with EmbeddingClient(url, batch_size=batch_size, max_concurrency=concurrency, timeout_s=300) as client:
        client.embed_documents(texts[: batch_size * concurrency])
        return timed(
            f"service via HTTP, {concurrency} requests in flight", len(texts), lambda: client.embed_documents(texts)
        )


def measure_query_latency(
    url: str, texts: list[str], queries: list[str], *, batch_size: int, concurrency: int
) -> tuple[float, float, float]:
    """p50/p99 (ms) of single-query requests sent one after another while an HTTP bulk load runs."""
    import httpx

    from connector.services.embedding import EmbeddingClient

    stop = threading.Event()
    bulk_docs = [0]

    def bulk() -> None:
        with EmbeddingClient(url, batch_size=batch_size, max_concurrency=concurrency, timeout_s=300) as client:
            while not stop.is_set():
                client.embed_documents(texts[: batch_size * concurrency * 2])
                bulk_docs[0] += batch_size * concurrency * 2

    loader = threading.Thread(target=bulk, daemon=True)
    loader.start()
    time.sleep(2.0)  # let the bulk load fill the queues
    latencies = []
    with httpx.Client(base_url=url, timeout=120) as http:
        for query in queries:
            started = time.perf_counter()
            response = http.post("/v1/embeddings", json={"input": [query], "input_type": "query"})
            latencies.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            time.sleep(0.05)
    stop.set()
    loader.join()
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    print(
        f"  1-query latency under bulk load ({len(latencies)} queries, bulk {bulk_docs[0]} docs): "
        f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {latencies[-1]:.0f} ms",
        flush=True,
    )
    return p50, p99, latencies[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO / ".." / "shared" / "data" / "esci-us-subset",
        help="BEIR folder with corpus.jsonl and queries.jsonl",
    )
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64, help="texts per request / raw batch")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--threads-per-replica", type=int, default=1)
    parser.add_argument("--max-batch-tokens", type=int, default=None, help="default: the service's")
    parser.add_argument("--http-concurrency", type=int, default=4)
    parser.add_argument("--handle-concurrency", type=int, default=8)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    texts = load_texts(args.data / "corpus.jsonl", args.docs)
    queries = [json.loads(line)["text"] for line, _ in zip((args.data / "queries.jsonl").open(), range(args.queries))]
    print(f"{len(texts)} docs from {args.data}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    raw = measure_raw(texts, batch_size=args.batch_size)

    import ray
    from ray import serve

    url, handle = start_service(args)
    try:
        print(f"service: {args.replicas} replica(s) x {args.threads_per_replica} torch thread(s), {url}", flush=True)
        handle_rate = measure_handle(handle, texts, batch_size=args.batch_size, window=args.handle_concurrency)
        http_rate = measure_http(url, texts, batch_size=args.batch_size, concurrency=args.http_concurrency)
        p50, p99, _ = measure_query_latency(
            url, texts, queries, batch_size=args.batch_size, concurrency=args.http_concurrency
        )
    finally:
        serve.shutdown()
        ray.shutdown()
    print(f"load average at the end {os.getloadavg()[0]:.2f} (other work on this machine adds noise)")
    print(
        f"RESULT raw_docs_per_s={raw:.1f} handle_docs_per_s={handle_rate:.1f} http_docs_per_s={http_rate:.1f} "
        f"service_vs_raw={handle_rate / raw:.3f} http_vs_raw={http_rate / raw:.3f} "
        f"query_p50_ms={p50:.0f} query_p99_ms={p99:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
