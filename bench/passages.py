"""Passages vs whole-document vectors on ESCI: nDCG@10 / recall@100 of knn and hybrid, cost of passages.

One run, on one cluster (ES 9 by default, $ESHYBRID_TEST_ES9_URL), all-MiniLM-L6-v2 in this process:

* quality: the whole-document index (``embedding``) and one index per passage setting (nested
  ``passages``, searched with the library's nested kNN leg, best passage per document); kNN k=100,
  num_candidates 200; hybrid = the library's default fusion (``DEFAULT_FUSION``) of the BM25 leg
  (``HybridSearch``'s default lexical leg) and that kNN leg, fused client-side; paired tests per query.
* cost: vectors per document; index size ratio (store size after a merge to one segment, passages index
  over whole-document index, both holding the same text); backfill docs/s ratio: the real backfill job
  (``run_backfill``, whole-document vs ``--passages``) on a sample of documents, interleaved
  (whole, passages, passages, whole) on fresh indices, with an in-process service stand-in
  (the same model; ``tokenize`` from the model's own fast tokenizer, as ``POST /v1/tokenize`` does).

Sampling, so that one run fits in 10 minutes on 2 shared cores (this machine embeds ~1,500 tokens/s and
the long ESCI texts hold ~1.5 M tokens): ``--queries`` judged queries drawn with ``--seed``, and the
corpus is every document judged for them (the other queries' candidates are the distractors, as in
the full set). Vectors are cached under ``~/.cache/eshybrid/bench`` by model, setting and documents, so
a second run only searches. Ends with one ``RESULT`` line; the load average is printed before and after.

    flock /tmp/eshybrid-integration.lock .venv/bin/python bench/passages.py [--queries 15] [--settings window,128+title]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import random
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import numpy as np  # noqa: E402
from hybrid_quality import (  # type: ignore[import-not-found]  # noqa: E402
    CACHE_DIR,
    DEFAULT_DATASET,
    MODEL_ID,
    TEMPLATE,
    LocalEmbedder,
    bench_connect,
    doc_text,
)

from bench._servers import cluster as bench_cluster  # noqa: E402
from connector.cluster.client import Cluster  # noqa: E402
from connector.jobs.backfill import BackfillConfig, run_backfill  # noqa: E402
from connector.jobs.passages import Passage, PassagePolicy, cut_passages  # noqa: E402
from connector.jobs.settings import JobSettings  # noqa: E402
from connector.quality.evaluation import compare_modes, evaluate_runs, ranking_to_run  # noqa: E402
from connector.quality.load import iter_corpus, load_corpus, plain_index_body, read_beir  # noqa: E402
from connector.search import HybridSearch  # noqa: E402
from connector.search.fusion import LegHit, fuse  # noqa: E402
from connector.search.models import DEFAULT_FUSION  # noqa: E402
from connector.search.passages import passage_knn_leg_body  # noqa: E402
from connector.search.query_builder import knn_leg_body  # noqa: E402
from mappings import VectorField  # noqa: E402
from mappings.passages import build_add_passages_field_body  # noqa: E402

DEPTH = 100
NUM_CANDIDATES = 200
MAX_PASSAGES = 8
Run = dict[str, dict[str, float]]


@dataclass(frozen=True)
class Setting:
    """One way to cut: ``window`` (the model's window) or ``<tokens>``, optionally ``+title``."""

    name: str

    @property
    def policy(self) -> PassagePolicy:
        size, _, prefix = self.name.partition("+")
        return PassagePolicy(
            max_tokens=None if size == "window" else int(size),
            overlap_sentences=1,
            max_passages=MAX_PASSAGES,
            prefix_template="{title}" if prefix == "title" else None,
        )


class LocalService(LocalEmbedder):  # type: ignore[misc]
    """The embedding service's contract in this process: embed, ``tokenize`` (as /v1/tokenize), ``info``."""

    def __init__(self) -> None:
        super().__init__()
        self.tokenizer = self.model.tokenizer
        self.max_length = int(self.model.max_seq_length)

    def tokenize(self, texts: Sequence[str]) -> list[tuple[int, list[tuple[int, int]]]]:
        encoded = self.tokenizer(list(texts), truncation=False, return_offsets_mapping=True)
        return [
            (len(ids), [(a, b) for a, b in offsets if b > a])
            for ids, offsets in zip(encoded["input_ids"], encoded["offset_mapping"])
        ]

    def info(self) -> Any:
        return _Info(model_id=MODEL_ID, dims=384, max_length=self.max_length)


@dataclass(frozen=True)
class _Info:
    model_id: str
    dims: int
    max_length: int
    max_chars_per_item: int = 32_768
    max_items_per_request: int = 256
    vector_model_id: str = MODEL_ID


# -- data -------------------------------------------------------------------------------------------


def sample(
    dataset_path: Path, n_queries: int, seed: int
) -> tuple[dict[str, str], dict[str, dict[str, int]], list[dict[str, Any]]]:
    dataset = read_beir(dataset_path)
    judged = dataset.judged_queries()
    qids = sorted(random.Random(seed).sample(sorted(judged), min(n_queries, len(judged))))
    queries = {q: judged[q] for q in qids}
    qrels = {q: dict(dataset.qrels[q]) for q in qids}
    wanted = {d for q in qids for d in qrels[q]}
    rows = [r for r in iter_corpus(dataset_path / "corpus.jsonl") if r["_id"] in wanted]
    return queries, qrels, rows


def _cache(key: str, compute: Any) -> tuple[np.ndarray, bool]:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / f"passages-{hashlib.sha256(key.encode()).hexdigest()[:24]}.npy"
    if path.exists():
        return np.load(path), True
    matrix = np.asarray(compute(), dtype=np.float32)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, matrix)
    tmp.replace(path)
    return matrix, False


