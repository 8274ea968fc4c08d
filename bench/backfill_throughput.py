"""Backfill throughput against the best a machine that must both embed and write can do, in one run.

On a small machine the cluster shares the cores with the model, so "embedding hides reading and writing"
is the wrong yardstick. For each backend of the embedding service (the default flags, then the fastest:
``--backend onnx --quantize int8``), on the same ESCI texts as the backfill builds them (``title`` and
``text`` joined by a newline; the first ``--docs`` of the corpus):

1. E, embed only: the texts through the service and client, fed as the job feeds it (pages of
   ``--page-size`` texts, ``--embed-workers`` threads), no cluster; measured before and after, averaged;
2. W, write only: ``run_backfill`` on a fresh copy of the index with an embedder that returns the vectors
   of step 1 (no model work): the same point-in-time reads, conditional bulk partial updates, checkpoints
   and catch-up as the backfill, no embedding;
3. B, the backfill: ``run_backfill`` with the service on another fresh copy;
4. ``backfill_vs_limit = B / (1 / (1/E + 1/W))``: the pipeline against doing both, one after the other, on the
   same cores (goal >= 0.90).

Last line: ``RESULT backfill_vs_limit_default=... backfill_vs_limit_fastest=... embed_default_docs_per_s=...
write_docs_per_s=... backfill_default_docs_per_s=... ... catch_up_read_default=... load_avg_start=...``

Usage::

    flock /tmp/eshybrid-integration.lock python bench/backfill_throughput.py --url http://127.0.0.1:9201

Without ``--url`` a local cluster is started (and removed afterwards) by :mod:`bench._servers`; each embedding
service is started with ``eshybrid serve embed`` (default flags, then the fastest backend).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import resource
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._servers import cluster, model_service  # noqa: E402
from connector import connect  # noqa: E402
from connector.jobs.backfill import BackfillConfig, run_backfill  # noqa: E402
from connector.jobs.settings import JobSettings  # noqa: E402
from connector.services.embedding import EmbeddingClient  # noqa: E402
from connector.texts import TextPolicy, UnembeddableDocument, build_text  # noqa: E402
from migrations import MigrationSettings, Migrator  # noqa: E402


def load_corpus(data: Path, n: int) -> list[dict[str, str]]:
    """The first ``n`` ESCI products (title and text) whose text the backfill embeds (not dead-lettered)."""
    policy = TextPolicy(fields=("title", "text"), template=None, max_text_chars=JobSettings().max_text_chars)
    docs = []
    with (data / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            doc = {"title": row.get("title") or "", "text": row.get("text") or ""}
            try:
                build_text(doc, policy)
            except UnembeddableDocument:
                continue
            docs.append(doc)
            if len(docs) >= n:
                break
    return docs


def load_index(cluster: Any, index: str, docs: Sequence[dict[str, str]], *, dims: int, model_id: str) -> None:
    """A BM25 index of the products (as a shop has it), then migration 0001 adds the vector field."""
    body: dict[str, Any] = {
        "settings": {"index": {"number_of_shards": 2, "number_of_replicas": 0}},
        "mappings": {"properties": {"title": {"type": "text"}, "text": {"type": "text"}}},
    }
    if cluster.capabilities.requires_knn_index_setting:
        body["settings"]["index"]["knn"] = True
    cluster.create_index(index, body)
    for start in range(0, len(docs), 1000):
        lines: list[dict[str, object]] = []
        for i in range(start, min(start + 1000, len(docs))):
            lines += [{"index": {"_index": index, "_id": str(i)}}, dict(docs[i])]
        cluster.bulk(lines)
    cluster.refresh(index)
    Migrator(
        cluster,
        index,
        params={"dims": dims, "model_id": model_id, "source_fields": "title,text"},
        settings=MigrationSettings(state_index=f"{index}-migrations"),
    ).upgrade("0001")


class Precomputed:
    """An embedder that returns vectors computed before (no model work): the write-only run's."""

    def __init__(self, vectors: dict[str, list[float]], info: Any) -> None:
        self.vectors = vectors
        self._info = info

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.vectors[t] for t in texts]

    def info(self) -> Any:
        return self._info


def embed_only(
    client: EmbeddingClient,
    texts: Sequence[str],
    *,
    page_size: int,
    workers: int,
    keep: dict[str, list[float]] | None = None,
) -> float:
    """docs/s embedding ``texts`` the way the job's embed stage does (pages, sorted by length, N threads)."""
    pages: queue.Queue[list[str]] = queue.Queue()
    for start in range(0, len(texts), page_size):
        pages.put(sorted(texts[start : start + page_size], key=len))
    errors: list[BaseException] = []

    def work() -> None:
        while True:
            try:
                page = pages.get_nowait()
            except queue.Empty:
                return
            try:
                vectors = client.embed_documents(page)
                if keep is not None:
                    keep.update(zip(page, vectors))
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)
                return

    started = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return len(texts) / (time.monotonic() - started)


