"""The feedback loop on simulated shoppers: judgments from clicks, interleaving vs A/B, one seeded run.

Data: the ESCI dev data (``../shared/data/esci-us-subset``: 103 queries, human grades 0-3), loaded
into a fresh index on Elasticsearch 9 ($ESHYBRID_TEST_ES9_URL) the way ``bench/hybrid_quality.py``
loads it (English analyzer + all-MiniLM-L6-v2 vectors). Each query's lexical and vector legs are
fetched ONCE from the real search (``HybridSearch.retrieve_legs``); the six configurations are
fused from them with the library's fusion: ``bm25``, ``knn``, ``rrf`` (k=60), ``min_max_0.3`` and
``min_max_0.5`` (lexical weight), and ``default`` (the library default, min-max 0.7/0.3). Everything
after that is simulated in numpy.

Simulated shoppers (the truth is the ESCI grade g of a shown product; unjudged products count as
g = 0, as they do for the human nDCG):
- a session issues one dev query (uniform) and sees the top 10 of the configuration under test;
- it reads rank r (1-based) with probability ``POSITION_BIAS[r] = r ** -0.8`` while still browsing;
- it clicks a read product with ``CLICK[g] = 0.05, 0.20, 0.40, 0.70``, times a per-session noise
  factor drawn from U(0.7, 1.3) (clipped to 1);
- after a click it adds to cart with ``CART[g] = 0.01, 0.05, 0.10, 0.30`` and buys a carted product
  with ``BUY[g] = 0.1, 0.2, 0.3, 0.5``; a purchase, or satisfaction with ``SATISFY[g] = 0, 0.1, 0.3,
  0.6`` after a click, ends the session (a cascade with position bias: no click model is the truth).

Measured (seeds: 1 = click-model choice, 2 = goal sessions, 3 = experiments):
1. Click-model choice, the rule written before the first run: simulate 20,000 sessions (configurations
   uniform) with seed 1; for each model (coec, pbm, sdbn) build judgments with the library
   (``build_judgments``, default settings); the model whose grades agree best with the ESCI grades,
   by the mean over queries of Kendall's tau-b between click grade and human grade on the pairs the
   clicks graded, is the default; a model within 0.01 of the best loses to the simpler one (coec,
   pbm, sdbn in that order). The goal figures below then use that model, on a fresh seed.
2. ``tau_click_vs_human``: 20,000 sessions (seed 2) -> judgments (UBI records -> ``build_judgments``
   -> a BEIR folder) -> nDCG@10 of the six configurations on click judgments and on human
   judgments; Kendall's tau between the two orders. Goal >= 0.8.
3. ``tune_gap``: ``eshybrid tune``'s selection (``connector.quality.tuning.recommend``: lexical form,
   then fusion) on the click judgments and on the human judgments; the human nDCG@10 of the human
   choice minus that of the click choice. Goal <= 0.005.
4. ``interleave_n95`` / ``ab_n95``: default vs bm25 and default vs rrf. For N searches (doubling from
   16, then 6 geometric bisections of the last doubling), 200 repeated experiments; the share that picks the arm with the higher human nDCG@10
   (a dead heat counts one half); N95 = the first N where the share reaches 0.95. Team-draft
   interleaving (``connector.feedback.team_draft``): the arm with more won searches is picked; A/B:
   N/2 searches per arm, the arm with more clicks per search is picked. Per query, the outcome
   distributions (win/loss/tie; clicks per search) come from 4,000 simulated sessions, experiments
   are then drawn from them (multinomial). ``ab_vs_interleave`` = ab_n95 / interleave_n95 (the pair
   with the smaller ratio is reported; the literature reports 10-100x).
5. ``events_per_s`` / ``events_lost`` (``--events-seconds``, 0 to skip): ``POST /events`` on a real
   ``eshybrid serve search --ubi`` (see ``bench/online_events.py``): accepted events per second
   sustained, a burst over the queue answered 429 (counted), and every accepted event indexed.
6. ``search_p50_ratio`` (``--latency-searches``, 0 to skip): p50 of the default search with query records
   on over off, interleaved (a speed figure: a quiet machine; ``--latency-searches 10`` is a smoke run).

Ends with one ``RESULT`` line (the load average is printed before and after).

    .venv/bin/python bench/online_loop.py [--sessions 20000] [--embed-url $ESHYBRID_TEST_EMBED_URL]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import numpy as np  # noqa: E402
from hybrid_quality import DEFAULT_DATASET, bench_connect, corpus_embeddings, load_index, make_embedder  # noqa: E402
from online_events import measure_events, measure_search_overhead  # noqa: E402

from bench._servers import cluster as bench_cluster  # noqa: E402
from connector.feedback import CLICK_MODELS, DEFAULT_CLICK_MODEL, build_judgments, query_key, team_draft  # noqa: E402
from connector.feedback.judgments import write_beir  # noqa: E402
from connector.quality.adaptive_choice import query_evidences  # noqa: E402
from connector.quality.evaluation import evaluate_runs, ranking_to_run  # noqa: E402
from connector.quality.load import BeirDataset, read_beir  # noqa: E402
from connector.quality.tuning import recommend  # noqa: E402
from connector.search import HybridSearch  # noqa: E402
from connector.search.fusion import fuse, single_leg  # noqa: E402
from connector.search.models import DEFAULT_FUSION, FusionConfig, LexicalConfig  # noqa: E402
from connector.ubi import UbiEvent, UbiLogger, UbiQuery  # noqa: E402

SHOWN = 10
POSITION_BIAS = np.arange(1, SHOWN + 1, dtype=np.float64) ** -0.8
CLICK = np.array([0.05, 0.20, 0.40, 0.70])
CART = np.array([0.01, 0.05, 0.10, 0.30])
BUY = np.array([0.1, 0.2, 0.3, 0.5])
SATISFY = np.array([0.0, 0.1, 0.3, 0.6])
NOISE = (0.7, 1.3)
SEED_CHOICE, SEED_GOAL, SEED_EXPERIMENTS = 1, 2, 3
REPEATS, PER_QUERY_SESSIONS = 200, 4000
CONFIGS: dict[str, FusionConfig | str] = {
    "bm25": "lexical",
    "knn": "vector",
    "rrf": FusionConfig(method="rrf", rank_constant=60),
    "min_max_0.3": FusionConfig(method="linear", normalizer="min_max", lexical_weight=0.3, vector_weight=0.7),
    "min_max_0.5": FusionConfig(method="linear", normalizer="min_max", lexical_weight=0.5, vector_weight=0.5),
    "default": DEFAULT_FUSION,
}
Rankings = dict[str, dict[str, list[str]]]  # configuration -> query id -> ids, best first


# -- the simulated shoppers ------------------------------------------------------------------------


def simulate(grades: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clicks, carts, purchases ``(sessions, 10)`` for the grades shown (-1: nothing shown there)."""
    sessions, depth = grades.shape
    g = np.maximum(grades, 0)
    p_click = np.clip(CLICK[g] * rng.uniform(*NOISE, size=(sessions, 1)), 0.0, 1.0)
    browsing = np.ones(sessions, dtype=bool)
    out = [np.zeros(grades.shape, dtype=bool) for _ in range(3)]
    for r in range(depth):
        read = browsing & (grades[:, r] >= 0) & (rng.random(sessions) < POSITION_BIAS[r])
        click = read & (rng.random(sessions) < p_click[:, r])
        cart = click & (rng.random(sessions) < CART[g[:, r]])
        buy = cart & (rng.random(sessions) < BUY[g[:, r]])
        out[0][:, r], out[1][:, r], out[2][:, r] = click, cart, buy
        browsing &= ~(buy | (click & (rng.random(sessions) < SATISFY[g[:, r]])))
    return out[0], out[1], out[2]