def cut_corpus(service: LocalService, rows: Sequence[dict[str, Any]], setting: Setting) -> list[list[Passage]]:
    """The job's cut of every document (same budget rule as ``PassageStep``: window less the prefix's tokens)."""
    policy = setting.policy
    texts = [doc_text(r) for r in rows]
    spans = service.tokenize(texts)
    out: list[list[Passage]] = []
    for row, text, (_, token_spans) in zip(rows, texts, spans):
        prefix = (row.get("title") or "").replace("\n", " ")[:500] if policy.prefix_template else ""
        reserved = service.tokenize([prefix + "\n" if prefix else ""])[0][0]
        budget = policy.budget(max_length=service.max_length, reserved_tokens=reserved)
        out.append(
            cut_passages(
                text,
                token_spans,
                budget=budget,
                overlap_sentences=policy.overlap_sentences,
                max_passages=policy.max_passages,
                prefix=prefix,
            )
        )
    return out


# -- indices ----------------------------------------------------------------------------------------


def _vector_field(name: str = "embedding") -> VectorField:
    return VectorField(name, dims=384, model_id=MODEL_ID, source_fields=("title", "text"), template=TEMPLATE)


def load_whole(cluster: Cluster, rows: Sequence[dict[str, Any]], vectors: Mapping[str, Sequence[float]]) -> str:
    index = f"i17-bench-doc-{uuid.uuid4().hex[:8]}"
    body = plain_index_body(cluster.capabilities, vector_fields=[_vector_field()])
    load_corpus(cluster, index, rows, index_body=body, vectors=vectors, chunk_size=250)
    return index


def load_passages(cluster: Cluster, rows: Sequence[dict[str, Any]], values: Mapping[str, list[dict[str, Any]]]) -> str:
    index = f"i17-bench-psg-{uuid.uuid4().hex[:8]}"
    body = plain_index_body(cluster.capabilities)
    add = build_add_passages_field_body(
        cluster.capabilities, existing_mapping=body["mappings"], field=_vector_field("passages")
    )
    body["mappings"]["properties"].update(add["properties"])
    docs = [{**r, "passages": values[r["_id"]]} for r in rows]
    load_corpus(cluster, index, docs, index_body=body, chunk_size=100)
    return index


def store_size(cluster: Cluster, index: str) -> int:
    cluster.request("POST", f"/{index}/_forcemerge", params={"max_num_segments": "1"})
    cluster.refresh(index)
    stats = cluster.request("GET", f"/{index}/_stats/store").body
    return int(stats["indices"][index]["primaries"]["store"]["size_in_bytes"])


# -- runs -------------------------------------------------------------------------------------------


def _hits(cluster: Cluster, index: str, body: Mapping[str, Any]) -> list[LegHit]:
    hits = cluster.request("POST", f"/{index}/_search", body=dict(body)).body["hits"]["hits"]
    return [LegHit(h["_id"], float(h["_score"]), h["_index"]) for h in hits]


