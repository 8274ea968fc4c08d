"""Embedding throughput by backend: torch fp32 (the raw baseline), onnx fp32 and onnx int8, in process and
through the service with its defaults; cosine to torch fp32; nDCG@10 of exact kNN with fp32 vs int8 vectors.

Not a test. One run, same machine, same texts (``{title}\n{text}`` of the ESCI corpus, as the backfill builds
them; a sample of --docs for throughput, the judged docs of the first queries up to --quality-docs for nDCG):
  1. in process: each backend, length-sorted batches of --batch-size, interleaved rounds, best kept;
  2. the service with default flags (replicas unset: one 1-thread replica per CPU of a 2-CPU Ray) over HTTP,
     torch and onnx int8;
  3. nDCG@10 (linear gains) of exact cosine kNN in numpy (not the cluster's HNSW) with each variant's vectors.
Ends with one line ``RESULT key=value ...``.

    flock /tmp/eshybrid-integration.lock .venv/bin/python bench/embed_throughput.py
    .venv/bin/python bench/embed_throughput.py --device cuda      # torch bf16 at 128/256 tokens, roofline share
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import time
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


VARIANTS = (("torch", "none"), ("onnx", "none"), ("onnx", "int8"))


def load_variant(backend: str, quantization: str, *, threads: int) -> Any:
    import torch

    from embedding_service.model import Embedder
    from embedding_service.model_spec import build_model_spec
    from embedding_service.settings import EmbeddingServiceSettings

    torch.set_num_threads(threads)
    spec = build_model_spec(EmbeddingServiceSettings())
    return Embedder.load(
        spec, device="cpu", dtype="float32", backend=backend, quantization=quantization, threads=threads
    )  # type: ignore[arg-type]


def measure_backends(texts: list[str], *, batch_size: int, rounds: int) -> tuple[dict[str, float], dict[str, Any]]:
    """docs/s of each backend in process (1 and 2 threads for torch, 2 for onnx), interleaved, best of ``rounds``;
    and each variant's vectors of ``texts``."""
    import torch

    runs = {"torch fp32 x1": ("torch", "none", 1)}
    runs.update({f"{b} {'int8' if q == 'int8' else 'fp32'} x2": (b, q, 2) for b, q in VARIANTS})
    loaded = {label: load_variant(b, q, threads=t) for label, (b, q, t) in runs.items()}
    rates: dict[str, float] = dict.fromkeys(runs, 0.0)
    vectors: dict[str, Any] = {}
    print(f"in process ({rounds} interleaved rounds, best kept):", flush=True)
    for _ in range(rounds):
        for label, embedder in loaded.items():
            torch.set_num_threads(runs[label][2])
            embedder.encode(texts[:batch_size], max_rows=batch_size)

            def run(e: Any = embedder, label: str = label) -> None:
                vectors[label] = e.encode(texts, max_rows=batch_size, max_batch_tokens=4096)

            rates[label] = max(rates[label], timed(label, len(texts), run))
    return rates, vectors


