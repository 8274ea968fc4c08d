"""The quality side of ``bench/embed_throughput.py``: nDCG@10 of embedding variants on ESCI, and the texts
OpenVINO's static int8 is calibrated on.

- :func:`judged_pool`: the judged docs of the first test queries (up to ``max_docs``), the nDCG pool;
- :func:`quality_ndcg`: nDCG@10 (linear gains) of exact cosine kNN and of hybrid (bm25s over the pool fused with
  the library's DEFAULT_FUSION with each query's word counts over the pool as its evidence) per variant, each
  variant embedding its own docs and queries;
- :func:`calibration_sample`: a seeded random sample of the corpus rendered by the backfill's renderer
  (:func:`connector.texts.build_text`, fields ``title``, ``text``: what ``eshybrid calibration-sample`` writes from
  an index of these docs), drawn from docs that are neither in the nDCG pool nor in the throughput sample, so the
  scales are never fitted on the judged texts. Queries are never calibration texts;
- :func:`openvino_rule`: the rule that makes OpenVINO int8 the recommended CPU int8 (written before the idle run).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["JudgedPool", "calibration_sample", "judged_pool", "ndcg_at_10", "openvino_rule", "quality_ndcg"]

# The fields an ESCI index built by this project's loader records; the backfill renders them joined by newlines.
ESCI_TEXT_FIELDS = ("title", "text")


def ndcg_at_10(ranking: list[str], judged: dict[str, int]) -> float:
    """nDCG@10 with linear gains."""
    dcg = sum(judged.get(d, 0) / math.log2(r + 2) for r, d in enumerate(ranking[:10]))
    ideal = sorted(judged.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(r + 2) for r, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


@dataclass(frozen=True)
class JudgedPool:
    """The first test queries whose judged docs fit in the pool, and the pool's doc ids and texts."""

    qrels: dict[str, dict[str, int]]
    queries: dict[str, str]
    doc_ids: list[str]
    doc_texts: list[str]


def _corpus(data: Path) -> dict[str, dict[str, Any]]:
    with (data / "corpus.jsonl").open(encoding="utf-8") as f:
        return {row["_id"]: row for row in map(json.loads, f)}


