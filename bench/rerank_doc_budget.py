"""How many document tokens the reranker needs: the rule that chose ``RerankSettings.max_doc_tokens``.

No real cross-encoder ships offline with the project, so the document budget is chosen on the project's real
text model as a stand-in for "how much of a product text carries the relevance signal": all-MiniLM-L6-v2
(bundled, the same uncased WordPiece tokenizer as the ms-marco MiniLM cross-encoders), ranking each ESCI dev
query's judged candidates by cosine to the document text as the reranker renders it (``title`` and
``description``, :func:`connector.search.rerank.document_text`), the document cut to its first N tokens by the
reranker's own cut (:func:`rerank._text.cut_to_tokens`), against the uncut text (the model's own 256-token limit).

**The rule, written before the run:** the default is the smallest N of (64, 96, 128, 192) whose nDCG@10 is at
most 0.005 below the uncut text's; when none is, no cut (None). It is a quality bench (no timing), so it may run
on a loaded machine.

**Both kinds of query (added 2026-12-07, before the catalogue run):** where the queries carry ``metadata.kind``
(``examples/catalogue``: keyword and descriptive, ``--fields title,text``), the same rule is applied to each kind
and reported apart (``ndcg_<kind>_<N>``, ``chosen_<kind>``); the default must pass it on every kind and on ESCI
dev: the largest of the choices. ESCI dev's queries carry no kind (mostly keyword).

    .venv/bin/python bench/rerank_doc_budget.py [--data ../shared/data/esci-us-subset]
    .venv/bin/python bench/rerank_doc_budget.py --data examples/catalogue --fields title,text

Ends with ``RESULT chosen_max_doc_tokens=... ndcg_uncut=... ndcg_64=... loss_64=... ...``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CANDIDATES = (64, 96, 128, 192)
MAX_LOSS = 0.005
FIELDS = ("title", "description")


def default_data() -> Path:
    for shared in (REPO.parent / "shared", REPO.parents[1] / "shared"):
        if (shared / "data" / "esci-us-subset").is_dir():
            return shared / "data" / "esci-us-subset"
    return REPO.parent / "shared" / "data" / "esci-us-subset"


def read_dev(
    data: Path, fields: tuple[str, ...] = FIELDS
) -> tuple[dict[str, str], dict[str, dict[str, int]], dict[str, str], dict[str, str]]:
    """Queries, qrels, the rendered text of every judged product and each query's kind ("all" without one)."""
    from connector.search.rerank import document_text

    with (data / "queries.jsonl").open(encoding="utf-8") as f:
        rows = list(map(json.loads, f))
    queries = {row["_id"]: row["text"] for row in rows}
    kinds = {row["_id"]: str((row.get("metadata") or {}).get("kind", "all")) for row in rows}
    qrels: dict[str, dict[str, int]] = {}
    with (data / "qrels" / "test.tsv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    judged = {doc for docs in qrels.values() for doc in docs}
    texts = {}
    with (data / "corpus.jsonl").open(encoding="utf-8") as f:
        for row in map(json.loads, f):
            if row["_id"] in judged:
                texts[row["_id"]] = document_text(row, fields=fields)
    return queries, qrels, texts, kinds


def choose(
    qrels: dict[str, dict[str, int]], runs: dict[str, dict[str, dict[str, float]]], kind: str
) -> tuple[int | None, list[str]]:
    """The rule on one kind of query: the smallest budget losing <= MAX_LOSS, and its RESULT fields."""
    from connector.quality.evaluation import evaluate_runs

    metrics = evaluate_runs(qrels, runs, metrics=("ndcg@10",), compare_metrics=()).metrics
    reference = metrics["uncut"]["ndcg@10"]
    tag = "" if kind == "all" else f"{kind}_"
    chosen: int | None = None
    fields = [f"ndcg_{tag}uncut={reference:.4f}"]
    for budget in CANDIDATES:
        value = metrics[str(budget)]["ndcg@10"]
        loss = reference - value
        print(f"{kind} ({len(qrels)} queries) max_doc_tokens {budget}: nDCG@10 {value:.4f} (loss {loss:+.4f})")
        fields += [f"ndcg_{tag}{budget}={value:.4f}", f"loss_{tag}{budget}={loss:.4f}"]
        if chosen is None and loss <= MAX_LOSS:
            chosen = budget
    if tag:
        fields.append(f"chosen_{kind}={chosen}")
    return chosen, fields


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data(), help="BEIR folder (corpus, queries, qrels)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fields", default=",".join(FIELDS), help="the document fields the reranker reads")
    args = parser.parse_args()

    import numpy as np

    from bench.hybrid_quality import LocalEmbedder
    from connector.quality.evaluation import ranking_to_run
    from rerank._text import cut_to_tokens

    load_start = os.getloadavg()[0]
    queries, qrels, texts, kinds = read_dev(args.data, tuple(args.fields.split(",")))
    qrels = {q: docs for q, docs in qrels.items() if q in queries}
    embedder = LocalEmbedder(threads=args.threads)
    tokenizer = embedder.model.tokenizer
    ids = sorted(texts)
    offsets = tokenizer([texts[i] for i in ids], add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    lengths = [len(o) for o in offsets["offset_mapping"]]
    query_vectors = {q: np.asarray(embedder.embed_query(queries[q])) for q in qrels}
    runs = {}
    mean_tokens = {}
    for budget in (None, *CANDIDATES):
        name = "uncut" if budget is None else str(budget)
        cut = [
            texts[i] if budget is None else cut_to_tokens(texts[i], offsets["offset_mapping"][k], budget)
            for k, i in enumerate(ids)
        ]
        vectors = dict(zip(ids, np.asarray(embedder.embed_documents(cut)), strict=True))
        mean_tokens[name] = sum(min(n, budget or 256) for n in lengths) / len(lengths)
        runs[name] = {
            q: ranking_to_run(sorted(docs, key=lambda d: -float(vectors[d] @ query_vectors[q])))
            for q, docs in qrels.items()
        }
        print(f"budget {name}: mean document tokens {mean_tokens[name]:.1f}", flush=True)
    fields: list[str] = []
    choices: list[int | None] = []
    for kind in sorted(set(kinds[q] for q in qrels)):
        part = {q: docs for q, docs in qrels.items() if kinds[q] == kind}
        chosen, kind_fields = choose(part, {name: {q: run[q] for q in part} for name, run in runs.items()}, kind)
        choices.append(chosen)
        fields += kind_fields
    chosen = None if None in choices else max(c for c in choices if c is not None)
    print(
        f"{len(qrels)} dev queries, {len(ids)} judged products; by the rule (smallest of {CANDIDATES} losing <= "
        f"{MAX_LOSS} on every kind): {chosen}; load average {load_start:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    print("RESULT " + " ".join([f"chosen_max_doc_tokens={chosen}", *fields]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