def grade_matrix(
    lists: Sequence[Sequence[str]], qids: Sequence[str], qrels: Mapping[str, Mapping[str, int]]
) -> np.ndarray:
    grades = np.full((len(lists), SHOWN), -1, dtype=np.int64)
    for s, (ids, q) in enumerate(zip(lists, qids)):
        for r, doc in enumerate(ids[:SHOWN]):
            grades[s, r] = qrels.get(q, {}).get(doc, 0)
    return grades


def ubi_sessions(
    rankings: Rankings, queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]], n: int, seed: int
) -> tuple[list[UbiQuery], list[UbiEvent]]:
    """``n`` sessions (query and configuration uniform) as UBI query and event records."""
    rng = np.random.default_rng(seed)
    qids, configs = sorted(queries), list(rankings)
    picks_q = rng.integers(0, len(qids), n)
    picks_c = rng.integers(0, len(configs), n)
    shown = [rankings[configs[c]][qids[q]][:SHOWN] for q, c in zip(picks_q, picks_c)]
    clicks, carts, buys = simulate(grade_matrix(shown, [qids[q] for q in picks_q], qrels), rng)
    records: list[UbiQuery] = []
    events: list[UbiEvent] = []
    for s in range(n):
        client = f"shopper-{s % 5000}"
        records.append(
            UbiQuery(
                query_id=f"s{seed}-{s}",
                client_id=client,
                user_query=queries[qids[picks_q[s]]],
                query_response_hit_ids=shown[s],
                query_attributes={"configuration": configs[picks_c[s]]},
            )
        )
        for action, flags in (("click", clicks), ("add_to_cart", carts), ("purchase", buys)):
            for r in np.flatnonzero(flags[s]):
                attrs = {"object": {"object_id": shown[s][r]}, "position": {"ordinal": int(r) + 1}}
                events.append(
                    UbiEvent(action_name=action, query_id=f"s{seed}-{s}", client_id=client, event_attributes=attrs)  # type: ignore[arg-type]
                )
    return records, events