def runs_for(
    cluster: Cluster,
    index: str,
    lexical: Mapping[str, list[LegHit]],
    query_vectors: Mapping[str, list[float]],
    *,
    passages: bool,
) -> tuple[Run, Run]:
    shape = cluster.capabilities.knn_leg_shape
    knn: Run = {}
    hybrid: Run = {}
    for q, vector in query_vectors.items():
        if passages:
            body = passage_knn_leg_body(
                vector, knn_shape=shape, path="passages", k=DEPTH, num_candidates=NUM_CANDIDATES
            )
        else:
            body = knn_leg_body(vector, knn_shape=shape, field="embedding", k=DEPTH, num_candidates=NUM_CANDIDATES)
        vec = _hits(cluster, index, body)
        knn[q] = ranking_to_run([h.id for h in sorted(vec, key=lambda h: (-h.score, h.id))])
        fused = fuse({"lexical": lexical[q], "vector": vec}, DEFAULT_FUSION)
        hybrid[q] = ranking_to_run([d.id for d in fused][:DEPTH])
    return knn, hybrid


# -- backfill ratio -----------------------------------------------------------------------------------


def backfill_ratio(
    cluster: Cluster, service: LocalService, rows: Sequence[dict[str, Any]], setting: Setting
) -> tuple[float, dict[str, list[float]]]:
    """docs/s of the real job, passages over whole-document, interleaved (whole, passages, passages, whole)."""
    rates: dict[str, list[float]] = {"whole": [], "passages": []}
    for kind in ("whole", "passages", "passages", "whole"):
        index = f"i17-bench-job-{uuid.uuid4().hex[:8]}"
        body = plain_index_body(cluster.capabilities, vector_fields=[_vector_field()])
        load_corpus(cluster, index, rows, index_body=body, chunk_size=250)
        add = build_add_passages_field_body(
            cluster.capabilities, existing_mapping=cluster.get_mapping(index), field=_vector_field("passages")
        )
        cluster.request("PUT", f"/{index}/_mapping", body=add)
        settings = JobSettings(jobs_index=f"{index}-jobs", dead_letter_index=f"{index}-dead", embed_workers=1)
        config = BackfillConfig(
            index=index,
            fields=("title", "text"),
            template=TEMPLATE,
            vector_field="embedding" if kind == "whole" else "passages",
            passages=setting.policy if kind == "passages" else None,
            settings=settings,
            show_progress=False,
            catch_up=False,
        )
        started = time.perf_counter()
        summary = run_backfill(cluster, config, embedder=service)
        elapsed = time.perf_counter() - started
        rates[kind].append(summary.main.updated / elapsed)
        for name in (index, f"{index}-jobs", f"{index}-dead"):
            cluster.request("DELETE", f"/{name}", ignore=(404,))
    ratio = float(np.mean(rates["passages"]) / np.mean(rates["whole"]))
    return ratio, rates


# -- main ---------------------------------------------------------------------------------------------


