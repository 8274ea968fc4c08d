"""Typo tolerance: nDCG@10 of bm25, knn and hybrid with spelling correction off and on, on clean and typo'd queries.

1. A seeded typo generator writes a typo'd copy of the BEIR ``queries.jsonl``: in each query, one
   word of >= 4 letters (chosen at random; queries without one stay as they are) gets one typo,
   chosen uniformly among insertion, deletion, neighbour-key substitution (QWERTY) and
   transposition of two adjacent letters, at a uniform position in the word.
2. For each cluster (ES 9 and OpenSearch 3 by default): the corpus is loaded the way ``eshybrid load``
   does (English analyzer where the server has it), plus the cached MiniLM vectors (as in
   bench/hybrid_quality.py), and every judged query runs, interleaved per query, in bm25, knn and
   hybrid with ``correct="off"`` and ``correct="auto"`` (hybrid also ``"force"``), clean and typo'd.
3. Latency: ``HybridSearch.search`` in hybrid mode wall time, correction off vs auto, interleaved per
   query (order alternating), query-vector cache off so both embed every query, over the clean and
   the typo'd queries; p50 of each and their ratio.

Prints the tables, the load average before and after, the goals, and one line
``RESULT hybrid_clean_off=... hybrid_clean_on=... hybrid_typo_off=... hybrid_typo_on=... recovered=...
latency_ratio=...`` (the first cluster's figures; the others' follow with their prefix), where
``recovered = (typo_on - typo_off) / (clean_off - typo_off)`` for hybrid.

    flock /tmp/eshybrid-integration.lock .venv/bin/python bench/query_typos.py [--dataset ../shared/data/esci-us-subset]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import hybrid_quality as hq  # noqa: E402

from bench._servers import cluster_args  # noqa: E402
from bench._servers import clusters as started_clusters  # noqa: E402
from connector.quality.evaluation import compare_modes, evaluate_runs, ranking_to_run  # noqa: E402
from connector.quality.load import read_beir, read_queries  # noqa: E402
from connector.search import HybridSearch  # noqa: E402

logger = logging.getLogger("bench.query_typos")

Run = dict[str, dict[str, float]]
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_POS = {c: (r, i) for r, row in enumerate(_ROWS) for i, c in enumerate(row)}


def _neighbours(c: str) -> str:
    """Keys next to ``c`` on a QWERTY keyboard (same row left/right, the rows above and below)."""
    if c.lower() not in _POS:
        return ""
    r, i = _POS[c.lower()]
    out = []
    for dr in (-1, 0, 1):
        row = r + dr
        if 0 <= row < len(_ROWS):
            for j in (i - 1, i, i + 1) if dr else (i - 1, i + 1):
                if 0 <= j < len(_ROWS[row]):
                    out.append(_ROWS[row][j])
    return "".join(out)


def typo(word: str, rng: random.Random) -> str:
    """One typo in ``word`` (>= 4 letters): insertion, deletion, neighbour-key substitution or transposition."""
    kind = rng.choice(("insert", "delete", "substitute", "transpose"))
    i = rng.randrange(len(word))
    if kind == "insert":
        near = _neighbours(word[i]) or word[i]
        return word[:i] + rng.choice(near) + word[i:]
    if kind == "delete":
        return word[:i] + word[i + 1 :]
    if kind == "substitute":
        near = _neighbours(word[i])
        return word[:i] + rng.choice(near) + word[i + 1 :] if near else word[:i] + word[i + 1 :]
    j = min(i, len(word) - 2)
    if word[j] == word[j + 1]:  # swapping equal letters changes nothing: delete instead
        return word[:j] + word[j + 1 :]
    return word[:j] + word[j + 1] + word[j] + word[j + 2 :]


def typo_query(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    eligible = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not eligible:
        return text
    i = rng.choice(eligible)
    words[i] = typo(words[i], rng)
    return " ".join(words)


def write_typo_queries(source: Path, target: Path, *, seed: int) -> dict[str, str]:
    """Write a typo'd copy of ``source`` (BEIR queries.jsonl) to ``target``; return it as {id: text}."""
    rng = random.Random(seed)
    queries = read_queries(source)
    typod = {qid: typo_query(text, rng) for qid, text in sorted(queries.items())}
    with target.open("w", encoding="utf-8") as f:
        for qid, text in typod.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    return typod