# -- rankings from the real search -------------------------------------------------------------------


def fetch_rankings(search: HybridSearch, queries: Mapping[str, str]) -> tuple[Rankings, dict[str, Any]]:
    legs = {q: search.retrieve_legs(t) for q, t in queries.items()}
    evidences = query_evidences(search, queries)  # the adaptive default's word counts, as the search reads them
    rankings: Rankings = {}
    for name, config in CONFIGS.items():
        if isinstance(config, str):
            rankings[name] = {q: [d.id for d in single_leg(legs[q].get(config, []), leg=config)][:100] for q in legs}
        else:
            rankings[name] = {q: _fused_ids(legs[q], config, evidences.get(q)) for q in legs}
    return rankings, legs


def _fused_ids(legs: Any, config: FusionConfig, evidence: Any) -> list[str]:
    return [d.id for d in fuse(legs, config, evidence=evidence)][:100]


def ndcg10(rankings: Rankings, qrels: Mapping[str, Mapping[str, int]]) -> dict[str, float]:
    runs = {name: {q: ranking_to_run(ids) for q, ids in per_q.items()} for name, per_q in rankings.items()}
    report = evaluate_runs(qrels, runs, metrics=("ndcg@10",), compare_metrics=())
    return {name: report.metrics[name]["ndcg@10"] for name in rankings}


# -- 1-3: judgments from clicks ---------------------------------------------------------------------


def grade_agreement(click_qrels: Mapping[str, Mapping[str, int]], human: Mapping[str, Mapping[str, int]]) -> float:
    """Mean over queries of Kendall's tau-b between click grade and human grade (pairs the clicks graded)."""
    from scipy.stats import kendalltau

    taus = []
    for q, docs in click_qrels.items():
        clicks = [docs[d] for d in sorted(docs)]
        truth = [human.get(q, {}).get(d, 0) for d in sorted(docs)]
        if len(docs) >= 3 and len(set(clicks)) > 1 and len(set(truth)) > 1:
            taus.append(float(kendalltau(clicks, truth).statistic))
    return float(np.mean(taus)) if taus else 0.0


