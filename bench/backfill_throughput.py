"""Backfill throughput against embedding-only throughput, measured in one run.

1. embedding only: the same texts, through the same embedding service and client, fed the way
   the job feeds it (pages of ``--page-size`` texts, ``--embed-workers`` threads), no cluster;
2. backfill end to end: a BM25 index of the same documents on a real cluster, ``run_backfill``
   (point-in-time reads, embedding, conditional bulk partial updates, checkpoints, catch-up);
3. their ratio (goal >= 0.90: reading and writing hidden behind embedding) and this process's
   peak RSS (the job's memory: the embedding service runs in its own processes).

Embedding-only is measured before and after the backfill and averaged (the CPU is shared).
Last line: ``RESULT embed_only_docs_per_s=... backfill_docs_per_s=... backfill_vs_embed=... peak_rss_mb=...``

Usage::

    python bench/backfill_throughput.py --url http://127.0.0.1:9201 [--embed-url URL] [--docs 10000]

Without ``--url`` a local cluster is started with ``connector.localcluster.start_cluster``;
without ``--embed-url`` an embedding service is started with ``eshybrid serve embed``.
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from connector import connect  # noqa: E402
from connector.jobs.backfill import BackfillConfig, run_backfill  # noqa: E402
from connector.jobs.settings import JobSettings  # noqa: E402
from connector.services.embedding import EmbeddingClient  # noqa: E402
from migrations import MigrationSettings, Migrator  # noqa: E402

_COLORS = ["red", "blue", "black", "white", "green", "grey", "navy", "pink", "olive", "beige"]
_NOUNS = [
    "running shoe",
    "desk lamp",
    "coffee mug",
    "backpack",
    "wool scarf",
    "phone case",
    "water bottle",
    "office chair",
    "yoga mat",
    "rain jacket",
    "hiking boot",
    "kettle",
    "notebook",
    "headphones",
]
_BRANDS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne"]


def titles(n: int) -> list[str]:
    rng = random.Random(0)
    return [f"{rng.choice(_BRANDS)} {rng.choice(_COLORS)} {rng.choice(_NOUNS)} {i}" for i in range(n)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def embedding_service(url: str | None, replicas: int) -> Iterator[str]:
    """The given service, or one started with ``eshybrid serve embed`` in its own process group."""
    if url:
        yield url.rstrip("/")
        return
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
        HF_HUB_OFFLINE="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    )
    cmd = [
        sys.executable,
        "-m",
        "connector.cli",
        "serve",
        "embed",
        "--port",
        str(_free_port()),
        "--num-cpus",
        "2",
        "--replicas",
        str(replicas),
        "--num-cpus-per-replica",
        str(2 / replicas),
        "--torch-threads",
        "1",
    ]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            found = re.search(r"ready at (\S+)", line)
            if found:
                break
        else:
            raise RuntimeError("the embedding service exited before it was ready")
        yield found.group(1)
    finally:
        _stop_session(proc)


def _stop_session(proc: subprocess.Popen[str]) -> None:
    """Stop the service and every process of the session it started (Ray agents and actors included)."""
    import psutil

    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
    time.sleep(2)
    for leftover in psutil.process_iter():
        try:
            if leftover.pid != os.getpid() and os.getsid(leftover.pid) == proc.pid:
                leftover.kill()
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue


@contextmanager
def cluster_url(url: str | None, flavor: str) -> Iterator[str]:
    if url:
        yield url
        return
    from connector.localcluster import start_cluster, stop_cluster

    name = f"bench-backfill-{uuid.uuid4().hex[:6]}"
    local = start_cluster(flavor=flavor, port=0, name=name)  # type: ignore[arg-type]
    try:
        yield local.url
    finally:
        stop_cluster(name, remove_data=True)


def load_index(cluster: Any, index: str, texts: Sequence[str], *, dims: int, model_id: str) -> None:
    """A BM25 index of the texts (as a shop has it), then migration 0001 adds the vector field."""
    body: dict[str, Any] = {
        "settings": {"index": {"number_of_shards": 2, "number_of_replicas": 0}},
        "mappings": {"properties": {"title": {"type": "text"}, "sku": {"type": "keyword"}}},
    }
    if cluster.capabilities.requires_knn_index_setting:
        body["settings"]["index"]["knn"] = True
    cluster.create_index(index, body)
    for start in range(0, len(texts), 2000):
        lines: list[dict[str, object]] = []
        for i in range(start, min(start + 2000, len(texts))):
            lines += [{"index": {"_index": index, "_id": str(i)}}, {"title": texts[i], "sku": f"S{i}"}]
        cluster.bulk(lines)
    cluster.refresh(index)
    Migrator(
        cluster,
        index,
        params={"dims": dims, "model_id": model_id, "source_fields": "title", "template": "{title}"},
        settings=MigrationSettings(state_index=f"{index}-migrations"),
    ).upgrade("0001")


def embed_only(client: EmbeddingClient, texts: Sequence[str], *, page_size: int, workers: int) -> float:
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
                client.embed_documents(page)
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="cluster URL (default: start a local cluster)")
    parser.add_argument("--flavor", default="elasticsearch", choices=("elasticsearch", "opensearch"))
    parser.add_argument("--embed-url", help="embedding service (default: start one)")
    parser.add_argument("--replicas", type=int, default=2, help="replicas of a started embedding service")
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--slices", type=int, default=2)
    parser.add_argument("--page-size", type=int, default=JobSettings().page_size)
    parser.add_argument("--embed-workers", type=int, default=JobSettings().embed_workers)
    args = parser.parse_args(argv)

    texts = titles(args.docs)
    settings = JobSettings(
        page_size=args.page_size,
        embed_workers=args.embed_workers,
        jobs_index="bench-eshybrid-jobs",
        dead_letter_index="bench-eshybrid-dead",
    )
    index = f"bench-backfill-{uuid.uuid4().hex[:8]}"
    with (
        embedding_service(args.embed_url, args.replicas) as embed_url,
        cluster_url(args.url, args.flavor) as url,
        EmbeddingClient(embed_url, timeout_s=120) as client,
        connect(url) as cluster,
    ):
        info = client.info()
        print(
            f"cluster {cluster.capabilities.display_name} at {url}; embedding {info.model_id} on {info.device} "
            f"at {embed_url}; {args.docs} docs",
            flush=True,
        )
        embed_only(client, texts[:512], page_size=args.page_size, workers=args.embed_workers)  # warm-up
        before = embed_only(client, texts, page_size=args.page_size, workers=args.embed_workers)
        print(f"embedding only (before): {before:.1f} docs/s", flush=True)

        try:
            load_index(cluster, index, texts, dims=info.dims, model_id=info.model_id)
            config = BackfillConfig(
                index=index, fields=("title",), slices=args.slices, settings=settings, show_progress=False
            )
            started = time.monotonic()
            summary = run_backfill(cluster, config, embedder=client)
            elapsed = time.monotonic() - started
            assert summary.reconciles and summary.main.updated == args.docs, summary.as_dict()
            backfill = args.docs / elapsed
            print(
                f"backfill end to end: {backfill:.1f} docs/s ({elapsed:.1f}s; main scan "
                f"{summary.main_elapsed_s:.1f}s = {summary.docs_per_s:.1f} docs/s, catch-up re-read "
                f"{summary.catch_up.read} docs)",
                flush=True,
            )
        finally:
            for name in (index, f"{index}-migrations", settings.jobs_index, settings.dead_letter_index):
                cluster.delete_index(name)
        after = embed_only(client, texts, page_size=args.page_size, workers=args.embed_workers)
        print(f"embedding only (after): {after:.1f} docs/s", flush=True)

    embed = (before + after) / 2
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"RESULT embed_only_docs_per_s={embed:.1f} backfill_docs_per_s={backfill:.1f} "
        f"backfill_vs_embed={backfill / embed:.3f} peak_rss_mb={peak_rss_mb:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
