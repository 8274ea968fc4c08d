"""Query vectors: the in-process query encoder (ONNX Runtime) vs the embedding service, per query.

Not a test. One run, same machine, same query texts (the first --queries of the data set's ``queries.jsonl``,
ESCI dev by default), interleaved: each query is embedded once in process and once through the service (the sync
``EmbeddingClient`` a search uses, with its cache off), alternating which goes first, after a warm-up of 20
queries. Reports p50/p99 per query for both, the ratio, and the cosine between the two vectors of each query
(the encoder must stay >= 0.999 to the service). The encoder is the export compatible with the service's model
(``--encoder-dir``, else the default places; exported with ``eshybrid export-query-encoder``'s function when
none is found). Issue 24's goal: ``query_embed_p50_ms <= 5``.

Ends with one line ``RESULT key=value ...``; the load average is printed at start and end.

    .venv/bin/python bench/query_embed.py --embed-url http://127.0.0.1:8011/embed --queries 500
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from bench._servers import model_service  # noqa: E402
from connector.services.embedding import EmbeddingClient  # noqa: E402
from connector.services.query_encoder import QueryEncoder, QueryEncoderSettings, local_query_encoder  # noqa: E402

_DEFAULT_DATA = Path("/work/shared/data/esci-us-subset")
_WARMUP = 20


def read_queries(dataset: Path, limit: int) -> list[str]:
    """The first ``limit`` query texts of a BEIR ``queries.jsonl``."""
    with (dataset / "queries.jsonl").open(encoding="utf-8") as lines:
        return [json.loads(line)["text"] for _, line in zip(range(limit), lines)]


def encoder_for(meta: dict[str, Any], *, folder: str | None, threads: int, quantization: str) -> QueryEncoder:
    """The encoder compatible with ``meta``: from ``folder`` or the default places, exported when none is there."""
    settings = QueryEncoderSettings(model_dir=folder, threads=threads)
    encoder = local_query_encoder(meta, settings=settings)
    if encoder is None and folder is None:
        from embedding_service.query_export import export_query_encoder
        from embedding_service.settings import EmbeddingServiceSettings

        print("no compatible export found: exporting the default model", flush=True)
        exported = export_query_encoder(
            EmbeddingServiceSettings(backend="onnx", device="cpu", quantize=quantization)  # type: ignore[arg-type]
        )
        encoder = local_query_encoder(meta, model_dir=exported, settings=settings)
    if encoder is None:
        raise SystemExit("no query encoder for the service's model: pass --encoder-dir (eshybrid export-query-encoder)")
    return encoder


def percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000.0, q))


def run(queries: list[str], encoder: QueryEncoder, client: EmbeddingClient) -> dict[str, Any]:
    """Interleaved timings of both ways, and the cosine of each query's two vectors."""
    for text in queries[:_WARMUP]:
        encoder.embed_query(text)
        client.embed_query(text)
    local_s: list[float] = []
    service_s: list[float] = []
    cosines: list[float] = []
    for i, text in enumerate(queries):
        order = ("local", "service") if i % 2 == 0 else ("service", "local")
        vectors: dict[str, np.ndarray] = {}
        for way in order:
            started = time.perf_counter()
            vector = encoder.embed_query(text) if way == "local" else client.embed_query(text)
            (local_s if way == "local" else service_s).append(time.perf_counter() - started)
            vectors[way] = np.asarray(vector, dtype=np.float64)
        a, b = vectors["local"], vectors["service"]
        cosines.append(float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)))
    return {
        "query_embed_p50_ms": percentile_ms(local_s, 50),
        "query_embed_p99_ms": percentile_ms(local_s, 99),
        "service_query_p50_ms": percentile_ms(service_s, 50),
        "service_query_p99_ms": percentile_ms(service_s, 99),
        "min_cos": min(cosines),
        "mean_cos": float(np.mean(cosines)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=_DEFAULT_DATA, help="BEIR folder with queries.jsonl")
    parser.add_argument("--queries", type=int, default=500, help="query texts (after a warm-up of 20)")
    parser.add_argument(
        "--embed-url",
        default=os.environ.get("ESHYBRID_EMBED_URL") or os.environ.get("ESHYBRID_TEST_EMBED_URL"),
        help="embedding service base URL (default $ESHYBRID_EMBED_URL, else $ESHYBRID_TEST_EMBED_URL; unset: one "
        "with default flags is started and stopped)",
    )
    parser.add_argument("--encoder-dir", default=None, help="exported encoder folder (default: search the caches)")
    parser.add_argument("--threads", type=int, default=1, help="encoder intra-op threads (the default setting: 1)")
    args = parser.parse_args()
    queries = read_queries(args.dataset, args.queries + _WARMUP)
    load_start = os.getloadavg()[0]
    print(f"load average {load_start:.2f}", flush=True)
    with (
        model_service("embed", args.embed_url) as embed_url,
        EmbeddingClient(embed_url, query_cache_size=0) as client,
    ):
        info = client.info()
        meta = {"model_id": info.model_id, "dims": info.dims, "pooling": info.pooling, "normalized": info.normalized}
        meta["model_quantization"] = info.quantization
        encoder = encoder_for(meta, folder=args.encoder_dir, threads=args.threads, quantization=info.quantization)
        print(f"service: {info.model_id} {info.backend}/{info.quantization} at {embed_url}; encoder: {encoder}")
        result = run(queries, encoder, client)
    load_end = os.getloadavg()[0]
    count = len(queries) - _WARMUP
    print(f"{count} queries, interleaved, {args.threads} encoder thread(s)")
    print(f"{'way':<12} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"{'in process':<12} {result['query_embed_p50_ms']:>8.2f} {result['query_embed_p99_ms']:>8.2f}")
    print(f"{'service':<12} {result['service_query_p50_ms']:>8.2f} {result['service_query_p99_ms']:>8.2f}")
    speedup = result["service_query_p50_ms"] / max(result["query_embed_p50_ms"], 1e-9)
    print(
        f"service p50 / in-process p50 = {speedup:.2f}; cosine min {result['min_cos']:.6f}, mean {result['mean_cos']:.6f}"
    )
    print(f"load average {load_end:.2f}", flush=True)
    fields = [f"{key}={value:.6f}" if "cos" in key else f"{key}={value:.3f}" for key, value in result.items()]
    fields += [f"service_vs_query_embed={speedup:.2f}", f"queries={count}", f"load_start={load_start:.2f}"]
    fields.append(f"load_end={load_end:.2f}")
    print("RESULT " + " ".join(fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