def choose_click_model(rankings: Rankings, queries: Mapping[str, str], qrels: Any, sessions: int) -> str:
    records, events = ubi_sessions(rankings, queries, qrels, sessions, SEED_CHOICE)
    ids = {query_key(t): q for q, t in queries.items()}
    agreement = {}
    for model in CLICK_MODELS:
        judged = build_judgments(records, events, model=model, query_ids=ids)
        agreement[model] = grade_agreement(judged.qrels, qrels)
        print(f"# choice (seed {SEED_CHOICE}): {model}: mean per-query tau-b vs ESCI grades {agreement[model]:.4f}")
    best = max(agreement.values())
    chosen = next(m for m in CLICK_MODELS if agreement[m] >= best - 0.01)
    print(f"# rule picks {chosen} (library default now: {DEFAULT_CLICK_MODEL})", flush=True)
    return chosen


def human_ndcg_of(search: HybridSearch, defaults: Mapping[str, Any], queries: Mapping[str, str], qrels: Any) -> float:
    lexical = LexicalConfig(**defaults["lexical"])
    probe = HybridSearch(
        search.cluster,
        search.index,
        embedder=search.embedder,
        lexical_fields=lexical.fields,
        lexical_form=lexical.form,
        tie_breaker=lexical.tie_breaker,
        max_depth=100,
    )
    fusion = FusionConfig(**defaults["fusion"])
    evidences = query_evidences(probe, queries) if fusion.method == "adaptive" else {}
    run = {q: ranking_to_run(_fused_ids(probe.retrieve_legs(t), fusion, evidences.get(q))) for q, t in queries.items()}
    return evaluate_runs(qrels, {"x": run}, metrics=("ndcg@10",), compare_metrics=()).metrics["x"]["ndcg@10"]


def tune_gap(search: HybridSearch, human: BeirDataset, clicks: BeirDataset) -> tuple[float, str, str]:
    queries = human.judged_queries()
    picks = {}
    for name, dataset in (("human", human), ("clicks", clicks)):
        rec = recommend(search, dataset, depth=100)
        picks[name] = (human_ndcg_of(search, rec.search_defaults, queries, human.qrels), rec.fusion.chosen)
        print(f"# tune on {name} judgments: {rec.lexical.chosen.describe()} + {rec.fusion.chosen}: "
              f"human nDCG@10 {picks[name][0]:.4f}", flush=True)  # fmt: skip
    return picks["human"][0] - picks["clicks"][0], picks["human"][1], picks["clicks"][1]


# -- 4: interleaving vs A/B -------------------------------------------------------------------------