def run_job(cluster: Any, index: str, docs: Sequence[dict[str, str]], embedder: Any, info: Any, args: Any) -> Any:
    """One backfill of a fresh copy of the index; returns (docs/s, summary)."""
    settings = JobSettings(
        page_size=args.page_size,
        embed_workers=args.embed_workers,
        jobs_index=f"{index}-jobs",
        dead_letter_index=f"{index}-dead",
    )
    try:
        load_index(cluster, index, docs, dims=info.dims, model_id=info.model_id)
        config = BackfillConfig(
            index=index, fields=("title", "text"), slices=args.slices, settings=settings, show_progress=False
        )
        started = time.monotonic()
        summary = run_backfill(cluster, config, embedder=embedder, model_id=info.vector_model_id, dims=info.dims)
        elapsed = time.monotonic() - started
        assert summary.reconciles and summary.main.updated == len(docs), summary.as_dict()
        return len(docs) / elapsed, summary
    finally:
        for name in (index, f"{index}-migrations", settings.jobs_index, settings.dead_letter_index):
            cluster.delete_index(name)


def measure_backend(
    label: str, extra: Sequence[str], cluster: Any, docs: Sequence[dict[str, str]], args: Any
) -> dict[str, float]:
    """E, W and B for one embedding service (see the module docstring)."""
    policy = TextPolicy(fields=("title", "text"), template=None, max_text_chars=JobSettings().max_text_chars)
    texts = [build_text(d, policy) for d in docs]
    with model_service("embed", args=extra) as embed_url, EmbeddingClient(embed_url, timeout_s=300) as client:
        info = client.info()
        print(
            f"[{label}] {info.model_id} {info.backend}/{info.quantization}, layout {info.replicas} x "
            f"{info.threads_per_replica}; load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        embed_only(client, texts[: args.page_size], page_size=args.page_size, workers=args.embed_workers)  # warm-up
        vectors: dict[str, list[float]] = {}
        before = embed_only(client, texts, page_size=args.page_size, workers=args.embed_workers, keep=vectors)
        tag = uuid.uuid4().hex[:6]
        write, _ = run_job(cluster, f"i15-bench-w-{tag}", docs, Precomputed(vectors, info), info, args)
        backfill, summary = run_job(cluster, f"i15-bench-b-{tag}", docs, client, info, args)
        after = embed_only(client, texts, page_size=args.page_size, workers=args.embed_workers)
    embed = (before + after) / 2
    limit = 1.0 / (1.0 / embed + 1.0 / write)
    print(
        f"[{label}] E embed only {embed:.1f} docs/s (before {before:.1f}, after {after:.1f}); W write only "
        f"{write:.1f} docs/s; B backfill {backfill:.1f} docs/s (catch-up read {summary.catch_up.read} docs); "
        f"limit 1/(1/E+1/W) {limit:.1f} docs/s; B/limit {backfill / limit:.3f}; load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    return {
        "embed": embed,
        "write": write,
        "backfill": backfill,
        "limit": limit,
        "vs_limit": backfill / limit,
        "catch_up_read": summary.catch_up.read,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url",
        default=None,
        help="cluster URL (default $ESHYBRID_TEST_ES9_URL / _OS3_URL by --flavor; unset: a local cluster is "
        "started and stopped)",
    )
    parser.add_argument("--flavor", default="elasticsearch", choices=("elasticsearch", "opensearch"))
    parser.add_argument(
        "--data",
        type=Path,
        default=next(
            (p / "data" / "esci-us-subset" for p in (REPO.parent / "shared", REPO.parents[1] / "shared") if p.is_dir()),
            REPO.parent / "shared" / "data" / "esci-us-subset",
        ),
        help="BEIR folder whose corpus.jsonl gives the products",
    )
    parser.add_argument("--docs", type=int, default=400, help="products (the first of the corpus)")
    parser.add_argument("--slices", type=int, default=2)
    parser.add_argument("--page-size", type=int, default=JobSettings().page_size)
    parser.add_argument("--embed-workers", type=int, default=JobSettings().embed_workers)
    args = parser.parse_args(argv)

    docs = load_corpus(args.data, args.docs)
    load_start = os.getloadavg()[0]
    print(
        f"{len(docs)} ESCI products from {args.data}; {os.cpu_count()} CPUs; load average {load_start:.2f}", flush=True
    )
    results: dict[str, dict[str, float]] = {}
    key = "es9" if args.flavor == "elasticsearch" else "os3"
    url = args.url or os.environ.get(f"ESHYBRID_TEST_{key.upper()}_URL")
    with cluster(key, url, label="bench-backfill") as url, connect(url) as client:
        print(f"cluster {client.capabilities.display_name} at {url}", flush=True)
        results["default"] = measure_backend("default", [], client, docs, args)
        results["fastest"] = measure_backend("fastest", ["--backend", "onnx", "--quantize", "int8"], client, docs, args)
    load_end = os.getloadavg()[0]
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    fields = [f"backfill_vs_limit_{k}={r['vs_limit']:.3f}" for k, r in results.items()]
    for key, r in results.items():
        fields += [
            f"embed_{key}_docs_per_s={r['embed']:.1f}",
            f"write_{key}_docs_per_s={r['write']:.1f}",
            f"backfill_{key}_docs_per_s={r['backfill']:.1f}",
            f"catch_up_read_{key}={r['catch_up_read']:.0f}",
        ]
    fields += [f"peak_rss_mb={peak_rss_mb:.0f}", f"load_avg_start={load_start:.2f}", f"load_avg_end={load_end:.2f}"]
    print("RESULT " + " ".join(fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