def cosines(a: Any, b: Any) -> Any:
    import numpy as np

    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def knn_ndcg(data: Path, *, max_docs: int, variants: dict[str, Any]) -> dict[str, float]:
    """nDCG@10 (linear gains) of exact cosine kNN in numpy, per variant, over the judged docs of the queries
    (up to ``max_docs`` docs), with the same query vectors model (each variant embeds its own queries)."""
    import numpy as np

    qrels: dict[str, dict[str, int]] = {}
    for line in (data / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, did, score = line.split("\t")
        qrels.setdefault(qid, {})[did] = int(score)
    docs: dict[str, str] = {}
    for line in (data / "corpus.jsonl").open(encoding="utf-8"):
        row = json.loads(line)
        docs[row["_id"]] = f"{row.get('title') or ''}\n{row.get('text') or ''}".strip()
    queries = {q["_id"]: q["text"] for q in map(json.loads, (data / "queries.jsonl").open()) if q["_id"] in qrels}
    chosen: list[str] = []
    kept_queries = []
    for qid in queries:
        judged = [d for d in qrels[qid] if d in docs and d not in chosen]
        if len(chosen) + len(judged) > max_docs:
            break
        chosen.extend(judged)
        kept_queries.append(qid)
    doc_texts = [docs[d] for d in chosen]
    print(f"nDCG@10 of exact kNN: {len(kept_queries)} queries, {len(chosen)} judged docs", flush=True)
    out = {}
    for label, embedder in variants.items():
        started = time.perf_counter()
        dv = embedder.encode(doc_texts, max_rows=64, max_batch_tokens=4096)
        qv = embedder.encode([embedder.spec.query_prefix + queries[q] for q in kept_queries])
        scores = qv @ dv.T
        total = 0.0
        for row, qid in zip(scores, kept_queries, strict=True):
            top = np.argsort(-row)[:10]
            gains = [qrels[qid].get(chosen[i], 0) for i in top]
            dcg = sum(g / np.log2(r + 2) for r, g in enumerate(gains))
            ideal = sorted(qrels[qid].values(), reverse=True)[:10]
            idcg = sum(g / np.log2(r + 2) for r, g in enumerate(ideal))
            total += dcg / idcg if idcg else 0.0
        out[label] = total / len(kept_queries)
        print(f"  {label:<20} nDCG@10 {out[label]:.4f}  ({time.perf_counter() - started:.0f}s)", flush=True)
    return out


def start_default_service(backend: str, quantization: str, *, port: int) -> str:
    """The service with its defaults (replicas unset: one 1-thread replica per Ray CPU) in the running Serve."""
    from ray import serve

    from embedding_service.deployment import build_app
    from embedding_service.settings import EmbeddingServiceSettings

    settings = EmbeddingServiceSettings(device="cpu", backend=backend, quantize=quantization)  # type: ignore[arg-type]
    serve.run(build_app(settings, cluster_gpus=0), name="embed", route_prefix="/embed")
    return f"http://127.0.0.1:{port}/embed"


def gpu_main(args: argparse.Namespace) -> int:
    """torch bf16 on one GPU at 128 and 256 tokens: docs/s and the share of the bf16 roofline."""
    import torch

    from embedding_service.model import Embedder
    from embedding_service.model_spec import build_model_spec
    from embedding_service.settings import EmbeddingServiceSettings

    spec = build_model_spec(EmbeddingServiceSettings())
    embedder = Embedder.load(spec, device="cuda", dtype="bfloat16")
    print(f"GPU: {torch.cuda.get_device_name(0)}, peak {args.peak_tflops} TFLOP/s dense bf16", flush=True)
    parts = []
    for length in (128, 256):
        rows = [[101] + [1000 + (i * 7 + j) % 20000 for j in range(length - 2)] + [102] for i in range(args.gpu_batch)]
        for _ in range(3):
            embedder.forward(rows)
        torch.cuda.synchronize()
        started, passes = time.perf_counter(), 0
        while time.perf_counter() - started < args.gpu_seconds:
            embedder.forward(rows)
            passes += 1
        torch.cuda.synchronize()
        rate = passes * len(rows) / (time.perf_counter() - started)
        flop_per_doc = length * (21.2e6 + 9216 * length)
        share = rate * flop_per_doc / (args.peak_tflops * 1e12)
        print(f"  {length} tokens, batch {args.gpu_batch}: {rate:,.0f} docs/s, {share:.1%} of roofline", flush=True)
        parts.append(f"gpu_docs_per_s_{length}={rate:.0f} roofline_share_{length}={share:.3f}")
    print("RESULT " + " ".join(parts))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data",
        type=Path,
        default=next(
            (p / "data" / "esci-us-subset" for p in (REPO.parent / "shared", REPO.parents[1] / "shared") if p.is_dir()),
            REPO.parent / "shared" / "data" / "esci-us-subset",
        ),
        help="BEIR folder with corpus.jsonl, queries.jsonl and qrels/test.tsv (default /work/shared/data/...)",
    )
    parser.add_argument("--docs", type=int, default=200, help="texts for the throughput runs (a sample)")
    parser.add_argument("--quality-docs", type=int, default=600, help="judged docs for the nDCG comparison")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds in process")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per request / raw batch")
    parser.add_argument("--http-concurrency", type=int, default=4)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--gpu-batch", type=int, default=256)
    parser.add_argument("--gpu-seconds", type=float, default=20.0)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100/H200: 989)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.device == "cuda":
        return gpu_main(args)

    texts = load_texts(args.data / "corpus.jsonl", args.docs)
    load_start = os.getloadavg()[0]
    print(f"{len(texts)} docs from {args.data}, {os.cpu_count()} CPUs, load average {load_start:.2f}", flush=True)
    rates, vectors = measure_backends(texts, batch_size=args.batch_size, rounds=args.rounds)
    reference = vectors["torch fp32 x2"]
    for label, v in vectors.items():
        c = cosines(v, reference)
        print(f"  {label:<20} cosine to torch fp32: mean {c.mean():.5f} min {c.min():.5f}", flush=True)
    int8_cos = cosines(vectors["onnx int8 x2"], reference)
    torch_best = max(rates["torch fp32 x1"], rates["torch fp32 x2"])
    ndcg = knn_ndcg(
        args.data,
        max_docs=args.quality_docs,
        variants={"fp32": load_variant("torch", "none", threads=2), "int8": load_variant("onnx", "int8", threads=2)},
    )

    import ray
    from ray import serve

    from connector.services.embedding import EmbeddingClient

    port = free_port()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=200 * 1024 * 1024,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    serve.start(
        http_options={"host": "127.0.0.1", "port": port},
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
    )
    service: dict[str, float] = {}
    try:
        for backend, quantization in (("torch", "none"), ("onnx", "int8")):
            url = start_default_service(backend, quantization, port=port)
            with EmbeddingClient(url, batch_size=args.batch_size, max_concurrency=args.http_concurrency) as client:
                info = client.info()
                client.embed_documents(texts[: args.batch_size * args.http_concurrency])
                label = f"service defaults {backend}/{quantization} ({info.replicas} x {info.threads_per_replica})"
                service[backend] = timed(label, len(texts), lambda c=client: c.embed_documents(texts))
            serve.delete("embed")
    finally:
        serve.shutdown()
        ray.shutdown()
    load_end = os.getloadavg()[0]
    print(f"load average: {load_start:.2f} at the start, {load_end:.2f} at the end", flush=True)
    print(
        f"RESULT torch_docs_per_s={torch_best:.1f} onnx_fp32_docs_per_s={rates['onnx fp32 x2']:.1f} "
        f"int8_docs_per_s={rates['onnx int8 x2']:.1f} int8_vs_torch={rates['onnx int8 x2'] / torch_best:.2f} "
        f"service_default_docs_per_s={service['torch']:.1f} service_default_vs_raw={service['torch'] / torch_best:.3f} "
        f"service_int8_docs_per_s={service['onnx']:.1f} "
        f"int8_mean_cos={int8_cos.mean():.4f} int8_min_cos={int8_cos.min():.4f} "
        f"knn_ndcg_fp32={ndcg['fp32']:.4f} knn_ndcg_int8={ndcg['int8']:.4f} hybrid_ndcg=not_measured "
        f"load_avg_start={load_start:.2f} load_avg_end={load_end:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