def outcome_tables(
    rankings: Rankings, a: str, b: str, qids: Sequence[str], qrels: Any, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query: P(win, loss, tie) of ``a`` interleaved with ``b``; P(k clicks) under ``a`` and under ``b`` alone."""
    m = PER_QUERY_SESSIONS
    inter = np.zeros((len(qids), 3))
    hists = [np.zeros((len(qids), SHOWN + 1)) for _ in range(2)]
    for i, q in enumerate(qids):
        merged = [team_draft(rankings[a][q][:SHOWN], rankings[b][q][:SHOWN], seed=int(s), size=SHOWN)
                  for s in rng.integers(0, 2**62, m)]  # fmt: skip
        clicks, _, _ = simulate(grade_matrix([x.ids for x in merged], [q] * m, qrels), rng)
        is_a = np.array([[arm == "a" for arm in x.arms] + [False] * (SHOWN - len(x.arms)) for x in merged])
        na, nb = (clicks & is_a).sum(axis=1), (clicks & ~is_a).sum(axis=1)
        inter[i] = [(na > nb).mean(), (na < nb).mean(), (na == nb).mean()]
        for hist, arm in zip(hists, (a, b)):
            alone, _, _ = simulate(grade_matrix([rankings[arm][q][:SHOWN]] * m, [q] * m, qrels), rng)
            hist[i] = np.bincount(alone.sum(axis=1), minlength=SHOWN + 1) / m
    return inter, hists[0], hists[1]


def _uniform_counts(n: int, queries: int, rng: np.random.Generator) -> np.ndarray:
    return rng.multinomial(n, np.full(queries, 1.0 / queries), size=REPEATS)


def share_interleave(table: np.ndarray, a_better: bool, rng: np.random.Generator, n: int) -> float:
    outcomes = rng.multinomial(_uniform_counts(n, len(table), rng), table).sum(axis=1)  # (repeats, 3)
    wins, losses = (outcomes[:, 0], outcomes[:, 1]) if a_better else (outcomes[:, 1], outcomes[:, 0])
    return float(((wins > losses) + 0.5 * (wins == losses)).mean())


def share_ab(hist_a: np.ndarray, hist_b: np.ndarray, a_better: bool, rng: np.random.Generator, n: int) -> float:
    k = np.arange(SHOWN + 1)
    clicks = [(rng.multinomial(_uniform_counts(n // 2, len(h), rng), h) * k).sum(axis=(1, 2)) for h in (hist_a, hist_b)]
    good, bad = (clicks[0], clicks[1]) if a_better else (clicks[1], clicks[0])
    return float(((good > bad) + 0.5 * (good == bad)).mean())


def n95(share_at: Any, limit: int) -> int | None:
    """The first N (doubling from 16) whose share reaches 0.95, then narrowed by 6 geometric bisections
    between N/2 and N (so the ratio of two N95s is not stuck on powers of two)."""
    n = 16
    while n <= limit and share_at(n) < 0.95:
        n *= 2
    if n > limit:
        return None
    low, high = n / 2, float(n)
    for _ in range(6 if n > 16 else 0):
        mid = (low * high) ** 0.5
        low, high = (mid, high) if share_at(int(mid)) < 0.95 else (low, mid)
    return int(round(high))


def experiments(rankings: Rankings, qrels: Any, human: Mapping[str, float]) -> dict[str, Any]:
    rng = np.random.default_rng(SEED_EXPERIMENTS)
    qids = sorted(rankings["default"])
    out: dict[str, Any] = {}
    for other in ("bm25", "rrf"):
        inter, hist_a, hist_b = outcome_tables(rankings, "default", other, qids, qrels, rng)
        a_better = human["default"] >= human[other]
        ni = n95(functools.partial(share_interleave, inter, a_better, rng), 1 << 22)
        na = n95(functools.partial(share_ab, hist_a, hist_b, a_better, rng), 1 << 24)
        ratio = na / ni if ni and na else None
        print(f"# default vs {other}: human nDCG@10 {human['default']:.4f} vs {human[other]:.4f}; "
              f"interleaving N95 {ni}, A/B N95 {na}, ratio {ratio}", flush=True)  # fmt: skip
        out[other] = (ni, na, ratio)
    return out


def judgments_stage(
    search: HybridSearch, rankings: Rankings, human: BeirDataset, human_ndcg: Mapping[str, float], sessions: int
) -> dict[str, Any]:
    """Steps 1-3 of the module docstring: the click model, tau_click_vs_human and tune_gap."""
    from scipy.stats import kendalltau

    queries = human.judged_queries()
    qrels = {q: human.qrels[q] for q in queries}
    model = choose_click_model(rankings, queries, qrels, sessions)
    records, events = ubi_sessions(rankings, queries, qrels, sessions, SEED_GOAL)
    ids = {query_key(t): q for q, t in queries.items()}
    judged = build_judgments(records, events, model=model, query_ids=ids)  # type: ignore[arg-type]
    print(f"# goal sessions: {len(records)} searches, {len(events)} events; {judged.to_json()}")
    click_ndcg = ndcg10(rankings, judged.qrels)
    names = list(CONFIGS)
    for name in names:
        print(f"{name:<14} human nDCG@10 {human_ndcg[name]:.4f}   click nDCG@10 {click_ndcg[name]:.4f}")
    tau = float(kendalltau([human_ndcg[n] for n in names], [click_ndcg[n] for n in names]).statistic)
    with tempfile.TemporaryDirectory() as tmp:
        clicks = read_beir(write_beir(judged, Path(tmp) / "clicks"))
        gap, human_pick, click_pick = tune_gap(search, human, clicks)
    print(f"# goals: tau >= 0.8: {tau >= 0.8}; |tune_gap| <= 0.005: {abs(gap) <= 0.005} "
          f"(human judgments pick {human_pick}, clicks pick {click_pick})", flush=True)  # fmt: skip
    return {"tau_click_vs_human": tau, "tune_gap": gap, "click_model": model}


def search_overhead(cluster: Any, index: str, embedder: Any, texts: list[str], searches: int) -> dict[str, Any]:
    """``search_p50_ratio`` (``bench/online_events.py`` step 5), query records into throwaway UBI indexes."""
    tag = f"bench-ubi-latency-{os.getpid()}"
    ubi = UbiLogger(cluster, queries_index=f"{tag}-q", events_index=f"{tag}-e")
    try:
        off = HybridSearch(cluster, index, embedder=embedder)
        on = HybridSearch(cluster, index, embedder=embedder, ubi=ubi)
        return measure_search_overhead(off, on, texts, searches=searches)
    finally:
        ubi.close()
        for name in (f"{tag}-q", f"{tag}-e"):
            cluster.delete_index(name)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument(
        "--url",
        default=os.environ.get("ESHYBRID_TEST_ES9_URL"),
        help="ES 9 URL (default $ESHYBRID_TEST_ES9_URL; unset: a local one is started and stopped)",
    )
    parser.add_argument("--embed-url", default=os.environ.get("ESHYBRID_TEST_EMBED_URL"))
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--skip-experiments", action="store_true", help="judgments only (a quick smoke run)")
    parser.add_argument("--events-seconds", type=float, default=20.0, help="sustained POST /events (0: skip)")
    parser.add_argument("--latency-searches", type=int, default=300, help="searches per side for search_p50_ratio")
    args = parser.parse_args()
    started = time.perf_counter()
    load = os.getloadavg()
    print(f"# load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    embedder = make_embedder(args.embed_url)
    vectors = corpus_embeddings(args.dataset, embedder, source=args.embed_url or "in-process sentence-transformers")
    human = read_beir(args.dataset)
    queries = human.judged_queries()
    qrels = {q: human.qrels[q] for q in queries}
    results: dict[str, Any] = {}
    with bench_cluster("es9", args.url, label="bench-online") as url, bench_connect(url) as cluster:
        index = load_index(cluster, args.dataset, vectors, prefix="bench-online-loop", analyzer="english")
        try:
            search = HybridSearch(cluster, index, embedder=embedder, max_depth=100)
            rankings, _ = fetch_rankings(search, queries)
            human_ndcg = ndcg10(rankings, qrels)
            results.update(judgments_stage(search, rankings, human, human_ndcg, args.sessions))
            if args.events_seconds > 0:
                results.update(measure_events(cluster, url, index, args.embed_url, seconds=args.events_seconds))
            if args.latency_searches > 0:
                results.update(search_overhead(cluster, index, embedder, list(queries.values()), args.latency_searches))
        finally:
            cluster.delete_index(index)
    if not args.skip_experiments:
        pairs = experiments(rankings, qrels, human_ndcg)
        hard = min(pairs, key=lambda k: pairs[k][2] if pairs[k][2] is not None else float("inf"))
        results["interleave_n95"], results["ab_n95"], results["ab_vs_interleave"] = pairs[hard]
        results["hard_pair"] = f"default_vs_{hard}"
        for other, (ni, na, _) in pairs.items():
            results[f"interleave_n95_{other}"], results[f"ab_n95_{other}"] = ni, na
    load = os.getloadavg()
    print(f"# load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; took {time.perf_counter() - started:.0f}s")
    results.setdefault("events_per_s", "n/a")
    results.setdefault("events_lost", "n/a")

    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else "none" if v is None else str(v)

    print("RESULT " + " ".join(f"{k}={fmt(v)}" for k, v in results.items()) + f" load1={load[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