def judged_pool(data: Path, *, max_docs: int) -> JudgedPool:
    """The judged docs of the first queries of ``qrels/test.tsv``, up to ``max_docs`` docs."""
    qrels: dict[str, dict[str, int]] = {}
    for line in (data / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, did, score = line.split("\t")
        qrels.setdefault(qid, {})[did] = int(score)
    docs = {d: f"{row.get('title') or ''}\n{row.get('text') or ''}".strip() for d, row in _corpus(data).items()}
    with (data / "queries.jsonl").open(encoding="utf-8") as f:
        queries = {q["_id"]: q["text"] for q in map(json.loads, f) if q["_id"] in qrels}
    chosen: list[str] = []
    kept: dict[str, str] = {}
    for qid, text in queries.items():
        judged = [d for d in qrels[qid] if d in docs and d not in chosen]
        if len(chosen) + len(judged) > max_docs:
            break
        chosen.extend(judged)
        kept[qid] = text
    return JudgedPool({q: qrels[q] for q in kept}, kept, chosen, [docs[d] for d in chosen])


def calibration_sample(data: Path, *, size: int, seed: int, exclude: Collection[str]) -> list[str]:
    """``size`` corpus docs drawn at random (``random.Random(seed)``, from the docs in file order, less
    ``exclude``: ids or rendered texts), rendered as the backfill renders them; unembeddable docs skipped."""
    from connector.texts import TextPolicy, UnembeddableDocument, build_text

    policy = TextPolicy(fields=ESCI_TEXT_FIELDS)
    rows = [row for d, row in _corpus(data).items() if d not in exclude]
    texts: list[str] = []
    for row in random.Random(seed).sample(rows, len(rows)):
        try:
            text = build_text(row, policy)
        except UnembeddableDocument:
            continue
        if text not in exclude:
            texts.append(text)
        if len(texts) >= size:
            break
    return texts


def _evidences(pool: JudgedPool) -> dict[str, Any]:
    """Each query's evidence for the adaptive DEFAULT_FUSION, as the search reads it from the index: the pool's
    documents holding each content word (lower-cased words; the cluster's analyzer would also stem)."""
    import re

    from connector.search.adaptive import QueryEvidence
    from connector.search.words import content_words

    doc_words = [set(re.findall(r"\w+", text.lower())) for text in pool.doc_texts]
    out: dict[str, Any] = {}
    for qid, text in pool.queries.items():
        words = content_words(text)[0]
        out[qid] = QueryEvidence(text=text, doc_freqs={w: sum(w in d for d in doc_words) for w in words})
    return out


def _lexical(pool: JudgedPool, depth: int) -> dict[str, list[Any]]:
    import bm25s

    from connector.search.fusion import LegHit

    retriever = bm25s.BM25(k1=1.2, b=0.75)
    retriever.index(bm25s.tokenize(pool.doc_texts, stopwords="en", show_progress=False), show_progress=False)
    tokens = bm25s.tokenize(list(pool.queries.values()), stopwords="en", show_progress=False)
    found, found_scores = retriever.retrieve(tokens, k=depth, show_progress=False)
    return {
        qid: [LegHit(pool.doc_ids[int(d)], float(sc)) for d, sc in zip(row, row_scores, strict=True) if sc > 0]
        for qid, row, row_scores in zip(pool.queries, found, found_scores, strict=True)
    }


def quality_ndcg(pool: JudgedPool, *, variants: dict[str, Any]) -> dict[str, dict[str, float]]:
    """nDCG@10 of exact cosine kNN and of hybrid (bm25s + kNN fused by DEFAULT_FUSION) per variant over the
    pool; each variant embeds its own queries (with the model's query prefix)."""
    import numpy as np

    from connector.search.fusion import LegHit, fuse
    from connector.search.models import DEFAULT_FUSION

    print(f"nDCG@10: {len(pool.queries)} queries, a pool of their {len(pool.doc_ids)} judged docs", flush=True)
    depth = min(100, len(pool.doc_ids))
    lexical = _lexical(pool, depth)
    evidences = _evidences(pool)
    out: dict[str, dict[str, float]] = {"knn": {}, "hybrid": {}}
    for label, embedder in variants.items():
        started = time.perf_counter()
        dv = embedder.encode(pool.doc_texts, max_rows=64, max_batch_tokens=4096)
        qv = embedder.encode([embedder.spec.query_prefix + text for text in pool.queries.values()])
        knn_total = hybrid_total = 0.0
        for row, qid in zip(qv @ dv.T, pool.queries, strict=True):
            top = np.argsort(-row, kind="stable")[:depth]
            knn_total += ndcg_at_10([pool.doc_ids[i] for i in top], pool.qrels[qid])
            vector = [LegHit(pool.doc_ids[i], float(row[i])) for i in top]
            fused = fuse({"lexical": lexical[qid], "vector": vector}, DEFAULT_FUSION, evidence=evidences[qid])
            hybrid_total += ndcg_at_10([d.id for d in fused], pool.qrels[qid])
        out["knn"][label] = knn_total / len(pool.queries)
        out["hybrid"][label] = hybrid_total / len(pool.queries)
        print(
            f"  {label:<14} knn nDCG@10 {out['knn'][label]:.4f}  hybrid nDCG@10 {out['hybrid'][label]:.4f}"
            f"  ({time.perf_counter() - started:.0f}s)",
            flush=True,
        )
    return out


def openvino_rule(rates: dict[str, float], min_cos: float, ndcg: dict[str, dict[str, float]]) -> tuple[str, list[str]]:
    """``bench/embed_throughput.py``'s step 5 rule (OpenVINO int8 as the recommended CPU int8): ``pass`` or
    ``fail``, and the conditions that failed (the idle-start condition is checked by the caller)."""
    failed = []
    if min_cos < 0.99:
        failed.append(f"min cosine {min_cos:.4f} < 0.99")
    for kind in ("knn", "hybrid"):
        loss = ndcg[kind]["fp32"] - ndcg[kind]["openvino_int8"]
        if loss > 0.005:
            failed.append(f"{kind} nDCG@10 loss {loss:.4f} > 0.005")
    for t in (1, 2):
        if rates[f"openvino int8 x{t}"] <= rates[f"onnx int8 x{t}"]:
            failed.append(f"x{t}: openvino int8 {rates[f'openvino int8 x{t}']:.1f} <= onnx int8 docs/s")
    return ("fail" if failed else "pass"), failed
