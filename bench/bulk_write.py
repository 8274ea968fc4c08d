"""The cluster's own write throughput for vectors: the other bound of a backfill (issue 31, README "Sizing").

What a backfill asks of the cluster, without the job around it: bulk partial updates that add a 384-dim vector
(all-MiniLM-L6-v2's size) to documents already there, into a field mapped by migration 0001 (the mapping a shop
gets: ``dense_vector`` with the server's default quantized HNSW on Elasticsearch, ``knn_vector`` on OpenSearch).
Vectors are seeded random unit vectors (the graph's cost does not depend on where they came from).

For each configuration, ``--docs`` products are indexed (not timed), then the vectors are written in bulk
requests of ``--bulk-docs`` updates by ``--writers`` threads; docs/s = docs / (bulk time + the final refresh, so
that building the graph segments is counted). Configurations, interleaved over ``--rounds`` rounds:

- ``single``: the cluster at ``--url`` (a local single node is started when none is given), no replica;
- with ``--multinode``: a local three-node Elasticsearch (``cluster up --nodes 3``), no replica and one replica
  (``replica_write_cost = r0 / r1``: what a replica costs the writes; it adds read capacity in return).

Rule, written before any run: each configuration's figure is the **best** of its rounds (the machine is shared;
the best round is the one least disturbed). Nothing here is a default of the library.

Last line: ``RESULT bulk_write_docs_per_s=... [mn_r0_docs_per_s=... mn_r1_docs_per_s=... replica_write_cost=...]
docs=... cores=... load_avg_start=... load_avg_end=...``

Usage::

    python bench/bulk_write.py --url http://127.0.0.1:9201            # the README figure: add --multinode
    python bench/bulk_write.py --url http://127.0.0.1:9201 --docs 200 --rounds 1   # a smoke run
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from connector import connect  # noqa: E402
from connector.cluster.client import Cluster  # noqa: E402
from connector.localcluster import start_cluster, stop_cluster  # noqa: E402
from migrations import MigrationSettings, Migrator  # noqa: E402

DIMS = 384


def _unit_vector(rng: random.Random) -> list[float]:
    vector = [rng.gauss(0.0, 1.0) for _ in range(DIMS)]
    norm = sum(x * x for x in vector) ** 0.5
    return [round(x / norm, 6) for x in vector]


def _prepare(cluster: Cluster, index: str, docs: int, replicas: int) -> None:
    """The products (text only) and the vector field of migration 0001; not timed."""
    settings: dict[str, Any] = {"index": {"number_of_shards": 3, "number_of_replicas": replicas}}
    if cluster.capabilities.requires_knn_index_setting:
        settings["index"]["knn"] = True
    mappings = {"properties": {"title": {"type": "text"}, "description": {"type": "text"}}}
    cluster.create_index(index, {"settings": settings, "mappings": mappings})
    for start in range(0, docs, 1000):
        lines: list[dict[str, Any]] = []
        for i in range(start, min(docs, start + 1000)):
            lines += [{"index": {"_index": index, "_id": f"p{i}"}}, {"title": f"product {i}", "description": "x"}]
        result = cluster.bulk(lines)
        assert not result.get("errors"), "indexing the products failed"
    Migrator(
        cluster,
        index,
        params={"vector_field": "embedding", "dims": DIMS, "model_id": "bench", "source_fields": "title,description"},
        settings=MigrationSettings(state_index=f"{index}-migrations"),
    ).upgrade("0001")
    cluster.refresh(index)
    cluster.request("GET", "/_cluster/health", params={"wait_for_status": "green", "timeout": "120s"})


def _write(cluster: Cluster, index: str, docs: int, *, bulk_docs: int, writers: int, seed: int) -> float:
    """Write every document's vector (partial updates, ``writers`` threads); returns docs/s incl. the refresh."""
    rng = random.Random(seed)
    chunks = [
        [(f"p{i}", _unit_vector(rng)) for i in range(start, min(docs, start + bulk_docs))]
        for start in range(0, docs, bulk_docs)
    ]
    lock = threading.Lock()
    failures: list[str] = []

    def worker() -> None:
        while True:
            with lock:
                if not chunks:
                    return
                chunk = chunks.pop()
            lines: list[dict[str, Any]] = []
            for doc_id, vector in chunk:
                lines += [{"update": {"_index": index, "_id": doc_id}}, {"doc": {"embedding": vector}}]
            result = cluster.bulk(lines)
            if result.get("errors"):
                with lock:
                    failures.append(index)

    threads = [threading.Thread(target=worker) for _ in range(writers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cluster.refresh(index)
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} bulk requests had item failures on {index}")
    return docs / elapsed


def _round(url: str, *, replicas: int, args: argparse.Namespace, seed: int) -> float:
    index = f"bench-bulk-write-{uuid.uuid4().hex[:12]}"
    with connect(url) as cluster:
        try:
            _prepare(cluster, index, args.docs, replicas)
            return _write(cluster, index, args.docs, bulk_docs=args.bulk_docs, writers=args.writers, seed=seed)
        finally:
            for name in (index, f"{index}-migrations"):
                cluster.request("DELETE", f"/{name}", ignore=(404,))


def _load() -> float:
    return os.getloadavg()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--url", help="a running cluster (default: start a local single-node Elasticsearch)")
    parser.add_argument("--multinode", action="store_true", help="also a local 3-node cluster, replicas 0 and 1")
    parser.add_argument("--docs", type=int, default=20_000, help="documents per configuration and round")
    parser.add_argument("--bulk-docs", type=int, default=500, help="updates per bulk request (the job's default)")
    parser.add_argument("--writers", type=int, default=2, help="threads sending bulk requests (the job's default)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    load_start = _load()
    started: list[str] = []
    try:
        url = args.url
        if url is None:
            name = f"bench-bulk-{os.getpid()}"
            url = start_cluster(flavor="elasticsearch", port=0, name=name).url
            started.append(name)
        configs: dict[str, Callable[[int], float]] = {
            "single": lambda seed: _round(url, replicas=0, args=args, seed=seed)
        }
        if args.multinode:
            name = f"bench-bulk-mn-{os.getpid()}"
            mn_url = start_cluster(flavor="elasticsearch", port=0, name=name, nodes=3).url
            started.append(name)
            configs["mn_r0"] = lambda seed: _round(mn_url, replicas=0, args=args, seed=seed)
            configs["mn_r1"] = lambda seed: _round(mn_url, replicas=1, args=args, seed=seed)
        best: dict[str, float] = {}
        for r in range(args.rounds):
            for key, run in configs.items():
                rate = run(r)
                print(f"round {r + 1} {key}: {rate:.1f} docs/s", flush=True)
                best[key] = max(best.get(key, 0.0), rate)
    finally:
        for name in started:
            stop_cluster(name, remove_data=True)
    fields = [f"bulk_write_docs_per_s={best['single']:.1f}"]
    if args.multinode:
        fields += [
            f"mn_r0_docs_per_s={best['mn_r0']:.1f}",
            f"mn_r1_docs_per_s={best['mn_r1']:.1f}",
            f"replica_write_cost={best['mn_r0'] / best['mn_r1']:.3f}",
        ]
    fields += [f"docs={args.docs}", f"cores={os.cpu_count()}", f"load_avg_start={load_start:.2f}",
               f"load_avg_end={_load():.2f}"]  # fmt: skip
    print("RESULT " + " ".join(fields))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