def _compare(per_query: Mapping[str, Mapping[str, Mapping[str, float]]], a: str, b: str) -> str:
    (c,) = compare_modes({a: per_query[a], b: per_query[b]})
    p = "n/a" if c.p_ttest is None else f"{c.p_ttest:.3f}"
    return f"{b} vs {a}: {c.mean_diff:+.4f} (w/l/t {c.wins}/{c.losses}/{c.ties}, p_t={p})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument(
        "--url",
        default=os.environ.get("ESHYBRID_TEST_ES9_URL"),
        help="ES 9 URL (default $ESHYBRID_TEST_ES9_URL; unset: a local one is started and stopped)",
    )
    parser.add_argument("--queries", type=int, default=15, help="judged queries sampled (default 15)")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--settings", default="window,128+title", help="passage settings, comma-separated")
    parser.add_argument("--backfill-docs", type=int, default=40, help="documents of the backfill ratio sample")
    args = parser.parse_args()
    print(f"# load average before: {os.getloadavg()}", flush=True)
    started = time.perf_counter()
    settings = [Setting(s.strip()) for s in args.settings.split(",") if s.strip()]
    queries, qrels, rows = sample(args.dataset, args.queries, args.seed)
    ids_key = hashlib.sha256("|".join(r["_id"] for r in rows).encode()).hexdigest()[:16]
    service = LocalService()
    lengths = [n - 2 for n, _ in service.tokenize([doc_text(r) for r in rows])]
    long_share = sum(n > service.max_length - 2 for n in lengths) / len(rows)
    print(
        f"# sample: {len(queries)} queries (seed {args.seed}), {len(rows)} documents judged for them; "
        f"{long_share:.0%} longer than the {service.max_length}-token window",
        flush=True,
    )
    whole, hit = _cache(
        f"{MODEL_ID}|{TEMPLATE}|whole|{ids_key}", lambda: service.embed_documents([doc_text(r) for r in rows])
    )
    print(
        f"# whole-document vectors: {'cache' if hit else 'embedded'} ({time.perf_counter() - started:.0f}s)", flush=True
    )
    qids = sorted(queries)
    query_vectors = {q: service.embed_query(queries[q]) for q in qids}

    results: dict[str, Any] = {}
    with bench_cluster("es9", args.url, label="bench-passages") as url, bench_connect(url) as cluster:
        print(f"# cluster: {cluster.capabilities}", flush=True)
        doc_index = load_whole(cluster, rows, {r["_id"]: v.tolist() for r, v in zip(rows, whole)})
        indices = [doc_index]
        try:
            search = HybridSearch(cluster, doc_index, embedder=service, max_depth=DEPTH)
            lexical = {q: search.retrieve_legs(queries[q], mode="bm25")["lexical"] for q in qids}
            runs: dict[str, Run] = {
                "bm25": {
                    q: ranking_to_run([h.id for h in sorted(lexical[q], key=lambda h: (-h.score, h.id))]) for q in qids
                }
            }
            runs["knn_doc"], runs["hybrid_doc"] = runs_for(cluster, doc_index, lexical, query_vectors, passages=False)
            doc_size = store_size(cluster, doc_index)
            for setting in settings:
                cuts = cut_corpus(service, rows, setting)
                flat = [p.text for passages in cuts for p in passages]
                t0 = time.perf_counter()
                matrix, hit = _cache(
                    f"{MODEL_ID}|{TEMPLATE}|{setting.name}|{MAX_PASSAGES}|{ids_key}",
                    functools.partial(service.embed_documents, flat),
                )
                print(
                    f"# {setting.name}: {len(flat)} passages ({len(flat) / len(rows):.2f}/doc), "
                    f"{'cache' if hit else f'embedded in {time.perf_counter() - t0:.0f}s'}",
                    flush=True,
                )
                values: dict[str, list[dict[str, Any]]] = {}
                i = 0
                for row, passages in zip(rows, cuts):
                    values[row["_id"]] = [
                        {"vector": matrix[i + j].tolist(), "start": p.start, "end": p.end, "text": p.text}
                        for j, p in enumerate(passages)
                    ]
                    i += len(passages)
                index = load_passages(cluster, rows, values)
                indices.append(index)
                knn, hybrid = runs_for(cluster, index, lexical, query_vectors, passages=True)
                runs[f"knn_{setting.name}"], runs[f"hybrid_{setting.name}"] = knn, hybrid
                results[setting.name] = {
                    "vectors_per_doc": len(flat) / len(rows),
                    "size_ratio": store_size(cluster, index) / doc_size,
                }
            report = evaluate_runs(qrels, runs, metrics=("ndcg@10", "recall@100"), compare_metrics=("ndcg@10",))
            print(report.format_table().split("\n\n")[0], flush=True)
            for setting in settings:
                for leg in ("knn", "hybrid"):
                    print("  " + _compare(report.per_query, f"{leg}_doc", f"{leg}_{setting.name}"), flush=True)
            best = max(settings, key=lambda s: report.metrics[f"knn_{s.name}"]["ndcg@10"])
            sample_rows = random.Random(args.seed).sample(rows, min(args.backfill_docs, len(rows)))
            ratio, rates = backfill_ratio(cluster, service, sample_rows, best)
            print(f"# backfill docs/s on {len(sample_rows)} docs ({best.name}): {rates}", flush=True)
        finally:
            for index in indices:
                cluster.request("DELETE", f"/{index}", ignore=(404,))
    m = report.metrics
    gain = m[f"knn_{best.name}"]["ndcg@10"] - m["knn_doc"]["ndcg@10"]
    hybrid_gain = m[f"hybrid_{best.name}"]["ndcg@10"] - m["hybrid_doc"]["ndcg@10"]
    verdict = "passages" if gain >= 0.01 and hybrid_gain >= 0 else "whole-document"
    print(
        f"# best passage setting {best.name}: knn {gain:+.4f}, hybrid {hybrid_gain:+.4f} nDCG@10 -> default: {verdict}",
        flush=True,
    )
    print(f"# elapsed {time.perf_counter() - started:.0f}s; load average after: {os.getloadavg()}", flush=True)
    print(
        f"RESULT knn_doc={m['knn_doc']['ndcg@10']:.4f} knn_passages={m[f'knn_{best.name}']['ndcg@10']:.4f} "
        f"hybrid_doc={m['hybrid_doc']['ndcg@10']:.4f} hybrid_passages={m[f'hybrid_{best.name}']['ndcg@10']:.4f} "
        f"vectors_per_doc={results[best.name]['vectors_per_doc']:.2f} backfill_ratio={ratio:.2f} "
        f"size_ratio={results[best.name]['size_ratio']:.2f} setting={best.name} default={verdict}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