def _run_of(search: HybridSearch, text: str, mode: str, correct: str) -> tuple[dict[str, float], Any]:
    response = search.search(text, mode=mode, size=10, source=False, correct=correct)  # type: ignore[arg-type]
    return ranking_to_run(response.ids), response


def quality(
    search: HybridSearch, clean: Mapping[str, str], typod: Mapping[str, str]
) -> tuple[dict[str, Run], dict[str, int]]:
    """Every (query set, mode, correction) run, interleaved per query."""
    configs = [(m, c) for m in ("bm25", "knn", "hybrid") for c in ("off", "auto")] + [("hybrid", "force")]
    runs: dict[str, Run] = {}
    changed: dict[str, int] = {}
    for qid in sorted(clean):
        for name, texts in (("clean", clean), ("typo", typod)):
            for mode, correct in configs:
                key = f"{mode}_{name}_{correct}"
                runs.setdefault(key, {})[qid], response = _run_of(search, texts[qid], mode, correct)
                if mode == "hybrid" and response.corrected_query:
                    changed[key] = changed.get(key, 0) + 1
    return runs, changed


def latency(search_off: HybridSearch, search_on: HybridSearch, texts: list[str], *, rounds: int) -> tuple[float, float]:
    """p50 wall ms of hybrid search, correction off vs auto, interleaved, order alternating."""
    off: list[float] = []
    on: list[float] = []
    for text in texts[:5]:  # warm-up
        search_off.search(text, size=10)
        search_on.search(text, size=10)
    for r in range(rounds):
        for i, text in enumerate(texts):
            pair = [(search_off, off), (search_on, on)]
            if (i + r) % 2:
                pair.reverse()
            for search, out in pair:
                started = time.perf_counter()
                search.search(text, size=10)
                out.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(off), statistics.median(on)


def run_cluster(
    key: str,
    url: str,
    dataset: Path,
    vectors: dict[str, list[float]],
    embedder: Any,
    typod: Mapping[str, str],
    *,
    rounds: int,
) -> dict[str, float]:
    data = read_beir(dataset)
    clean = data.judged_queries()
    qrels = {q: data.qrels[q] for q in clean}
    typo_judged = {q: typod[q] for q in clean}
    with hq.bench_connect(url) as cluster:
        print(f"\n## {key}: {cluster.capabilities}", flush=True)
        index = hq.load_index(cluster, dataset, vectors, prefix=f"bench-typos-{key}", analyzer="english")
        try:
            # no embedding budget: the quality runs must never score the lexical fallback
            search = HybridSearch(cluster, index, embedder=embedder, max_depth=hq.DEPTH, embed_budget_s=None)
            started = time.perf_counter()
            runs, changed = quality(search, clean, typo_judged)
            print(f"# {key}: quality runs in {time.perf_counter() - started:.0f}s", flush=True)
            off = HybridSearch(cluster, index, embedder=embedder, max_depth=hq.DEPTH, query_cache_size=0, correct="off")
            on = HybridSearch(cluster, index, embedder=embedder, max_depth=hq.DEPTH, query_cache_size=0, correct="auto")
            texts = [clean[q] for q in sorted(clean)] + [typo_judged[q] for q in sorted(clean)]
            p50_off, p50_on = latency(off, on, texts, rounds=rounds)
        finally:
            cluster.delete_index(index)
    report = evaluate_runs(qrels, runs, metrics=("ndcg@10",), compare_metrics=())
    m = {name: values["ndcg@10"] for name, values in report.metrics.items()}
    print(f"{'mode':<8}{'clean off':>11}{'clean on':>10}{'typo off':>10}{'typo on':>10}")
    for mode in ("bm25", "knn", "hybrid"):
        cells = [m[f"{mode}_{s}_{c}"] for s in ("clean", "typo") for c in ("off", "auto")]
        print(f"{mode:<8}" + "".join(f"{v:>10.4f} " for v in cells))
    print(
        f"hybrid force: clean {m['hybrid_clean_force']:.4f}, typo {m['hybrid_typo_force']:.4f}; "
        f"queries changed (hybrid): {json.dumps(changed, sort_keys=True)} of {len(clean)}"
    )
    for a, b in (("hybrid_clean_off", "hybrid_clean_auto"), ("hybrid_typo_off", "hybrid_typo_auto")):
        (c,) = compare_modes({a: report.per_query[a], b: report.per_query[b]})
        print(
            f"  {b} vs {a}: {c.mean_diff:+.4f} (wins/losses/ties {c.wins}/{c.losses}/{c.ties}, "
            f"p_wilcoxon={'n/a' if c.p_wilcoxon is None else f'{c.p_wilcoxon:.4f}'})"
        )
    print(f"latency p50 hybrid: off {p50_off:.2f} ms, auto {p50_on:.2f} ms ({rounds} rounds x {len(texts)} queries)")
    clean_off, typo_off, typo_on = m["hybrid_clean_off"], m["hybrid_typo_off"], m["hybrid_typo_auto"]
    lost = clean_off - typo_off
    return {
        "hybrid_clean_off": clean_off,
        "hybrid_clean_on": m["hybrid_clean_auto"],
        "hybrid_typo_off": typo_off,
        "hybrid_typo_on": typo_on,
        "recovered": (typo_on - typo_off) / lost if lost > 0 else float("nan"),
        "latency_ratio": p50_on / p50_off,
        "bm25_typo_off": m["bm25_typo_off"],
        "bm25_typo_on": m["bm25_typo_auto"],
        "knn_typo_off": m["knn_typo_off"],
        "knn_typo_on": m["knn_typo_auto"],
        "hybrid_typo_force": m["hybrid_typo_force"],
        "hybrid_clean_force": m["hybrid_clean_force"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=hq.DEFAULT_DATASET)
    cluster_args(parser, ("es9", "os3"))
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="latency rounds over the clean + typo'd queries")
    parser.add_argument("--typo-out", type=Path, help="where to write the typo'd queries.jsonl (default: a temp file)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with started_clusters({"es9": args.es9_url, "os3": args.os3_url}, label="bench-typos") as clusters:
        if not clusters:
            parser.error("every cluster was skipped ('none'); give at least one")
        return run(args, clusters)


def run(args: argparse.Namespace, clusters: dict[str, str]) -> int:
    """The bench on ``clusters`` (key -> URL), given or started by :mod:`bench._servers`."""
    load_before = os.getloadavg()
    print(f"# load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}", flush=True)
    target = args.typo_out or Path(tempfile.mkdtemp(prefix="eshybrid-typos-")) / "queries.jsonl"
    typod = write_typo_queries(args.dataset / "queries.jsonl", target, seed=args.seed)
    clean = read_queries(args.dataset / "queries.jsonl")
    n_changed = sum(typod[q] != clean[q] for q in clean)
    print(f"# typo'd queries (seed {args.seed}): {target} ({n_changed} of {len(clean)} changed), e.g.:")
    for qid in sorted(clean)[:5]:
        print(f"#   {clean[qid]!r} -> {typod[qid]!r}")
    embedder = hq.make_embedder(None)
    vectors = hq.corpus_embeddings(args.dataset, embedder, source="in-process sentence-transformers")
    results: dict[str, float] = {}
    first = next(iter(clusters))
    for key, url in clusters.items():
        figures = run_cluster(key, url, args.dataset, vectors, embedder, typod, rounds=args.rounds)
        prefix = "" if key == first else f"{key}_"
        results.update({f"{prefix}{k}": v for k, v in figures.items()})
    load_after = os.getloadavg()
    print(f"\n# load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    for key in clusters:
        p = "" if key == first else f"{key}_"
        print(
            f"# goals {key}: recovered >= 0.5: {results[p + 'recovered'] >= 0.5}; "
            f"clean loss <= 0.003: {results[p + 'hybrid_clean_off'] - results[p + 'hybrid_clean_on'] <= 0.003}; "
            f"latency_ratio <= 1.15: {results[p + 'latency_ratio'] <= 1.15}"
        )
    head = ["hybrid_clean_off", "hybrid_clean_on", "hybrid_typo_off", "hybrid_typo_on", "recovered", "latency_ratio"]
    order = head + [k for k in results if k not in head]
    print("RESULT " + " ".join(f"{k}={results[k]:.4f}" for k in order) + f" load1={load_after[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
